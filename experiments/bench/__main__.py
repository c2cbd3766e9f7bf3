"""``python -m experiments.bench NAME [args]``: benchmarks that print ratios measured side by side.

NAME: synth (SynthHeads generation speed), qamem (QAMem naive vs efficient), models (Trans3DHead vs DAD-3DNet),
convergence (final NME and convergence over a grid of training budgets),
train (training loop per phase against pure forward+backward+step, and the loader alone).
"""
import importlib
import sys

BENCHMARKS = ("synth", "qamem", "models", "convergence", "train")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m experiments.bench {{{'|'.join(BENCHMARKS)}}} [args]", file=sys.stderr)
        return 2
    return importlib.import_module(f"experiments.bench.{argv[0]}").main(argv[1:])


if __name__ == "__main__":     # spawned workers re-import this module
    sys.exit(main(sys.argv[1:]))
