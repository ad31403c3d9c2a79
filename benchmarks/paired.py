"""Paired differences between the methods of an ``iem bench`` run, from its ``per_image.csv``.

For each method against a base method on the same images: the mean difference of a score over
images and its standard error (standard deviation of the differences / sqrt(images)), in
points; and how many images a method leaves nearly empty (strict IoU below 0.1%). These are the
figures of the discussion in docs/results.md.

Example::

    iem bench ../shared/data/grabcut --out runs/grabcut --methods paper,released,square --ablations
    python -m benchmarks.paired runs/grabcut/per_image.csv --base square
    python -m benchmarks.paired runs/grabcut/per_image.csv --base paper --metric strict_iou
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

#: Strict IoU (a fraction) under which a mask counts as empty or nearly so.
NEARLY_EMPTY = 0.001


def read_scores(path: Path, metric: str) -> Dict[str, Dict[str, float]]:
    """``{method: {image name: score}}`` of one ``per_image.csv`` (scores as fractions)."""
    scores: Dict[str, Dict[str, float]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            scores.setdefault(row["method"], {})[row["name"]] = float(row[metric])
    return scores


def paired(values: List[float], base: List[float]) -> Tuple[float, float]:
    """Mean difference and its standard error, in points (x 100)."""
    diffs = [100.0 * (v - b) for v, b in zip(values, base)]
    n = len(diffs)
    mean = sum(diffs) / n
    spread = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else float("nan")
    return mean, spread / math.sqrt(n)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.paired",
        description="Paired differences (mean +/- standard error over images) between the methods of an "
        "iem bench run, and the count of nearly empty masks, from its per_image.csv.",
        epilog="Examples:\n  python -m benchmarks.paired runs/grabcut/per_image.csv --base square\n"
        "  python -m benchmarks.paired runs/grabcut/per_image.csv --base paper --metric strict_iou",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("csv", type=Path, help="per_image.csv written by iem bench")
    parser.add_argument("--base", default="paper", help="the method every other is compared with (default paper)")
    parser.add_argument("--metric", default="iou", help="score column (default iou, the inverse-max IoU)")
    args = parser.parse_args(argv)
    scores = read_scores(args.csv, args.metric)
    if args.base not in scores:
        parser.error(f"no method {args.base!r} in {args.csv}; it has {', '.join(scores)}")
    strict = read_scores(args.csv, "strict_iou")
    base = scores[args.base]
    print(f"{args.metric}, paired against {args.base} ({len(base)} images), points: mean +/- standard error")
    for method, values in scores.items():
        names = sorted(set(values) & set(base))
        delta, error = paired([values[n] for n in names], [base[n] for n in names])
        empty = sum(strict[method][n] < NEARLY_EMPTY for n in names)
        print(f"  {method}: {delta:+.1f} +/- {error:.1f} over {len(names)} images; nearly empty masks: {empty}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
