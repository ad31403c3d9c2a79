"""Benchmark reports: ``results.json`` (read by other tools), a Markdown table, a per-image CSV.

``results.json`` has exactly this shape, metrics as fractions in [0, 1]::

    {"dataset": str, "protocol": "paper" | "full",
     "results": [{"method", "acc", "iou", "dice", "strict_acc", "strict_iou", "strict_dice",
                  "seconds", "images"}, ...]}

``acc``/``iou``/``dice`` follow the paper's inverse-max convention, the ``strict_`` ones keep the
predicted polarity (see :mod:`iem.metrics`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from iem.io.write import PathLike, write_text
from iem.bench.runner import SCORE_KEYS, BenchResult, ImageScores, MethodResult

RESULTS_JSON = "results.json"
RESULTS_MARKDOWN = "results.md"
PER_IMAGE_CSV = "per_image.csv"

#: Digits after the decimal point of a percentage in the Markdown table.
PERCENT_DIGITS = 1


def _json_number(value: object) -> object:
    """NaN (a method that scored no image) becomes null: strict JSON has no NaN."""
    return None if isinstance(value, float) and math.isnan(value) else value


def results_dict(bench: BenchResult) -> Dict[str, object]:
    """The content of ``results.json``; a score of a method that scored no image is null."""
    return {
        "dataset": bench.dataset,
        "protocol": bench.protocol,
        "results": [{k: _json_number(v) for k, v in result.summary().items()} for result in bench.results],
    }


def write_results_json(bench: BenchResult, path: PathLike) -> None:
    """Write ``results.json`` atomically."""
    write_text(path, json.dumps(results_dict(bench), indent=2, allow_nan=False) + "\n")


def read_results_json(path: PathLike) -> Dict[str, object]:
    """Read a ``results.json`` back (as written by :func:`write_results_json`)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.{PERCENT_DIGITS}f}"


def _rate(result: MethodResult) -> str:
    if result.seconds <= 0 or not result.images:
        return "-"
    rate = result.images / result.seconds
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


def markdown_table(results: Sequence[MethodResult]) -> str:
    """The results as a Markdown table: both conventions in %, seconds and images per second."""
    header = (
        "| method | acc | IoU | DICE | strict acc | strict IoU | strict DICE | seconds | images/s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for result in results:
        scores = " | ".join(_percent(result.mean(key)) for key in SCORE_KEYS)
        lines.append(f"| {result.method} | {scores} | {result.seconds:.1f} | {_rate(result)} |")
    return header + "\n".join(lines) + "\n"


def markdown_report(bench: BenchResult, command: Optional[str] = None, figure: Optional[str] = None) -> str:
    """A Markdown page: the table, what each method is, failures, and the figure if any."""
    images = max((r.images for r in bench.results), default=0)
    parts: List[str] = [
        f"# Benchmark: {bench.dataset}\n\n",
        f"Protocol: **{bench.protocol}**; images scored: {images}. Scores in %, mean over images. "
        "`acc`/`IoU`/`DICE`: the paper's convention (each image scored with the better of the mask "
        "and its inverse); `strict`: the mask's foreground taken as given. `seconds`: time spent "
        "in the method only (decoding and scoring excluded).\n\n",
    ]
    if command:
        parts.append(f"Command:\n\n```\n{command}\n```\n\n")
    parts.append(markdown_table(bench.results))
    parts.append("\n## Methods\n\n")
    parts.extend(f"- `{r.method}`: {r.description}\n" for r in bench.results)
    failures = bench.load_failures + [line for r in bench.results for line in r.failures]
    if failures:
        parts.append("\n## Failures\n\n")
        parts.extend(f"- {line}\n" for line in failures)
    if figure:
        parts.append(f"\n## Random samples\n\n![samples]({figure})\n")
    return "".join(parts)


def write_markdown(bench: BenchResult, path: PathLike, command: Optional[str] = None, figure: Optional[str] = None) -> None:
    """Write the Markdown report atomically."""
    write_text(path, markdown_report(bench, command=command, figure=figure))


def per_image_csv(results: Sequence[MethodResult]) -> str:
    """One line per (method, image): ``method,name,acc,iou,dice,strict_acc,strict_iou,strict_dice``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "name", *SCORE_KEYS])
    for result in results:
        for row in result.rows:
            writer.writerow([result.method, row.name, *(f"{getattr(row, key):.6f}" for key in SCORE_KEYS)])
    return buffer.getvalue()


def write_per_image_csv(results: Sequence[MethodResult], path: PathLike) -> None:
    """Write the per-image CSV atomically."""
    write_text(path, per_image_csv(results))


def read_per_image_csv(path: PathLike) -> List[MethodResult]:
    """Read a per-image CSV back: one :class:`MethodResult` per method, in the order they first
    appear, rows in file order (descriptions, seconds and failures are not in the file).

    Raises:
        ValueError: the header is not :func:`per_image_csv`'s, or a line is malformed (the
            message names the file and the line).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["method", "name", *SCORE_KEYS]:
            raise ValueError(f"{path}: not a per-image score file (header {header})")
        results: Dict[str, MethodResult] = {}
        for row in reader:
            try:
                if len(row) != len(header):
                    raise ValueError(f"{len(row)} fields, not {len(header)}")
                scores = [float(v) for v in row[2:]]
            except ValueError as err:
                raise ValueError(f"{path}, line {reader.line_num}: {err}") from None
            result = results.setdefault(row[0], MethodResult(row[0], ""))
            result.rows.append(ImageScores(row[1], *scores))
    return list(results.values())
