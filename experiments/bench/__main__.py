"""``python -m experiments.bench NAME [args]``: benchmarks that print ratios measured side by side.

NAME: synth (SynthHeads generation speed), qamem (QAMem naive vs efficient), models (Trans3DHead vs DAD-3DNet).
"""
import importlib
import sys

BENCHMARKS = ("synth", "qamem", "models")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m experiments.bench {{{'|'.join(BENCHMARKS)}}} [args]", file=sys.stderr)
        return 2
    return importlib.import_module(f"experiments.bench.{argv[0]}").main(argv[1:])


sys.exit(main(sys.argv[1:]))
