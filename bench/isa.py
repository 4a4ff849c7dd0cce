"""Print the shell lines that put the following commands in an instruction-set mode.

    eval "$(python -m bench.isa avx2)"     # torch / MKL / oneDNN limited to AVX2, bf16 off
    eval "$(python -m bench.isa native)"   # undo: every variable of every mode unset

The variables themselves live in ``core.threads`` (their one home); bench/run_all.sh uses this.
"""

from __future__ import annotations

import argparse
import shlex

from core.threads import ISA_CHOICES, ISA_ENV, ISA_LIBRARY_ENV, isa_environment


def shell_lines(isa: str) -> list[str]:
    names = sorted({ISA_ENV, *(k for env in ISA_LIBRARY_ENV.values() for k in env)})
    lines = [f"unset {' '.join(names)}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in isa_environment(isa).items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("isa", choices=ISA_CHOICES)
    print("\n".join(shell_lines(parser.parse_args(argv).isa)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
