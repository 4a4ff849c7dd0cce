"""Retrain with new tickets: head growth, stable label ids, replay and both test sets."""

import threading

import pandas as pd
import pytest
import torch

from core.config import TrainConfig
from core.continual import request_from_run, with_replay
from core.continual_training import ContinualTrainer
from core.errors import ConfigError
from core.pipeline import execute
from core.runs import RunStore
from tests.helpers import topic_frame, topic_split

REFUND_WORDS = ["money back", "return the item", "refund status", "send it back"]


def new_tickets(n: int = 30) -> pd.DataFrame:
    """New tickets: the old topics plus a label the parent never saw ("returns")."""
    old = topic_frame(n // 3, seed=7).drop(columns="row")
    returns = pd.DataFrame(
        {
            "text": [f"I want {REFUND_WORDS[i % 4]} (order {i})" for i in range(n)],
            "label": "returns",
        }
    )
    return pd.concat([old, returns], ignore_index=True).sample(frac=1, random_state=0)


def new_split(parent_config: TrainConfig):
    frame = new_tickets().reset_index(drop=True)
    frame.insert(0, "row", range(len(frame)))
    n = len(frame)
    from core.split import DataSplit

    return DataSplit(
        frame.iloc[: int(n * 0.7)].reset_index(drop=True),
        frame.iloc[int(n * 0.7) : int(n * 0.85)].reset_index(drop=True),
        frame.iloc[int(n * 0.85) :].reset_index(drop=True),
        "stratified",
    )


def test_head_grows_and_old_labels_keep_their_ids_and_rows(trained_run, tiny_model_dir):
    from core.modeling import load_classifier

    parent, _, parent_meta = load_classifier(trained_run.model_dir)
    config = TrainConfig(model=str(tiny_model_dir), parent_run=str(trained_run.path), epochs=1)
    split = with_replay(new_split(config), config)
    steps = ContinualTrainer(config, split)
    steps.load()
    assert steps.labels[: len(parent_meta.labels)] == parent_meta.labels
    assert steps.labels == [*parent_meta.labels, "returns"]
    assert steps.label_ids["returns"] == len(parent_meta.labels)
    steps.embed()
    steps.fit_head()
    n_old = len(parent_meta.labels)
    torch.testing.assert_close(steps.model.head.weight[:n_old], parent.head.weight, rtol=0, atol=0)
    torch.testing.assert_close(steps.model.head.bias[:n_old], parent.head.bias, rtol=0, atol=0)
    assert steps.model.head.weight[n_old:].abs().sum() > 0, "the new row comes from the quick fit"
    for key, value in parent.encoder.state_dict().items():
        torch.testing.assert_close(steps.model.encoder.state_dict()[key], value)


def test_replay_sample_comes_from_the_parents_train_split(trained_run, tiny_model_dir):
    config = TrainConfig(
        model=str(tiny_model_dir), parent_run=str(trained_run.path), replay_fraction=0.5
    )
    split = new_split(config)
    mixed = with_replay(split, config)
    replayed = mixed.train[mixed.train["replay"]]
    assert len(replayed) == round(0.5 * len(split.train))
    parent_split = trained_run.read_frame("split.csv")
    parent_train = set(parent_split.loc[parent_split["split"] == "train", "text"])
    parent_other = set(parent_split.loc[parent_split["split"] != "train", "text"])
    assert set(replayed["text"]) <= parent_train
    assert not set(replayed["text"]) & parent_other
    again = with_replay(split, config)
    assert again.train["text"].tolist() == mixed.train["text"].tolist(), "seeded"
    none = with_replay(split, TrainConfig(parent_run=str(trained_run.path), replay_fraction=0))
    assert len(none.train) == len(split.train)


def test_retrain_run_reports_both_test_sets_and_its_parent(trained_run, tmp_path):
    request = request_from_run(
        trained_run,
        new_tickets(45).rename(columns={"text": "ticket", "label": "team"}),
        source_name="new.csv",
        epochs=2,
    )
    assert request.config.parent_run == str(trained_run.path)
    store = RunStore(tmp_path)
    run = store.create("retrain", **request.describe())
    result = execute(run, request, lambda event: None, threading.Event())
    metrics = run.metrics()
    previous = trained_run.read_frame("split.csv")
    assert metrics["previous_test"]["n"] == (previous["split"] == "test").sum()
    assert metrics["new_test"]["n"] == result["n_test"]
    assert metrics["forgetting"] == pytest.approx(
        trained_run.metrics()["model"]["macro_f1"] - metrics["previous_test"]["macro_f1"], abs=1e-3
    )
    assert run.status()["parent_run"] == str(trained_run.path)
    assert run.read_json("config.json")["parent_run"] == str(trained_run.path)
    split = run.read_frame("split.csv")
    assert split["replay"].astype(str).eq("True").sum() > 0, "replayed tickets are recorded"


def test_a_parent_without_a_model_is_a_clear_error(tmp_path, tiny_model_dir):
    empty = RunStore(tmp_path).create("never finished")
    with pytest.raises(ConfigError, match="no trained model to continue from"):
        request_from_run(empty, new_tickets())
    config = TrainConfig(model=str(tiny_model_dir), parent_run=str(empty.path))
    with pytest.raises(ConfigError, match="no trained model"):
        ContinualTrainer(config, topic_split()).load()


def test_cli_retrains_a_run_and_refuses_one_without_a_model(trained_run, tmp_path, capsys):
    import json

    from core.cli import main

    data = tmp_path / "new.csv"
    new_tickets(30).rename(columns={"text": "ticket", "label": "team"}).to_csv(data, index=False)
    empty = RunStore(tmp_path / "runs").create("unfinished")
    code = main(["train", "--from-run", str(empty.path), "--data", str(data)])
    assert code == 2
    assert "no trained model to continue from" in capsys.readouterr().err
    args = ["train", "--from-run", str(trained_run.path), "--data", str(data), "--epochs", "1"]
    code = main([*args, "--runs-dir", str(tmp_path / "runs"), "--replay-fraction", "0.25"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    child = RunStore(tmp_path / "runs").get(result["run_id"])
    assert child.read_json("config.json")["replay_fraction"] == 0.25
    assert child.status()["parent_run"] == str(trained_run.path)
    assert "previous_test" in child.metrics() and "new_test" in child.metrics()


@pytest.mark.parametrize("method", ["adapter", "prompt"])
def test_retraining_an_addon_run_keeps_training_its_addon(tiny_model_dir, tmp_path, method):
    from core.pipeline import TrainingRequest
    from core.schema import LabelScheme

    table = topic_frame(20).drop(columns="row")
    request = TrainingRequest(
        table=table,
        scheme=LabelScheme(text_columns=("text",), label_column="label"),
        config=TrainConfig(model=str(tiny_model_dir), method=method, epochs=1, batch_size=16),
    )
    parent = RunStore(tmp_path).create("parent")
    execute(parent, request, lambda event: None, threading.Event())
    config = TrainConfig(
        model=str(tiny_model_dir), method=method, parent_run=str(parent.path), epochs=1
    )
    steps = ContinualTrainer(config, with_replay(new_split(config), config))
    steps.load()
    steps.prepare_method()
    trainable = [n for n, p in steps.model.named_parameters() if p.requires_grad]
    assert steps.meta.addon["kind"] == method
    assert any("addon_modules" in n or "prompt_encoder" in n for n in trainable)
    assert not any(n.startswith("encoder.") and "prompt_encoder" not in n for n in trainable)


def test_retraining_a_quick_run_still_reports_forgetting_and_new_labels(trained_run, tmp_path):
    """The quick method ends before the test scoring of fine-tuning; the earlier test tickets
    and the new labels must be reported all the same (they were missing: no forgetting
    figure for a quick retrain)."""
    from core.continual import forgetting

    table = new_tickets(45).rename(columns={"text": "ticket", "label": "team"})
    request = request_from_run(trained_run, table, method="quick")
    run = RunStore(tmp_path).create("quick retrain", **request.describe())
    execute(run, request, lambda event: None, threading.Event())
    metrics = run.metrics()
    assert metrics["new_labels"] == ["returns"]
    figures = forgetting(metrics)
    parent_f1 = trained_run.metrics()["model"]["macro_f1"]
    assert figures.earlier_before == pytest.approx(parent_f1)
    assert figures.earlier_after == pytest.approx(metrics["previous_test"]["macro_f1"])
    assert figures.change_points == pytest.approx(-100 * metrics["forgetting"], abs=0.01)
    assert figures.new_after == pytest.approx(metrics["model"]["macro_f1"])
    assert figures.new_labels == ("returns",) and figures.parent_run == trained_run.id
    assert figures.kept_what_it_knew == (figures.change_points >= -2.0)
    assert forgetting(trained_run.metrics()) is None, "a run trained from scratch has none"


def test_new_tickets_must_have_the_runs_columns_and_the_preview_names_new_labels(trained_run):
    from core.continual import preview_new_tickets
    from core.errors import DataError

    wrong = new_tickets(30)  # "text"/"label", while the run read "ticket"/"team"
    with pytest.raises(DataError) as caught:
        request_from_run(trained_run, wrong)
    message = str(caught.value)
    assert "same columns" in message and "'ticket'" in message and "'team'" in message
    assert "its columns: text, label" in message
    with pytest.raises(DataError, match="same columns"):
        preview_new_tickets(trained_run, wrong)
    preview = preview_new_tickets(
        trained_run, wrong.rename(columns={"text": "ticket", "label": "team"})
    )
    assert preview.tickets == len(wrong)
    assert preview.new_labels == ("returns",)
    assert set(preview.known_labels) == {"billing", "login", "shipping"}
