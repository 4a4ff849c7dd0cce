#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, lints, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -r requirements-dev.txt

# Browser tests drive Debian's Chromium (Playwright's own browser download is not used).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not found: browser tests will be skipped (apt-get install chromium)" >&2
  fi
fi

ruff check .
ruff format --check .
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest "$@"
