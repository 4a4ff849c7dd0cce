#!/usr/bin/env bash
# Run every benchmark once, on this machine, with the defaults; logs go to bench/out/<time>/
# and the summary of all targets (met / not met) is printed at the end (and saved as
# summary.md there). Run it when nobody else uses the CPU: other work on the same cores makes
# every number pessimistic (each log's header says the load average).
#
#   bench/run_all.sh                                full run, CLINC150 intent (~30 min, 2 cores)
#   QUALITY_LABELS="intent domain" bench/run_all.sh also time-to-quality on the domain labels
#   SMOKE=1 bench/run_all.sh                        tiny subsets (~10 min): do the scripts work?
#   bench/run_all.sh --isa avx2                     as on an ordinary CPU: torch, MKL and oneDNN
#                                                   limited to AVX2, bf16 off (core/threads.py)
#   bench/run_all.sh --isa both                     native, then AVX2; summary.md has both columns
#
# Order: time to quality first (it trains the default model), then scoring (and its ceiling,
# bench_ceiling) and responsiveness on that model, then training throughput. A failing script
# is reported; the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

ISA=native
while (( $# )); do
  case $1 in
    --isa) ISA=${2:?--isa needs native, avx2 or both}; shift 2 ;;
    --isa=*) ISA=${1#--isa=}; shift ;;
    *) echo "usage: bench/run_all.sh [--isa native|avx2|both]" >&2; exit 2 ;;
  esac
done
case $ISA in native|avx2) MODES=("$ISA") ;; both) MODES=(native avx2) ;;
  *) echo "error: --isa must be native, avx2 or both" >&2; exit 2 ;; esac

ROOT_OUT="bench/out/$(date +%Y%m%d-%H%M%S)"
LABELS=(${QUALITY_LABELS:-intent})
if [[ "${SMOKE:-0}" == 1 ]]; then
  LABELS=(domain)
  QUALITY=(--limit 600)
  TRAINING=(--limit 600 --steps 5 --warmup-steps 1)
  SCORING=(--limit 600 --calls 30 --repeats 1)
  RESPONSIVENESS=(--limit 600 --tickets 1000 --seconds 10 --quiet-seconds 3
                  --remedies as-is,try-it-1-thread)
  SHARED=(--limit 600 --steps 6 --score-tickets 300)
  CEILING=(--tickets 256)
else
  QUALITY=() TRAINING=() SCORING=() RESPONSIVENESS=() SHARED=() CEILING=()
fi

failed=()
run() {  # run NAME MODULE ARGS...: tee stdout+stderr to $OUT/NAME.log
  local name=$1; shift
  echo ">>> $name: python -m $*"
  if ! python -m "$@" 2>&1 | tee "$OUT/$name.log"; then
    failed+=("$isa/$name")
    echo ">>> $name FAILED (see $OUT/$name.log)"
  fi
}

suite() {  # one full pass in the current environment, logs in $OUT
  run machine bench.machine
  for label in "${LABELS[@]}"; do
    run "quality_$label" bench.bench_quality --label "$label" "${QUALITY[@]}"
  done
  # The default (full) model of the first label: scoring and responsiveness use it.
  first="${LABELS[0]}"
  model_args=(--label "$first")
  if run_dir=$(python -m bench.summarize --field default_run_dir "$OUT/quality_$first.log"); then
    model_args+=(--run "$run_dir")
  fi
  run scoring bench.bench_scoring "${model_args[@]}" "${SCORING[@]}"
  run ceiling bench.bench_ceiling "${CEILING[@]}"
  run responsiveness bench.bench_responsiveness "${model_args[@]}" "${RESPONSIVENESS[@]}"
  run training bench.bench_training "${TRAINING[@]}"
  run shared_cpu bench.bench_shared_cpu "${SHARED[@]}"
}

for isa in "${MODES[@]}"; do
  OUT="$ROOT_OUT"
  (( ${#MODES[@]} > 1 )) && OUT="$ROOT_OUT/$isa"
  mkdir -p "$OUT"
  echo ">>> instruction sets: $isa"
  # The variables come from core (one home); exported, every child process inherits them.
  eval "$(python -m bench.isa "$isa")"
  suite
done

echo
python -m bench.summarize "$ROOT_OUT"
echo "Logs: $ROOT_OUT"
if (( ${#failed[@]} )); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
