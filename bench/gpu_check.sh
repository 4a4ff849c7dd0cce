#!/usr/bin/env bash
# GPU check, under 8 minutes: on a CUDA machine, train the default model with mixed precision
# and report training throughput (tickets/s), peak GPU memory and test macro-F1.
#
#   bench/gpu_check.sh                                  # CLINC150 intent from ../shared/data
#   bench/gpu_check.sh --data train.csv --test-data test.csv --text text --label intent
#
# Falls back to assets/sample_tickets.csv when the CLINC files are not there. Exits 2 with a
# message when there is no CUDA GPU; 124 if it ran past the time limit. Log: bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
LIMIT_S=${GPU_CHECK_LIMIT_S:-450}

if ! python -c "import torch" 2>/dev/null; then
  echo "gpu_check: torch is not installed here. Run: pip install -r requirements.txt" >&2
  exit 1
fi
if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA GPU is visible to torch on this machine (torch.cuda.is_available()" \
       "is False). Nothing to check; run this on a machine with an NVIDIA GPU." >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader || true

mkdir -p bench/out
log="bench/out/gpu_check-$(date +%Y%m%d-%H%M%S).log"
status=0
timeout "$LIMIT_S" python -m bench.gpu_check "$@" 2>&1 | tee "$log" || status=$?
if [[ $status -eq 124 ]]; then
  echo "gpu_check: stopped after ${LIMIT_S} s (time limit); see $log" >&2
fi
exit "$status"
