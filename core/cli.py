"""Command line: ``python -m core train|evaluate|predict|runs``.

The last line of stdout of train/evaluate is one JSON object for scripts; progress and
messages go to stderr. A user error is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import transformers

from core.auth import cmd_hash_password
from core.config import METHODS, TrainConfig
from core.errors import TicketTuneError
from core.io import read_table
from core.jobs import JobManager, JobSnapshot
from core.pipeline import TrainingRequest, execute
from core.runs import RunStore
from core.schema import LabelScheme

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier on a ticket file")
    train.add_argument("--data", required=True, help="CSV, TSV, Excel or JSONL file of tickets")
    train.add_argument("--text-column", action="append", required=True, dest="text_columns")
    train.add_argument("--label-column", required=True)
    train.add_argument("--test-data", help="a separate file of test tickets (same columns)")
    train.add_argument("--split-column", help="column saying train/validation/test per row")
    train.add_argument("--model", default="default", help="'default', a Hugging Face id or folder")
    train.add_argument("--method", default=TrainConfig.method, choices=METHODS)
    train.add_argument("--epochs", type=float, default=TrainConfig.epochs)
    train.add_argument("--time-budget", type=float, help="minutes; stops at the best checkpoint")
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    train.add_argument("--class-weighting", action="store_true")
    train.add_argument("--min-count", type=int, default=LabelScheme.min_count)
    train.add_argument("--seed", type=int, default=TrainConfig.seed)
    train.add_argument("--runs-dir", help="where runs are stored (default: ./runs)")
    train.add_argument("--name", help="a name for the run")

    evaluate = sub.add_parser("evaluate", help="score a labelled file with a trained run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--text-column", action="append", dest="text_columns")
    evaluate.add_argument("--label-column")

    predict = sub.add_parser("predict", help="label a file of new tickets")
    predict.add_argument("run_dir")
    predict.add_argument("--data", required=True)
    predict.add_argument("--out", required=True, help="CSV file to write")
    predict.add_argument("--text-column", action="append", dest="text_columns")
    predict.add_argument("--threshold", type=float, help="mark rows below this confidence")

    runs = sub.add_parser("runs", help="list runs with their status and test scores")
    runs.add_argument("--runs-dir")
    sub.add_parser("hash-password", help="print a team-password line for .streamlit/secrets.toml")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}
    handlers["runs"] = cmd_runs
    handlers["hash-password"] = cmd_hash_password
    try:
        return handlers[args.command](args)
    except TicketTuneError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_train(args: argparse.Namespace) -> int:
    table = read_table(args.data)
    scheme = LabelScheme(
        text_columns=tuple(args.text_columns),
        label_column=args.label_column,
        min_count=args.min_count,
    )
    scheme.check_columns(table)
    config = TrainConfig(
        model=args.model,
        method=args.method,
        epochs=args.epochs,
        time_budget_minutes=args.time_budget,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        class_weighting=args.class_weighting,
        seed=args.seed,
    )
    request = TrainingRequest(
        table=table,
        scheme=scheme,
        config=config,
        test_table=read_table(args.test_data) if args.test_data else None,
        split_column=args.split_column,
        source_name=Path(args.data).name,
        test_source_name=Path(args.test_data).name if args.test_data else "",
    )
    manager = JobManager(RunStore(args.runs_dir), execute)
    run_id = manager.submit(request, name=args.name, status_fields=request.describe())
    try:
        snapshot = _follow(manager, run_id)
    except KeyboardInterrupt:
        manager.cancel(run_id)
        manager.wait(run_id, timeout=60)
        raise
    finally:
        manager.shutdown(wait=True)
    if snapshot.state != "succeeded":
        print(f"error: run {run_id} {snapshot.state}: {snapshot.reason}", file=sys.stderr)
        return 1
    print(json.dumps(snapshot.result))
    return 0


def _follow(manager: JobManager, run_id: str) -> JobSnapshot:
    """Print the job's messages and a progress bar on stderr until it finishes."""
    shown_events = 0
    interactive = sys.stderr.isatty()
    while True:
        snapshot = manager.snapshot(run_id)
        for _time, message in snapshot.events[shown_events:]:
            print(("\r\033[K" if interactive else "") + message, file=sys.stderr)
        shown_events = len(snapshot.events)
        if snapshot.finished:
            return snapshot
        if interactive and snapshot.total_steps:
            print("\r" + _progress_bar(snapshot), end="", file=sys.stderr, flush=True)
        time.sleep(0.5)


def _progress_bar(snapshot: JobSnapshot, width: int = 30) -> str:
    filled = int(width * snapshot.fraction)
    eta = f" ETA {_minutes(snapshot.eta_seconds)}" if snapshot.eta_seconds is not None else ""
    loss = f" loss {snapshot.loss_history[-1][1]:.3f}" if snapshot.loss_history else ""
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {snapshot.fraction:4.0%} {snapshot.stage}"
        f" {snapshot.step}/{snapshot.total_steps}{loss}{eta}"
    )


def _minutes(seconds: float | None) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _load_run_predictor(run_dir: str):
    from core.inference import Predictor

    return Predictor.load(run_dir)


def _run_scheme(run_dir: str) -> LabelScheme | None:
    path = Path(run_dir) / "scheme.json"
    if path.is_file():
        return LabelScheme.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation import evaluate

    predictor = _load_run_predictor(args.run_dir)
    saved = _run_scheme(args.run_dir)
    text_columns = tuple(args.text_columns or (saved.text_columns if saved else ()))
    label_column = args.label_column or (saved.label_column if saved else None)
    if not text_columns or not label_column:
        raise TicketTuneError("Say which columns to read: --text-column and --label-column.")
    scheme = LabelScheme(
        text_columns=text_columns,
        label_column=label_column,
        rename=dict(saved.rename) if saved else {},
        drop=saved.drop if saved else (),
        min_count=1,
    )
    prepared = scheme.apply(read_table(args.data))
    probabilities = predictor.predict_proba(prepared.frame["text"].tolist())
    result = evaluate(prepared.frame, probabilities, predictor.labels).metrics
    print(json.dumps({k: result[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n")}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from core.scoring import score_table, spreadsheet_safe

    predictor = _load_run_predictor(args.run_dir)
    saved = _run_scheme(args.run_dir)
    text_columns = args.text_columns or (list(saved.text_columns) if saved else None)
    if not text_columns:
        raise TicketTuneError("Say which column holds the ticket text: --text-column.")
    table = read_table(args.data)
    scored = score_table(predictor, table, text_columns, threshold=args.threshold)
    spreadsheet_safe(scored).to_csv(args.out, index=False)
    print(f"Wrote {len(scored)} scored tickets to {args.out}", file=sys.stderr)
    print(json.dumps({"out": args.out, "n": len(scored)}))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    summaries = RunStore(args.runs_dir).list()
    if not summaries:
        print("No runs yet. Train one with: python -m core train --data FILE ...")
        return 0
    print(f"{'run':<40} {'state':<11} {'method':<7} {'macro-F1':>8} {'baseline':>8}")
    for s in summaries:
        print(
            f"{s.run_id:<40} {s.state:<11} {s.method or '-':<7} "
            f"{_fmt(s.macro_f1):>8} {_fmt(s.baseline_macro_f1):>8}"
        )
    return 0


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def one_line(message: str) -> str:
    """The message on one line with no terminal control characters (a file or column name may
    hold a vertical tab or an escape sequence): those are shown escaped, like ``\\x1b``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)
