"""``tables.yaml`` entries parsed into :class:`TableSpec`: a paper table or figure, its evaluation, rows,
ablation steps and figures, each field's type checked."""
from __future__ import annotations

from dataclasses import dataclass

from experiments.registry.checks import RegistryError, mapping_list, name_list, unknown_keys
from trans3dhead.config import did_you_mean
from trans3dhead.metrics import METRICS

TABLE_KEYS = {"title", "kind", "dataset", "split", "metrics", "efficiency", "sections", "steps", "figures", "note"}
ROW_KEYS = {"label", "variant", "paper", "seeds"}
STEP_KEYS = {"from", "to", "metrics", "claim"}
EXTRA_METRICS = {"fps"}          # paper-only columns
# The figures a table's report may draw (its `figures:` key), by kind: a table's figures summarise the
# whole table, a figure's are drawn per row (the report package maps each name to its section).
FIGURES = {"table": ("deltas", "curves"), "figure": ("marr_layers", "residual_histogram")}


@dataclass(frozen=True)
class Row:
    """A table row: its label, the variant that computes it (None: paper only) and the paper's numbers.
    ``seeds``: the fewest seeds this row trains whenever its table is planned for several (a claim whose
    detectable effect needs more seeds than the rest of the table; None: the table's own count)."""
    label: str
    variant: str | None
    paper: dict
    seeds: int | None = None

    def seed_count(self, table_seeds: int) -> int:
        """How many seeds this row trains when its table is planned for ``table_seeds`` (one seed is a
        quick look: no row's target turns it into a seed study)."""
        return table_seeds if table_seeds < 2 or self.seeds is None else max(table_seeds, self.seeds)


@dataclass(frozen=True)
class Section:
    name: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Step:
    """An ablation step whose direction the report checks: from one row label to another, on ``metrics``."""
    from_label: str
    to_label: str
    metrics: tuple[str, ...]
    claim: str


@dataclass(frozen=True)
class TableSpec:
    """One entry of tables.yaml: a paper table or figure, its evaluation, rows, steps and figures."""
    name: str
    title: str
    kind: str
    dataset: str
    split: str
    metrics: tuple[str, ...]
    efficiency: bool
    sections: tuple[Section, ...]
    steps: tuple[Step, ...]
    figures: tuple[str, ...] = ()
    note: str = ""                   # printed under the table (e.g. which loss each row trained with)

    @property
    def rows(self) -> list[Row]:
        return [row for section in self.sections for row in section.rows]

    def row(self, label: str) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(label)


