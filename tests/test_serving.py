"""The scoring service, tested against a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from core.inference import Predictor
from core.runs import Run
from core.scoring import ticket_texts

ROOT = Path(__file__).resolve().parents[1]
KEY = "s3cret-key"
THRESHOLD = 0.6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body=None, *, key: str | None = KEY, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("X-API-Key", key)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def served_run(trained_run, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("served") / trained_run.id
    shutil.copytree(trained_run.path, run_dir)
    Run(run_dir).save_automation_threshold(THRESHOLD)
    return run_dir


@pytest.fixture(scope="module")
def client(served_run):
    port = free_port()
    env = {**os.environ, "TICKETTUNE_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "core", "serve", str(served_run), "--port", str(port)]
    command += ["--max-tickets", "50"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    client = Client(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service did not start: {process.stderr.read()}")
        try:
            if client.call("GET", "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("the service did not answer /health within 120 s")
    yield client
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def predictor(served_run) -> Predictor:
    return Predictor.load(served_run)


def test_health_says_which_run_is_served_without_a_key(client, served_run):
    status, body = client.call("GET", "/health", key=None)
    assert status == 200
    assert body["status"] == "ok" and body["run_id"] == served_run.name


def test_model_lists_labels_threshold_and_text_columns(client, predictor, served_run):
    status, body = client.call("GET", "/model")
    assert status == 200
    assert body["labels"] == predictor.labels
    assert body["threshold"] == THRESHOLD
    assert body["text_columns"] == ["ticket"]
    assert body["run_id"] == served_run.name
    assert 0.0 <= body["metrics"]["model"]["macro_f1"] <= 1.0


def assert_matches_predictor(predictions, texts, predictor) -> None:
    """Same labels and confidences as the Predictor scoring the same texts.

    A ticket may be scored alone (fp32) or inside a micro-batch (bf16 autocast on CPUs with
    AMX), so confidences agree to bf16 rounding there and labels wherever there is no near-tie.
    """
    tolerance = 1e-4 if predictor.placement.precision == "fp32" else 1e-2
    probs = predictor.predict_proba(texts)
    assert len(predictions) == len(texts)
    for answer, row in zip(predictions, probs, strict=True):
        first, second = np.sort(row)[::-1][:2]
        if first - second > 2 * tolerance:
            assert answer["label"] == predictor.labels[int(row.argmax())]
        assert answer["confidence"] == pytest.approx(float(first), abs=tolerance)
        assert answer["needs_review"] == (answer["confidence"] < THRESHOLD)
        assert [t["confidence"] for t in answer["top"]] == sorted(
            (t["confidence"] for t in answer["top"]), reverse=True
        )
        assert answer["top"][0] == {"label": answer["label"], "confidence": answer["confidence"]}


def test_one_ticket_is_labelled_as_the_predictor_labels_it(client, predictor):
    text = "I was charged twice on my invoice"
    status, body = client.call("POST", "/predict", {"text": text, "top_k": 2})
    assert status == 200
    assert len(body["predictions"][0]["top"]) == 2
    assert_matches_predictor(body["predictions"], [text], predictor)


def test_tickets_are_joined_from_the_runs_text_columns_like_training(client, predictor):
    import pandas as pd

    tickets = [{"ticket": "My parcel never arrived", "other": "ignored"}, {"ticket": " Log in "}]
    status, body = client.call("POST", "/predict", {"tickets": tickets})
    assert status == 200
    texts = ticket_texts(pd.DataFrame(tickets), ["ticket"])
    assert_matches_predictor(body["predictions"], texts, predictor)


def test_a_batch_of_texts_matches_the_predictor(client, predictor):
    texts = [f"Where is my package number {i}" for i in range(20)] + ["reset link broken"]
    status, body = client.call("POST", "/predict", {"texts": texts})
    assert status == 200
    assert_matches_predictor(body["predictions"], texts, predictor)


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({}, 422, "exactly one"),
        ({"text": "a", "texts": ["b"]}, 422, "exactly one"),
        ({"text": "   "}, 422, "no text"),
        ({"texts": []}, 422, "no tickets"),
        ({"tickets": [{"subject": "no such column"}]}, 422, "text columns"),
        ({"text": "hi", "top_k": 0}, 422, "top_k"),
        ({"texts": ["x"] * 51}, 413, "at most 50"),
    ],
)
def test_bad_requests_get_a_plain_json_message(client, payload, status, words):
    answer_status, body = client.call("POST", "/predict", payload)
    assert answer_status == status
    assert set(body) == {"error"} and words in body["error"]


def test_malformed_json_is_a_400(client):
    status, body = client.call("POST", "/predict", raw=b'{"text": ')
    assert status == 400 and "not valid JSON" in body["error"]


def test_a_body_over_the_size_limit_is_a_413_before_it_is_read(client):
    """The declared size is refused at once: the 3 MB body is never sent."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(client.base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(3 * 1024 * 1024))
    connection.putheader("X-API-Key", KEY)
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 413 and "2,097,152" in body["error"]


