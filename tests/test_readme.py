"""The README is the contract: its two commands, a newcomer's length, and links that resolve (docs pages and
committed reports too, pictures included)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# the committed reports too: a reader of a report must not meet a broken link or picture (issue 30)
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
         *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "reports").glob("*/*.md"))]


def test_the_readme_keeps_its_two_commands_and_a_newcomers_length():
    text = (ROOT / "README.md").read_text()
    assert "pip install -e . && python -m experiments.run table3" in text
    assert "pip install -e '.[test]' && python -m pytest" in text
    assert len(text.splitlines()) <= 180


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    path = ROOT / page
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith(("#", "mailto:")):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page} links what does not exist: {broken}"
