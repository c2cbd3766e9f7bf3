"""Markdown reports of the paper's tables and figures, regenerated from the result store.

Every number comes from ``results/``; the paper's numbers sit beside ours; paper-only, missing,
running and failed rows are shown as such; each ablation step gets a paired bootstrap interval and
a verdict. Reports are byte-for-byte reproducible from the same results (``check_reports``): no
clock is read, floats have fixed formats, bootstraps fixed seeds, PNGs no version or date chunk.

One job per module: ``gather`` (the store's runs of a table row), ``cells`` (statistics to cells),
``steps`` (each ablation step as a claim), ``sections`` (markdown tables), ``provenance`` (the header), ``figure_sections`` (the figures a table's
``figures:`` key names), ``image_figures`` (Figure 7 and the gallery), ``write`` (whole reports), ``readme`` (the README's copy
of the default profile's claims page); beneath them ``stats`` (the statistics) and ``figures`` (plotting).
"""
from experiments.report.cells import convergence_text, fmt, metric_cell
from experiments.report.provenance import benchmark_name, code_versions
from experiments.report.write import check_reports, report_folder, write_reports

__all__ = ["benchmark_name", "check_reports", "code_versions", "convergence_text", "fmt", "metric_cell",
           "report_folder", "write_reports"]
