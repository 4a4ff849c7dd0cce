"""Command line: ``python -m core train|evaluate|predict|runs``.

The last line of stdout of train/evaluate is one JSON object for scripts; progress and
messages go to stderr. A user error is one line on stderr and exit code 2, never a traceback.
torch and transformers are imported inside the commands that load a model, so ``--help`` and
``runs`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from core.auth import cmd_hash_password
from core.config import AUTO_BATCH_NOTE, AUTO_EPOCHS_NOTE, METHODS, TrainConfig
from core.errors import TicketTuneError
from core.jobs import JobManager, JobSnapshot
from core.model_choice import model_choice_note
from core.runs import RunStore
from core.schema import LabelScheme

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def read_table(path, **kwargs):
    """``core.tables.read_table``, imported on first use: pandas and charset-normalizer take
    ~0.6 s to load, which commands that read no file (``--help``, ``runs``) must not pay."""
    from core.tables import read_table as read

    return read(path, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier on a ticket file")
    train.add_argument(
        "--data", help="CSV, TSV, Excel or JSONL file of tickets (with --distill-from: optional)"
    )
    train.add_argument(
        "--text-column", action="append", dest="text_columns", help="(default: the run's)"
    )
    train.add_argument("--label-column", help="(with --from-run: default the earlier run's)")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a cancelled or interrupted run from its last checkpoint (same folder, "
        "settings and split); no other options needed",
    )
    train.add_argument("--test-data", help="a separate file of test tickets (same columns)")
    train.add_argument("--split-column", help="column saying train/validation/test per row")
    train.add_argument("--model", default="default", help="'default', a Hugging Face id or folder")
    train.add_argument("--method", default=TrainConfig.method, choices=METHODS)
    train.add_argument(
        "--epochs", type=float, default=TrainConfig.epochs, help=f"default: {AUTO_EPOCHS_NOTE}"
    )
    train.add_argument("--time-budget", type=float, help="minutes; stops at the best checkpoint")
    train.add_argument("--learning-rate", type=float)
    train.add_argument(
        "--batch-size", type=int, default=TrainConfig.batch_size, help=f"default: {AUTO_BATCH_NOTE}"
    )
    train.add_argument("--class-weighting", action="store_true")
    train.add_argument("--min-count", type=int, default=LabelScheme.min_count)
    train.add_argument("--seed", type=int, default=TrainConfig.seed)
    train.add_argument("--adversarial", action="store_true", help="train against small typos")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--from-run", help="retrain this run's model with the new tickets")
    start.add_argument(
        "--distill-from", help="make a smaller, faster copy of this run's model (distillation)"
    )
    train.add_argument(
        "--replay-fraction",
        type=float,
        default=TrainConfig.replay_fraction,
        help="with --from-run: earlier tickets replayed, as a share of the new ones",
    )
    train.add_argument(
        "--student-layers", type=int, default=TrainConfig.student_layers, help="distillation"
    )
    train.add_argument("--unlabelled", help="distillation: a file of extra tickets without labels")
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
    review = predict.add_mutually_exclusive_group()
    review.add_argument(
        "--threshold",
        type=float,
        help="mark rows the model is less sure about (0-1) as needs_review "
        "(default: the threshold saved with the run, if any)",
    )
    review.add_argument(
        "--no-threshold", action="store_true", help="no needs_review column, whatever was saved"
    )
    predict.add_argument("--chunk-rows", type=int, help="tickets read at a time (memory use)")

    for command in (train, evaluate, predict):
        command.add_argument("--encoding", help="text encoding of the files, e.g. cp1251")

    serve = sub.add_parser("serve", help="answer label requests over HTTP (a FastAPI service)")
    serve.add_argument("run_dir")
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--threshold", type=float, help="needs_review below this (default: run's)")
    serve.add_argument("--api-key", help="require this key (default: $TICKETTUNE_API_KEY)")
    serve.add_argument("--max-batch", type=int, default=64, help="most tickets per forward pass")
    serve.add_argument("--max-tickets", type=int, default=1000, help="most tickets per request")

    runs = sub.add_parser("runs", help="list runs with their status and test scores")
    runs.add_argument("--runs-dir")

    audit = sub.add_parser("audit", help="rank tickets by how likely their label is wrong")
    audit.add_argument("--data", required=True, help="CSV, TSV, Excel or JSONL file of tickets")
    audit.add_argument("--text-column", action="append", required=True, dest="text_columns")
    audit.add_argument("--label-column", required=True)
    audit.add_argument("--out", required=True, help="CSV file to write")
    audit.add_argument("--model", default="default", help="'default', a Hugging Face id or folder")
    audit.add_argument("--folds", type=int, default=5, help="cross-validation folds (at least 2)")
    sub.add_parser("hash-password", help="print a team-password line for .streamlit/secrets.toml")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}
    handlers["runs"] = cmd_runs
    handlers["serve"] = cmd_serve
    handlers["audit"] = cmd_audit
    handlers["hash-password"] = cmd_hash_password
    try:
        return handlers[args.command](args)
    except TicketTuneError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _quiet_model_loading() -> None:
    """No transformers download/loading bars in between our own progress lines."""
    import transformers

    transformers.utils.logging.disable_progress_bar()


def cmd_train(args: argparse.Namespace) -> int:
    from core.pipeline import ResumeRequest, execute

    if args.resume:
        folder = Path(args.resume).expanduser()
        if not folder.is_dir():
            raise TicketTuneError(f"{args.resume} is not a run folder.")
        _quiet_model_loading()
        manager = JobManager(RunStore(folder.resolve().parent), execute)
        return _run_job(manager, lambda: manager.resubmit(folder.resolve().name, ResumeRequest()))
    _quiet_model_loading()
    request = _train_request(args)
    # [distributed] Under torchrun, ranks other than 0 train along but write and print nothing.
    from core.distributed import is_main_process, run_worker_rank

    if not is_main_process():
        return run_worker_rank(execute, request)
    manager = JobManager(RunStore(args.runs_dir), execute)
    return _run_job(
        manager,
        lambda: manager.submit(request, name=args.name, status_fields=request.describe()),
    )


def _run_job(manager: JobManager, start) -> int:
    """Start the job, follow it to the end; exit 0 with the result JSON if it succeeded."""
    try:
        run_id = start()
    except BaseException:
        manager.shutdown(wait=True)
        raise
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
    note = model_choice_note(snapshot.result or {})
    if note:
        print(note, file=sys.stderr)
    print(json.dumps(snapshot.result))
    return 0


def _train_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "method": args.method,
        "epochs": args.epochs,
        "time_budget_minutes": args.time_budget,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "class_weighting": args.class_weighting,
        "seed": args.seed,
        "adversarial": args.adversarial,
    }


def _train_request(args: argparse.Namespace):
    """The TrainingRequest the train arguments describe (plain, retrain or distil)."""
    import dataclasses

    from core.pipeline import TrainingRequest

    settings = _train_settings(args)
    if args.unlabelled and not args.distill_from:
        raise TicketTuneError("--unlabelled is used with --distill-from only.")
    unlabelled = _unlabelled_texts(args) if args.unlabelled else ()
    if args.distill_from and not args.data:
        from core.distill import request_distillation

        settings["student_layers"] = args.student_layers
        return request_distillation(args.distill_from, unlabelled_texts=unlabelled, **settings)
    if not args.data:
        raise TicketTuneError("Say which tickets to train on: --data FILE.")
    table = read_table(args.data, encoding=args.encoding)
    if args.from_run:
        from core.continual import request_from_run

        request = request_from_run(
            args.from_run,
            table,
            source_name=Path(args.data).name,
            replay_fraction=args.replay_fraction,
            **settings,
        )
        scheme = _with_columns(request.scheme, args)
    else:
        if not args.text_columns or not args.label_column:
            raise TicketTuneError("Say which columns to read: --text-column and --label-column.")
        scheme = LabelScheme(
            text_columns=tuple(args.text_columns),
            label_column=args.label_column,
            min_count=args.min_count,
        )
        extra = {}
        if args.distill_from:
            extra = {"teacher_run": args.distill_from, "student_layers": args.student_layers}
        request = TrainingRequest(
            table=table,
            scheme=scheme,
            config=TrainConfig(model=args.model, **settings, **extra),
            unlabelled_texts=unlabelled,
        )
    scheme.check_columns(table)
    return dataclasses.replace(
        request,
        scheme=scheme,
        test_table=read_table(args.test_data, encoding=args.encoding) if args.test_data else None,
        split_column=args.split_column,
        source_name=Path(args.data).name,
        test_source_name=Path(args.test_data).name if args.test_data else "",
    )


def _with_columns(scheme: LabelScheme, args: argparse.Namespace) -> LabelScheme:
    """The earlier run's scheme, with the columns given on the command line, if any."""
    import dataclasses

    changes: dict[str, Any] = {}
    if args.text_columns:
        changes["text_columns"] = tuple(args.text_columns)
    if args.label_column:
        changes["label_column"] = args.label_column
    return dataclasses.replace(scheme, **changes) if changes else scheme


