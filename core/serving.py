"""The scoring service: a FastAPI app that labels helpdesk tickets with a trained run.

``python -m core serve RUN_DIR`` runs it on uvicorn. Concurrent requests are micro-batched: a
single worker collects the tickets of all waiting requests (up to ``max_batch`` tickets or
``max_wait_ms``) and scores them in one forward pass, so throughput holds under load while a
lone request waits only a few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException

from core.errors import ConfigError
from core.runs import Run
from core.service_hint import API_KEY_ENV as API_KEY_ENV  # re-exported for the CLI
from core.service_hint import run_text_columns
from core.text import cell_to_str, ticket_texts

API_KEY_HEADER = "X-API-Key"
CellValue = str | int | float | bool | None


@dataclass(frozen=True)
class ServiceLimits:
    """How much one request may ask for, and how the micro-batcher groups requests."""

    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_tickets: int = 1000
    max_body_bytes: int = 2 * 1024 * 1024


@dataclass
class ModelService:
    """A loaded run and what the service says about it. The API key is read from the
    environment variable ``API_KEY_ENV`` by the CLI."""

    predictor: Any
    run_id: str
    text_columns: list[str]
    threshold: float | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "labels": self.predictor.labels,
            "text_columns": self.text_columns,
            "threshold": self.threshold,
            "metrics": self.metrics,
            "max_length": self.predictor.meta.max_length,
            "device": self.predictor.placement.describe(),
        }


def load_service(
    run_dir: str | Path, *, threshold: float | None = None, device: str = "auto"
) -> ModelService:
    """Load a run for serving; ``threshold`` overrides the run's saved automation threshold."""
    from core.inference import Predictor

    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"The threshold must be between 0 and 1, not {threshold}.")
    run = Run(run_dir)
    predictor = Predictor.load(run_dir, device=device)
    predictor.prepare_single_tickets()  # single requests on ONNX Runtime once it is exported
    metrics = run.read_json("metrics.json", default={}) or {}
    return ModelService(
        predictor=predictor,
        run_id=run.id,
        text_columns=run_text_columns(run),
        threshold=threshold if threshold is not None else run.automation_threshold(),
        metrics={k: metrics[k] for k in ("model", "baseline") if k in metrics},
    )


# --- request and response schemas (they make /docs) -------------------------------------------


class PredictRequest(BaseModel):
    """One ticket as ``text``, several as ``texts``, or tickets with the run's text columns."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "I was charged twice for my invoice"},
                {"tickets": [{"subject": "Refund", "body": "I was charged twice this month"}]},
            ]
        },
    )
    text: str | None = Field(None, description="one ticket's text")
    texts: list[str] | None = Field(None, description="several tickets' texts")
    tickets: list[dict[str, CellValue]] | None = Field(
        None, description="tickets as objects with the run's text columns (see GET /model)"
    )
    top_k: int = Field(3, ge=1, le=20, description="how many labels to list per ticket")

    @model_validator(mode="after")
    def _one_kind(self) -> PredictRequest:
        given = [n for n in ("text", "texts", "tickets") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError('send exactly one of "text", "texts" or "tickets"')
        return self


class LabelScore(BaseModel):
    label: str
    confidence: float


class TicketPrediction(BaseModel):
    label: str
    confidence: float = Field(description="how sure the model is (0-1)")
    needs_review: bool | None = Field(
        description="true when less sure than the threshold; null when the run has none"
    )
    top: list[LabelScore]


class PredictResponse(BaseModel):
    run_id: str
    threshold: float | None
    predictions: list[TicketPrediction]


class HealthResponse(BaseModel):
    status: str
    run_id: str
    device: str


class ModelResponse(BaseModel):
    run_id: str
    labels: list[str]
    text_columns: list[str]
    threshold: float | None
    metrics: dict[str, Any]
    max_length: int
    device: str


class ErrorResponse(BaseModel):
    error: str


class RequestProblem(Exception):
    """A request the service refuses, with the HTTP status and a plain message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- micro-batching ------------------------------------------------------------------------------


