"""submitit's local job controller (``submitit.local._local``), quiet when interrupted.

Ctrl-C in a terminal reaches every process of the foreground group, the controllers of the local jobs
included; submitit's own controller then prints a ``KeyboardInterrupt`` traceback each (four on a
4-slot machine) over the submitter's one-line message. This one stops its tasks the same way
(``Controller.run``'s cleanup) and exits with 130, silently.
"""
from __future__ import annotations

import sys
from pathlib import Path

from submitit.local.local import Controller

STOCK_MODULE = "submitit.local._local"


def main(folder: str) -> int:
    try:
        Controller(Path(folder)).run()
    except KeyboardInterrupt:       # its tasks were stopped by run()'s cleanup; the submitter says why
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
