"""Accuracy at the photo's own size: ``iem segment`` then ``iem eval``, end to end, on the dev sets.

For each set the first photos by name (GrabCut-50: all 50, Weizmann Horse: 100, Flowers-17:
200) are linked into ``WORK/in/SET`` and their ground truth into ``WORK/gt/SET``; each run
then calls the command line exactly as a user would::

    iem segment WORK/in/SET -o WORK/out/RUN/SET -q [OPTIONS]
    iem eval WORK/out/RUN/SET WORK/gt/SET -q --csv WORK/out/RUN/SET.csv

and the mean strict and inverse-max IoU (%) are read from the per-image CSV. A run is
``LABEL=OPTIONS`` (options of ``iem segment``, split like a shell line); the default runs are
today's default (``best``) and the paper's settings (``--preset paper``), the defaults before
``best``. Outputs already written are kept (``iem segment`` resumes), so a stopped run goes on.

Examples::

    python -m benchmarks.full_resolution
    python -m benchmarks.full_resolution --runs 'best=','nopass=--grabcut-photo-size 0' --sets grabcut
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks import common

#: Sets, by folder under the data directory, and how many photos (first by name) each run takes.
SETS = (("grabcut", 50), ("weizmann_horse", 100), ("flowers17", 200))
#: The runs when none are named: today's default and the paper's settings.
DEFAULT_RUNS = ("best=", "paper=--preset paper")


def link_set(root: Path, folder: str, count: int, work: Path) -> Tuple[Path, Path]:
    """``(images folder, masks folder)`` under ``work`` linking the first ``count`` photos by
    name of ``root/folder`` and their masks (matched by stem)."""
    masks = {p.stem: p for p in (root / folder / "masks").iterdir()}
    images = [p for p in common.image_paths(root, folder) if p.stem in masks][:count]
    pairs = [(work / "in" / folder, images), (work / "gt" / folder, [masks[p.stem] for p in images])]
    for target, files in pairs:
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            link = target / path.name
            if not link.is_symlink():
                link.symlink_to(path.resolve())
    return pairs[0][0], pairs[1][0]


def mean_iou(csv_path: Path) -> Dict[str, Any]:
    """Mean strict and inverse-max IoU (%) and the photo count of an ``iem eval`` CSV."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    count = len(rows)
    return {
        "photos": count,
        "strict": 100 * sum(float(r["strict_iou"]) for r in rows) / max(count, 1),
        "inverse_max": 100 * sum(float(r["iou"]) for r in rows) / max(count, 1),
    }


def iem_command(*args: str) -> List[str]:
    """The ``iem`` command line run with this interpreter (the checkout's code first on the path)."""
    return [sys.executable, "-m", "iem", *args]


def run_one(images: Path, truths: Path, out: Path, options: Sequence[str]) -> Dict[str, Any]:
    """Segment ``images`` into ``out`` with ``options``, score against ``truths``; CPU seconds too."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(common.REPO / "src"), os.environ.get("PYTHONPATH")])))
    before = os.times()
    subprocess.run(iem_command("segment", str(images), "-o", str(out), "-q", *options), check=True, env=env)
    after = os.times()
    table = out.parent / f"{out.name}.csv"
    subprocess.run(iem_command("eval", str(out), str(truths), "-q", "--csv", str(table)), check=True, env=env,
                   stdout=subprocess.DEVNULL)
    scores = mean_iou(table)
    scores["segment_cpu_s_per_photo"] = (after.children_user + after.children_system - before.children_user
                                         - before.children_system) / max(scores["photos"], 1)
    return scores


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.full_resolution",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS), help="comma-separated LABEL=OPTIONS of iem segment")
    parser.add_argument("--sets", default=",".join(f for f, _ in SETS), help="comma-separated set folders")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos per set (default: 50/100/200)")
    parser.add_argument("--work", default=".full-resolution", help="folder for the linked inputs and the masks")
    parser.add_argument("--data", default=None, help="data directory (default: ../shared/data)")
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "full_resolution.json"))
    args = parser.parse_args(argv)
    root, work = common.data_dir(args.data), Path(args.work)
    counts = dict(SETS)
    runs = [spec.split("=", 1) for spec in args.runs.split(",") if spec]
    results: Dict[str, Dict[str, Any]] = {label: {} for label, _ in runs}
    folders = args.sets.split(",")
    for folder in folders:
        count = min(counts.get(folder, args.limit or 100), args.limit or counts.get(folder, 100))
        images, truths = link_set(root, folder, count, work)
        for label, options in runs:
            scores = run_one(images, truths, work / "out" / label / folder, shlex.split(options))
            results[label][folder] = scores
            print(f"{folder} ({scores['photos']} photos) {label}: {scores['strict']:.1f} ({scores['inverse_max']:.1f}), "
                  f"{scores['segment_cpu_s_per_photo']:.2f} s CPU/photo", flush=True)
    header = "| run (iem segment options) | " + " | ".join(f"{f} ({results[runs[0][0]][f]['photos']})" for f in folders) + " |"
    lines = [header, "|" + "---|" * (len(folders) + 1)]
    for label, options in runs:
        cells = [f"{results[label][f]['strict']:.1f} ({results[label][f]['inverse_max']:.1f})" for f in folders]
        lines.append(f"| {label} ({f'`{options}`' if options else 'default settings'}) | " + " | ".join(cells) + " |")
    print("\nstrict IoU (inverse-max) at the photo's size\n\n" + "\n".join(lines))
    report = {"runs": dict(runs), "sets": folders, "results": results, "table": lines, "environment": common.environment()}
    common.write_json(report, Path(args.out))
    return report


if __name__ == "__main__":
    main()
