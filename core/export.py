"""Export a trained run as one zip an engineer can load elsewhere."""

from __future__ import annotations

import io
import zipfile

from core.errors import RunNotFoundError
from core.runs import Run

README = """TicketTune model export
=======================

model/          the encoder (transformers save_pretrained, safetensors), tokenizer,
                head.safetensors (the classification layer) and tickettune.json (labels,
                maximum length, pooling)
metrics.json    test-set metrics of the model, the TF-IDF baseline and the quick model
config.json     training settings;  scheme.json  how labels were read from the spreadsheet

Load it with TicketTune:   from core.inference import Predictor
                           Predictor.load("model").predict(["my printer is on fire"])
or score a file:           python -m core predict <unzipped folder> --data new.csv --out scored.csv
"""

INCLUDED_FILES = ("metrics.json", "config.json", "scheme.json", "report.json", "evaluation.json")


def model_archive(run: Run) -> bytes:
    """Zip of the model folder plus the run's settings and metrics."""
    if not run.model_dir.is_dir():
        raise RunNotFoundError(f"Run '{run.id}' has no trained model to export.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("README.txt", README)
        for path in sorted(run.model_dir.rglob("*")):
            if path.is_file():
                zf.write(path, f"model/{path.relative_to(run.model_dir)}")
        for name in INCLUDED_FILES:
            if (run.path / name).is_file():
                zf.write(run.path / name, name)
    return buffer.getvalue()