def _unlabelled_texts(args: argparse.Namespace) -> tuple[str, ...]:
    from core.faster_copy import unlabelled_from_table

    table = read_table(args.unlabelled, encoding=args.encoding)
    return unlabelled_from_table(args.distill_from, table, args.text_columns)


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
            if interactive:  # replace the last live bar, which may be mid-way (early stop)
                print("\r\033[K" + _end_line(snapshot), file=sys.stderr, flush=True)
            return snapshot
        if interactive and snapshot.total_steps:
            print("\r" + _progress_bar(snapshot), end="", file=sys.stderr, flush=True)
        time.sleep(0.5)


def _end_line(snapshot: JobSnapshot, width: int = 30) -> str:
    """The bar's last state: 100% done (and why training stopped), or how the run ended."""
    if snapshot.state != "succeeded":
        return f"[{'.' * width}] {snapshot.state}: {snapshot.reason}"
    stop = (snapshot.result or {}).get("stop_reason")
    why = f" (training stopped: {stop})" if stop and stop != "completed" else ""
    return f"[{'#' * width}] 100% done in {_minutes(snapshot.elapsed_seconds)}{why}"


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
    from core.pipeline import seen_in_training

    _quiet_model_loading()
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
    prepared = scheme.apply(read_table(args.data, encoding=args.encoding))
    texts = prepared.frame["text"].tolist()
    seen = seen_in_training(args.run_dir, texts)
    if seen:
        print(
            f"warning: {seen} of {len(texts)} evaluated tickets were among this run's training/"
            "validation tickets; scores on them look better than on new tickets.",
            file=sys.stderr,
        )
    probabilities = predictor.predict_proba(texts)
    result = evaluate(prepared.frame, probabilities, predictor.labels).metrics
    scores = {k: result[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n")}
    print(json.dumps({**scores, "seen_in_training": seen}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    # Streams the file chunk by chunk (core.batch_scoring): memory stays flat at any size.
    from core.batch_scoring import DEFAULT_CHUNK_ROWS, progress_bar, score_file

    chunk_rows = DEFAULT_CHUNK_ROWS if args.chunk_rows is None else args.chunk_rows
    if chunk_rows < 1:
        raise TicketTuneError("--chunk-rows must be at least 1.")

    _quiet_model_loading()
    predictor = _load_run_predictor(args.run_dir)
    saved = _run_scheme(args.run_dir)
    text_columns = args.text_columns or (list(saved.text_columns) if saved else None)
    if not text_columns:
        raise TicketTuneError("Say which column holds the ticket text: --text-column.")
    threshold = None if args.no_threshold else args.threshold
    if threshold is None and not args.no_threshold:
        threshold = predictor.threshold
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise TicketTuneError(f"--threshold must be between 0 and 1 (got {threshold}).")
    interactive = sys.stderr.isatty()
    last = [0.0]

    def show(progress) -> None:
        now = time.monotonic()
        if interactive or now - last[0] >= 10 or progress.fraction >= 1:
            end = "" if interactive and progress.fraction < 1 else "\n"
            print(("\r" if interactive else "") + progress_bar(progress), end=end, file=sys.stderr)
            last[0] = now

    n = score_file(
        predictor,
        args.data,
        args.out,
        text_columns,
        threshold=threshold,
        chunk_rows=chunk_rows,
        encoding=args.encoding,
        on_progress=show,
    )
    where = predictor.placement.describe()
    print(f"Wrote {n} scored tickets to {args.out} (scored on the {where})", file=sys.stderr)
    print(json.dumps({"out": args.out, "n": n, "threshold": threshold}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from core.serving import API_KEY_ENV, ServiceLimits, create_app, load_service

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    service = load_service(args.run_dir, threshold=args.threshold)
    limits = ServiceLimits(max_batch=args.max_batch, max_tickets=args.max_tickets)
    app = create_app(service, api_key=api_key, limits=limits)
    print(
        f"Serving run {service.run_id} on http://{args.host}:{args.port} "
        f"(docs at /docs{', API key required' if api_key else ''})",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    summaries = RunStore(args.runs_dir).list()
    if not summaries:
        print("No runs yet. Train one with: python -m core train --data FILE ...")
        return 0
    print(f"{'run':<40} {'state':<11} {'method':<7} {'macro-F1':>8} {'baseline':>8}  note")
    for s in summaries:
        print(
            f"{s.run_id:<40} {s.state:<11} {s.method or '-':<7} "
            f"{_fmt(s.macro_f1):>8} {_fmt(s.baseline_macro_f1):>8}  {_note(s)}".rstrip()
        )
    return 0


def _note(summary) -> str:
    """Why a run needs attention: damaged folder, best model kept, can be resumed."""
    parts = [summary.reason] if summary.damaged else []
    if summary.stopped_early_note:
        parts.append(summary.stopped_early_note)
    if summary.resumable:
        parts.append(f"resume with: python -m core train --resume {summary.path}")
    return "; ".join(parts)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def cmd_audit(args: argparse.Namespace) -> int:
    """Every ticket, most suspicious label first; the last stdout line is JSON."""
    from core.audit import AuditConfig, audit_labels
    from core.progress import ProgressEvent
    from core.scoring import spreadsheet_safe

    if args.folds < 2:
        raise TicketTuneError(f"--folds must be at least 2 (got {args.folds}).")

    def progress(event: ProgressEvent) -> None:
        if event.message:
            print(event.message, file=sys.stderr)

    table = read_table(args.data)
    scheme = LabelScheme(
        text_columns=tuple(args.text_columns), label_column=args.label_column, min_count=1
    )
    prepared = scheme.apply(table)
    config = AuditConfig(model=args.model, folds=args.folds)
    result = audit_labels(prepared, config, progress=progress)
    columns = ["row", *result.id_columns, "text", "given_label", "suggested_label", "score"]
    out = result.tickets[[*columns, "sheet_row", "flagged"]]
    spreadsheet_safe(out).to_csv(args.out, index=False)
    print(
        f"Wrote {len(out)} tickets to {args.out}, most suspicious first "
        f"({result.n_flagged} flagged as likely wrong; {result.folds} folds).",
        file=sys.stderr,
    )
    summary = {"n_rows": len(out), "n_flagged": result.n_flagged, "out": args.out}
    summary["rows_read"] = prepared.rows_read
    print(json.dumps(summary))
    return 0


def one_line(message: str) -> str:
    """The message on one line with no terminal control characters (a file or column name may
    hold a vertical tab or an escape sequence): those are shown escaped, like ``\\x1b``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)
