"""The ``hsiseu`` command: package tools outside the workflow (the workflow runs the study)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hsiseu", description="hsiseu command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("faults-benchmark", help="time a model's fault-injection engines against the naive loop a user "
                   "would write, on the campaign's faults (.keras float, .tflite int8)", add_help=False)
    sub.add_parser("faults-campaign", help="a fault-injection campaign on your own .keras or .tflite model and .npy data",
                   add_help=False)
    sub.add_parser("faults-sampling-plan", help="faults and time the paper's guarantee costs per sampling method and "
                   "population, from a campaign's per-bit profile (and projected for the paper-size model)",
                   add_help=False)
    sub.add_parser("findings-variance", help="split each model-level error rate's variance over replicates into "
                   "between-model and within-model (fault sampling) parts: how many faults a model needs",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "findings-variance":
        from hsiseu.findings.components import main as components

        return components(rest)
    if args.command == "faults-sampling-plan":
        from hsiseu.faults.sampling_plan import main as plan

        return plan(rest)
    if args.command == "faults-campaign":
        from hsiseu.faults.standalone import main as standalone

        return standalone(rest)
    if args.command == "faults-benchmark":
        from hsiseu.faults.benchmark import main as benchmark

        return benchmark(rest)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
