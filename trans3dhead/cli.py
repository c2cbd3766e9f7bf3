"""Exit codes and error messages shared by the command-line tools.

Every CLI exits 2 on bad input (the message names the file or option and the fix), 1 when it could not
write its output (full disk, read-only or non-folder path: the message names the path), and never
prints a traceback for either.
"""
from __future__ import annotations

import sys
from typing import Callable

from trans3dhead.atomic import describe_os_error

BAD_INPUT, WRITE_FAILED = 2, 1


def guarded(body: Callable[[], int | None], input_errors: tuple[type[BaseException], ...]) -> int:
    """Runs ``body``; ``input_errors`` become exit 2 and any other OSError exit 1, each one line on stderr."""
    try:
        return body() or 0
    except input_errors as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    except OSError as err:
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return WRITE_FAILED


def summary(doc: str | None) -> str:
    """A module docstring's first paragraph on one line: a ``--help`` description that does not stop
    mid-sentence where the docstring wraps."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())
