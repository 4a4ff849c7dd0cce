"""Export a trained run as one zip an engineer can load elsewhere."""

from __future__ import annotations

import io
import zipfile

from core.errors import RunNotFoundError
from core.runs import THRESHOLD_FILE, Run

README = """TicketTune model export
=======================

model/          the encoder (transformers save_pretrained, safetensors), tokenizer,
                head.safetensors (the classification layer), tickettune.json (labels,
                maximum length, pooling) and, if one was chosen, threshold.json (how sure
                the model must be to act on its own)
metrics.json    test-set metrics of the model, the TF-IDF baseline and the quick model
config.json     training settings;  scheme.json  how labels were read from the spreadsheet

Use it from Python
------------------
Install TicketTune once (Python 3.10 or newer):

    pip install tickettune            (or: pip install /path/to/a/TicketTune/checkout)

then, in the folder where you unzipped this file:

>>> from core.inference import Predictor
>>> p = Predictor.load("model")
>>> p.predict(["my printer is on fire", "I was charged twice for my invoice"])

Each result has the label, how sure the model is (0-1) and the next best labels.
p.threshold is the sureness below which a ticket should go to a person (None if no
threshold was chosen); p.predict_frame(texts) gives a table with a needs_review column
when there is one.

Score a file from the command line:

    tickettune predict <this folder> --data new.csv --out scored.csv

(--threshold 0.8 to use another threshold, --no-threshold for none.)
"""

INCLUDED_FILES = ("metrics.json", "config.json", "scheme.json", "report.json", "evaluation.json")


def model_archive(run: Run) -> bytes:
    """Zip of the model folder (with the run's threshold) plus its settings and metrics."""
    if not run.model_dir.is_dir():
        raise RunNotFoundError(f"Run '{run.id}' has no trained model to export.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("README.txt", README)
        for path in sorted(run.model_dir.rglob("*")):
            if path.is_file():
                zf.write(path, f"model/{path.relative_to(run.model_dir)}")
        # Inside model/, so that Predictor.load("model") knows the threshold too.
        if run.exists(THRESHOLD_FILE):
            zf.write(run.file(THRESHOLD_FILE), f"model/{THRESHOLD_FILE}")
        for name in INCLUDED_FILES:
            if (run.path / name).is_file():
                zf.write(run.path / name, name)
    return buffer.getvalue()