@pytest.mark.parametrize("key", [None, "wrong"])
def test_predict_and_model_need_the_api_key(client, key):
    assert client.call("POST", "/predict", {"text": "refund"}, key=key)[0] == 401
    status, body = client.call("GET", "/model", key=key)
    assert status == 401 and "API key" in body["error"]


def test_concurrent_requests_are_all_answered_correctly(client, predictor):
    words = ["refund", "password", "courier"]
    texts = [f"{words[i % 3]} problem number {i}" for i in range(48)]

    def ask(i: int):
        if i % 4 == 0:
            return texts[i : i + 4], client.call("POST", "/predict", {"texts": texts[i : i + 4]})
        return [texts[i]], client.call("POST", "/predict", {"text": texts[i]})

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(ask, range(len(texts))))
    for sent, (status, body) in answers:
        assert status == 200
        assert_matches_predictor(body["predictions"], sent, predictor)


def test_micro_batcher_scores_waiting_requests_together():
    """Requests that arrive while a batch is scored go into the next batch, not one by one."""
    import asyncio
    import concurrent.futures
    import threading

    from core.serving import MicroBatcher

    calls: list[int] = []
    gate = threading.Event()

    def score(texts: list[str]) -> np.ndarray:
        gate.wait(5)
        calls.append(len(texts))
        return np.array([[float(len(t))] for t in texts])

    async def scenario():
        batcher = MicroBatcher(score, max_batch=64, max_wait_ms=1)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)  # the first batch is now being scored
        rest = [asyncio.create_task(batcher.submit(["b" * i])) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.stop()
        return results

    # A fresh thread: an event loop left running in this one (Playwright's sync API, when the
    # browser tests ran first in the same process) makes asyncio.run refuse.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, scenario()).result(timeout=60)
    # The first request is scored alone; the ten that waited meanwhile go in far fewer passes
    # than ten (exactly how many depends on thread timing on a busy machine).
    assert calls[0] == 1 and sum(calls) == 11 and len(calls) <= 3, calls
    assert [float(r[0, 0]) for r in results] == [1.0, *range(1, 11)]


def test_threshold_option_overrides_the_saved_one(served_run):
    from core.serving import load_service

    assert load_service(served_run).threshold == THRESHOLD
    assert load_service(served_run, threshold=0.9).threshold == 0.9


def test_the_use_pages_command_and_curl_example_work_as_shown(client, served_run):
    import shlex

    from core.service_hint import service_hint

    hint = service_hint(Run(served_run), port=8123)
    assert shlex.split(hint.command) == ["python", "-m", "core", "serve", str(served_run),
                                         "--port", "8123"]  # fmt: skip
    words = shlex.split(hint.curl.replace("\\\n", " "))
    assert words[:2] == ["curl", "-s"] and words[2] == "http://127.0.0.1:8123/predict"
    body = json.loads(words[words.index("-d") + 1])
    assert list(body["tickets"][0]) == ["ticket"]  # the run's text column
    status, answer = client.call("POST", "/predict", body)
    assert status == 200 and len(answer["predictions"]) == 1