def _parse_table(name: str, raw: dict, variants: dict) -> TableSpec:
    where = f"tables.yaml: {name}"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping")
    unknown_keys(raw, TABLE_KEYS, where)
    for key in ("title", "kind", "dataset", "split", "sections"):
        if key not in raw:
            raise RegistryError(f"{where}: missing '{key}'")
    if raw["kind"] not in ("table", "figure"):
        raise RegistryError(f"{where}: kind '{raw['kind']}' must be table or figure")
    if raw["dataset"] not in ("dad3dheads", "aflw2000"):
        raise RegistryError(f"{where}: dataset '{raw['dataset']}' must be dad3dheads or aflw2000")
    for key in ("title", "split"):
        if not isinstance(raw[key], str):
            raise RegistryError(f"{where}: {key} {raw[key]!r} must be text")
    if not isinstance(raw.get("note", ""), str):
        raise RegistryError(f"{where}: note {raw['note']!r} must be text (quote it)")
    metrics = tuple(name_list(raw.get("metrics"), f"{where}: metrics"))
    for metric in metrics:
        if metric not in METRICS:
            raise RegistryError(f"{where}: unknown metric '{metric}' (valid: {sorted(METRICS)})")
    if not isinstance(raw.get("efficiency", False), bool):
        raise RegistryError(f"{where}: efficiency {raw['efficiency']!r} must be true or false")
    sections = []
    for section in mapping_list(raw["sections"], f"{where}: sections", "a list of sections ({name: ..., rows: [...]})"):
        rows = []
        unknown_keys(section, {"name", "rows"}, f"{where} section")
        for row in mapping_list(section.get("rows") or [], f"{where}: section '{section.get('name', '')}' rows",
                             "a list of rows ({label: ..., variant: ..., paper: {...}})"):
            unknown_keys(row, ROW_KEYS, f"{where} row {row.get('label')}")
            if not isinstance(row.get("label"), str) or not row["label"].strip():
                raise RegistryError(f"{where}: row label {row.get('label')!r} must be text (quote it: "
                                    f"label: \"{row.get('label')}\")")
            if row.get("variant") is not None and not isinstance(row["variant"], str):
                raise RegistryError(f"{where}: row '{row['label']}' variant {row['variant']!r} must be a variant name")
            if row.get("variant") is not None and row["variant"] not in variants:
                did = did_you_mean(row["variant"], variants)
                raise RegistryError(f"{where}: row '{row.get('label')}' names variant '{row['variant']}', "
                                    f"which variants.yaml does not define{did}")
            paper = row.get("paper") or {}
            if not isinstance(paper, dict):
                raise RegistryError(f"{where}: row '{row['label']}' paper {paper!r} must map metrics to numbers")
            for metric, value in paper.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise RegistryError(f"{where}: row '{row['label']}' paper value {metric}={value!r} is not a "
                                        "number (write it without units or quotes)")
            paper = dict(paper)
            for metric in paper:
                if metric not in metrics and metric not in EXTRA_METRICS:
                    raise RegistryError(f"{where}: row '{row.get('label')}' has a paper value for '{metric}', "
                                        f"which is not among the table's metrics {list(metrics)}")
            seeds = row.get("seeds")
            if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2):
                raise RegistryError(f"{where}: row '{row['label']}' seeds {seeds!r} must be a whole number >= 2 (the "
                                    "fewest seeds the row trains when its table is planned for several), or left out")
            if seeds is not None and row.get("variant") is None:
                raise RegistryError(f"{where}: row '{row['label']}' has seeds but no variant: a paper-only row trains "
                                    "nothing; remove its seeds")
            rows.append(Row(str(row["label"]), row.get("variant"), paper, seeds))
        sections.append(Section(str(section.get("name", "")), tuple(rows)))
    labels = [r.label for s in sections for r in s.rows]
    for label in sorted({label for label in labels if labels.count(label) > 1}):
        raise RegistryError(f"{where}: row label '{label}' is used {labels.count(label)} times; each row "
                            "needs its own label (steps and reports find rows by label)")
    steps = []
    for step in mapping_list(raw.get("steps") or [], f"{where}: steps", "a list of {from: ..., to: ...}"):
        unknown_keys(step, STEP_KEYS, f"{where} step")
        name_list(step.get("metrics"), f"{where}: step metrics")
        for end in ("from", "to"):
            if step.get(end) not in labels:
                raise RegistryError(f"{where}: step {end} '{step.get(end)}' is not a row label ({labels})")
        steps.append(Step(step["from"], step["to"], tuple(step.get("metrics") or metrics), str(step.get("claim", ""))))
    figures = tuple(name_list(raw.get("figures"), f"{where}: figures"))
    for figure in figures:
        if figure not in FIGURES[raw["kind"]]:
            did = did_you_mean(figure, FIGURES[raw["kind"]])
            raise RegistryError(f"{where}: unknown figure '{figure}' for a {raw['kind']}{did} "
                                f"(valid: {list(FIGURES[raw['kind']])})")
    return TableSpec(name, str(raw["title"]), raw["kind"], raw["dataset"], str(raw["split"]), metrics,
                     bool(raw.get("efficiency", False)), tuple(sections), tuple(steps), figures,
                     str(raw.get("note", "")).strip())
