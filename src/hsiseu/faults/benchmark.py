"""``hsiseu faults-benchmark``: the engines of either number format against the loop a user would
write, on the campaign's own faults, in one process.

The command picks the backend's benchmark by the model file's suffix: ``.keras`` ->
:mod:`hsiseu.faults.keras.benchmark`, ``.tflite`` -> :mod:`hsiseu.faults.litert.benchmark`; what
the two share (which faults, how a loop is timed, loops taking turns) is
:mod:`hsiseu.faults.timing`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    model = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--model"),
                 next((a.split("=", 1)[1] for a in argv if a.startswith("--model=")), None))
    if model is not None and Path(model).suffix.lower() == ".tflite":
        from hsiseu.faults.litert.benchmark import main as run
    else:
        from hsiseu.faults.keras.benchmark import main as run
    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
