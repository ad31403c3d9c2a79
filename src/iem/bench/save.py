"""Writing every output of a benchmark into one folder."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from iem.bench.figures import render_grid
from iem.io.write import PathLike
from iem.bench.report import PER_IMAGE_CSV, RESULTS_JSON, RESULTS_MARKDOWN, write_markdown, write_per_image_csv, write_results_json
from iem.bench.runner import BenchResult

#: File name of the figure grid inside the output folder.
FIGURE_PNG = "figure.png"


def save_tables(bench: BenchResult, out: PathLike, command: Optional[str] = None, figure: Optional[str] = None) -> List[Path]:
    """Write ``results.json``, ``results.md`` and ``per_image.csv`` into ``out``; return their paths."""
    out = Path(out)
    paths = [out / RESULTS_JSON, out / RESULTS_MARKDOWN, out / PER_IMAGE_CSV]
    write_results_json(bench, paths[0])
    write_markdown(bench, paths[1], command=command, figure=figure)
    write_per_image_csv(bench.results, paths[2])
    return paths


def save_benchmark(
    bench: BenchResult,
    out: PathLike,
    figure_methods: Sequence[str] = (),
    command: Optional[str] = None,
) -> List[Path]:
    """Write the tables and, when samples were kept for ``figure_methods``, the figure grid.

    Returns:
        The paths written.
    """
    out = Path(out)
    figure: Optional[str] = None
    written: List[Path] = []
    if bench.samples and figure_methods:
        render_grid(
            bench.samples,
            figure_methods,
            out / FIGURE_PNG,
            configs=bench.configs,
            title=f"{bench.dataset} ({bench.protocol} protocol)",
        )
        figure = FIGURE_PNG
        written.append(out / FIGURE_PNG)
    return save_tables(bench, out, command=command, figure=figure) + written
