"""The README's claims table: the default profile's claims page (``reports/<profile>/claims.md``), the rows
that have a verdict, copied between two markers so that a stale copy fails the tests.

    python -m experiments.report.readme            # rewrite the block in README.md from the committed page
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from experiments.registry import DEFAULT_PROFILE
from experiments.report.sections import md_table

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- claims table -->"
END = "<!-- end of the claims table -->"
NOT_COMPUTED = ("not computed", "paper-only row")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def readme_table(claims_page: str) -> str:
    """The page's header and every row with a verdict; a table's link becomes its name, with the path
    from the README."""
    lines = [line for line in claims_page.splitlines() if line.startswith("|")]
    if len(lines) < 2:
        return ""
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    verdict = header.index("verdict")
    rows = [r for r in rows if not r[verdict].startswith(NOT_COMPUTED)]
    link = re.compile(r"\[(\w+)\]\((\w+)\.md\)")
    rows = [[link.sub(rf"[\1](reports/{DEFAULT_PROFILE}/\2.md)", r[0]), *r[1:]] for r in rows]
    return md_table(header, rows)


def block(claims_page: str) -> str:
    source = (f"Generated from [reports/{DEFAULT_PROFILE}/claims.md](reports/{DEFAULT_PROFILE}/claims.md) "
              "by `python -m experiments.report.readme`.")
    return f"{BEGIN}\n{source}\n\n{readme_table(claims_page)}\n{END}"


def current_block(readme: str) -> str | None:
    start, end = readme.find(BEGIN), readme.find(END)
    return None if start < 0 or end < start else readme[start:end + len(END)]


def main() -> int:
    readme_path, page = ROOT / "README.md", ROOT / "reports" / DEFAULT_PROFILE / "claims.md"
    readme = readme_path.read_text()
    old = current_block(readme)
    if old is None:
        print(f"error: README.md has no block between '{BEGIN}' and '{END}'", file=sys.stderr)
        return 2
    readme_path.write_text(readme.replace(old, block(page.read_text())))
    print(f"README.md: claims table rewritten from {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
