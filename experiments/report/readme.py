"""The README's headline: where the evidence stands, and the paper's Table 3 beside ours, copied from the default
profile's committed report (``reports/<profile>/table3.md``) with the verdicts of its claims
(``reports/<profile>/claims.md``), between two markers, so that a stale copy fails the tests. Every number in it is a
committed report's, and the paragraph on the campaign says "being regenerated" exactly while the reports' index
(``reports/<profile>/README.md``) has a run missing.

    python -m experiments.report.readme            # rewrite the block in README.md from the committed pages
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from experiments.registry import DEFAULT_PROFILE
from experiments.report.sections import EVIDENCE_COST, md_table
from experiments.report.steps import UNCONVERGED

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- headline table -->"
END = "<!-- end of the headline table -->"
HEADLINE_TABLE, HEADLINE_SECTION = "table3", "Component effectiveness"
# the columns the headline keeps, by the header's first words (a report may add columns; these stay)
ROW_COLUMNS = ("Method", "NME ↓ ours", "NME paper", "Pose Err. ↓ ours", "Pose Err. paper", "converged", "status")
CLAIM_COLUMNS = ("step", "metric", "change (paper)", "change (ours)", "seeds × images", "Holm p", "MDE",
                 "seeds needed", "verdict")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def _tables(page: str, after_heading: str | None = None) -> list[list[list[str]]]:
    """The markdown tables of ``page`` (header first), from the heading ``## after_heading`` on if given."""
    if after_heading is not None:
        start = page.find(f"## {after_heading}")
        page = page[start:] if start >= 0 else ""
    tables, current = [], []
    for line in page.splitlines() + [""]:
        if line.startswith("|"):
            current.append(_cells(line))
        elif current:
            tables.append([current[0], *current[2:]])
            current = []
    return tables


def _pick(table: list[list[str]], wanted: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    header = table[0]
    index = [next((i for i, h in enumerate(header) if h.startswith(w)), None) for w in wanted]
    keep = [i for i in index if i is not None]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in table[1:]]


def headline(table_page: str, claims_page: str) -> str:
    """The rows of Table 3's component section (ours beside the paper's) and the verdicts of Table 3's claims."""
    parts = []
    rows = _tables(table_page, HEADLINE_SECTION)
    if rows:
        header, body = _pick(rows[0], ROW_COLUMNS)
        parts.append(md_table(header, body))
    claims = _tables(claims_page)
    if claims:
        header, body = _pick([claims[0][0]] + [r for r in claims[0][1:] if r[0].startswith(f"[{HEADLINE_TABLE}]")],
                             CLAIM_COLUMNS)
        if body:
            parts.append(md_table(header, body))
    return "\n\n".join(parts)


def _index_rows(index_page: str) -> list[list[str]]:
    """The reports folder index's rows: report, paper's table or figure, runs by status, seeds."""
    return [row for table in _tables(index_page) if table[0][:1] == ["report"] for row in table[1:]]


def _complete(row: list[str]) -> bool:
    """An index row whose runs are all done ('13 done')."""
    return bool(re.fullmatch(r"\d+ done", row[2]))


def evidence_complete(index_page: str) -> bool:
    """Has every report of the index every run of its seeds finished?"""
    reports = _index_rows(index_page)
    return bool(reports) and all(map(_complete, reports))


def _unconverged(claims_page: str) -> list[str]:
    """The table of each verdict (the claims page's own column, not another profile's beside it) that rests on
    runs failing the convergence test."""
    claims = _tables(claims_page)
    if not claims:
        return []
    header, rows = _pick(claims[0], ("table", "verdict"))       # the first 'verdict…' column is the page's own
    return [re.sub(r"\[(\w+)\].*", r"\1", row[0]) for row in rows
            if header == ["table", "verdict"] and UNCONVERGED in row[1]]


def summary(claims_page: str, index_page: str) -> str:
    """One sentence from the pages themselves: what the profile's evidence cost and how its claims came out, and
    how many verdicts rest on runs that fail the convergence test."""
    tally = re.search(r"\d+ claim\(s\) computed[^.]*", claims_page)
    cost = next((line.removeprefix(f"{EVIDENCE_COST}: ").rstrip(".") for line in index_page.splitlines()
                 if line.startswith(EVIDENCE_COST)), "—")
    cost = "no finished runs yet" if cost == "—" else cost
    reports = _index_rows(index_page)
    complete = [row[0] for row in reports if _complete(row)]
    states = Counter()
    for row in reports:
        states.update({state: int(count) for count, state in re.findall(r"(\d+) (\w+)", row[2])})
    runs = ", ".join(f"{n} {state}" for state, n in states.items()) or "none"
    so_far = "" if reports and len(complete) == len(reports) else " so far"      # evidence_complete, already parsed
    unconverged = _unconverged(claims_page)
    caveat = (f" {len(unconverged)} of them rest on runs that fail the convergence test "
              f"({', '.join(dict.fromkeys(unconverged))}: the converged column of its rows says which and by how "
              "much)." if unconverged else "")
    return (f"Evidence{so_far}: {cost}; {len(complete)} of {len(reports)} reports have every run of their seeds "
            f"finished (their runs: {runs}; a run two reports share counts in each). "
            f"Claims: {tally.group(0) if tally else '—'} "
            f"(every claim of every table; the verdicts are explained on the claims page).{caveat}")


def status(index_page: str) -> str:
    """The paragraph on where the evidence stands: being regenerated while a report lacks a run, complete after."""
    history = ("The round-two fidelity review (DAD-3DNet's neck, the official landmark-loss reduction, one "
               "deep-supervision rule for every variant, evaluation crops fixed per image; `docs/fidelity.md`) "
               "changed every run id, so the runs of the model before it were retired from `results/` (git history "
               "keeps them, up to `3b446a7`; what they said: [`docs/evidence-history.md`](docs/evidence-history.md)).")
    if evidence_complete(index_page):
        return (f"**The evidence is complete**: every report of the default profile has every run of its seeds "
                f"finished, all of them trained on the fixed model. {history}")
    return (f"**The evidence is being regenerated.** {history} The campaign that retrains it commits each run as "
            "it lands: what follows shows what has finished so far, its first line says how much, and a row still "
            "missing names the command that trains it.")


def block(table_page: str, claims_page: str, index_page: str = "") -> str:
    link = f"reports/{DEFAULT_PROFILE}"
    source = (f"Generated from [{link}/{HEADLINE_TABLE}.md]({link}/{HEADLINE_TABLE}.md), "
              f"[{link}/claims.md]({link}/claims.md) and [{link}/README.md]({link}/README.md) by "
              "`python -m experiments.report.readme`.")
    return (f"{BEGIN}\n{status(index_page)}\n\n{source}\n\n{summary(claims_page, index_page)}\n\n"
            f"{headline(table_page, claims_page)}\n{END}")


def committed_block(root: Path = ROOT) -> str:
    folder = root / "reports" / DEFAULT_PROFILE
    return block(*((folder / page).read_text() for page in (f"{HEADLINE_TABLE}.md", "claims.md", "README.md")))


def current_block(readme: str) -> str | None:
    start, end = readme.find(BEGIN), readme.find(END)
    return None if start < 0 or end < start else readme[start:end + len(END)]


def main() -> int:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    old = current_block(readme)
    if old is None:
        print(f"error: README.md has no block between '{BEGIN}' and '{END}'", file=sys.stderr)
        return 2
    readme_path.write_text(readme.replace(old, committed_block()))
    print(f"README.md: headline table rewritten from reports/{DEFAULT_PROFILE}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