class MicroBatcher:
    """Groups the tickets of concurrent requests into one call of ``score``.

    One asyncio task takes requests off a queue; one worker thread runs the model, so the
    event loop keeps accepting requests while a batch is scored.
    """

    def __init__(
        self, score: Callable[[list[str]], np.ndarray], max_batch: int, max_wait_ms: float
    ) -> None:
        self._score = score
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")
        self._task: asyncio.Task | None = None
        self.batches = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def submit(self, texts: list[str]) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((texts, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            count = len(items[0][0])
            deadline = loop.time() + self._max_wait
            while count < self._max_batch and (left := deadline - loop.time()) > 0:
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
                items.append(item)
                count += len(item[0])
            await self._score_items(loop, items)

    async def _score_items(self, loop, items: list[tuple[list[str], asyncio.Future]]) -> None:
        texts = [text for request_texts, _ in items for text in request_texts]
        try:
            probs = await loop.run_in_executor(self._executor, self._score, texts)
        except Exception as exc:  # the requests in this batch fail; the service goes on
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        start = 0
        for request_texts, future in items:
            end = start + len(request_texts)
            if not future.done():  # a client that went away leaves a cancelled future
                future.set_result(probs[start:end])
            start = end


# --- the app -------------------------------------------------------------------------------------


def request_texts(request: PredictRequest, text_columns: Sequence[str], limit: int) -> list[str]:
    """The ticket texts of a request, joined like training joined them; refuses bad ones."""
    if request.text is not None:
        texts = [request.text]
    elif request.texts is not None:
        texts = list(request.texts)
    else:
        tickets = request.tickets or []
        if any(not set(t) & set(text_columns) for t in tickets):
            bad = next(i for i, t in enumerate(tickets, 1) if not set(t) & set(text_columns))
            raise RequestProblem(
                422,
                f"Ticket {bad} has none of the model's text columns "
                f"({', '.join(text_columns)}). See GET /model.",
            )
        cells = [{c: cell_to_str(t.get(c)) for c in text_columns} for t in tickets]
        texts = ticket_texts(pd.DataFrame(cells, columns=list(text_columns)), text_columns)
    if not texts:
        raise RequestProblem(422, "The request holds no tickets.")
    if len(texts) > limit:
        raise RequestProblem(
            413, f"{len(texts)} tickets in one request; send at most {limit} per request."
        )
    empty = [i for i, t in enumerate(texts, 1) if not t.strip()]
    if empty:
        raise RequestProblem(422, f"Ticket {empty[0]} has no text. Every ticket needs some.")
    return texts


def create_app(
    service: ModelService, *, api_key: str | None = None, limits: ServiceLimits | None = None
) -> FastAPI:
    limits = limits or ServiceLimits()
    batcher = MicroBatcher(
        lambda texts: service.predictor.predict_proba(texts), limits.max_batch, limits.max_wait_ms
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="TicketTune scoring service",
        description=f"Labels helpdesk tickets with run {service.run_id}.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    def check_key(given: str | None = Depends(key_header)) -> None:
        if api_key and not (given and secrets.compare_digest(given, api_key)):
            raise RequestProblem(401, f"Missing or wrong API key: send it in {API_KEY_HEADER}.")

    _add_error_handlers(app, limits)
    errors = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422)}

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        device = service.predictor.placement.describe()
        return {"status": "ok", "run_id": service.run_id, "device": device}

    @app.get("/model", response_model=ModelResponse, dependencies=[Depends(check_key)])
    async def model() -> dict[str, Any]:
        return service.info()

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=errors,
        dependencies=[Depends(check_key)],
    )
    async def predict(body: PredictRequest) -> dict[str, Any]:
        texts = request_texts(body, service.text_columns, limits.max_tickets)
        probs = await batcher.submit(texts)
        return {
            "run_id": service.run_id,
            "threshold": service.threshold,
            "predictions": [_prediction(row, service, body.top_k) for row in probs],
        }

    return app


def _prediction(row: np.ndarray, service: ModelService, top_k: int) -> dict[str, Any]:
    labels = service.predictor.labels
    order = np.argsort(-row)[:top_k]
    top = [{"label": labels[i], "confidence": float(row[i])} for i in order]
    confidence = top[0]["confidence"]
    review = None if service.threshold is None else bool(confidence < service.threshold)
    return {"label": top[0]["label"], "confidence": confidence, "needs_review": review, "top": top}


def _add_error_handlers(app: FastAPI, limits: ServiceLimits) -> None:
    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        if request.method == "POST":
            declared = request.headers.get("content-length")
            size = int(declared) if declared and declared.isdigit() else len(await request.body())
            if size > limits.max_body_bytes:
                return _error(
                    413,
                    f"The request is {size:,} bytes; the most this service takes is "
                    f"{limits.max_body_bytes:,}. Send fewer tickets per request.",
                )
        return await call_next(request)

    @app.exception_handler(RequestProblem)
    async def problem(_request: Request, exc: RequestProblem) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def http_problem(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return _error(400, "The request body is not valid JSON.")
        return _error(422, "; ".join(_describe(p) for p in problems[:5]))


def _describe(problem: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
    message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})
