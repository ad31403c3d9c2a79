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

``--grabcut-margin M`` adds the baseline run ``grabcut@M``: OpenCV GrabCut on each whole photo
(as decoded by ``iem segment``: upright RGB) from the rectangle ``floor(M * side)`` inside each
border, 5 iterations, random generator seeded 0 per photo (``iem.bench.methods.GrabCutMethod``);
its masks are written as ``WORK/out/grabcut@M/SET/<stem>.mask.png`` and scored by ``iem eval``
like the other runs (its CPU time has no process start in it).

Examples::

    python -m benchmarks.full_resolution
    python -m benchmarks.full_resolution --runs 'best=','nopass=--grabcut-photo-size 0' --sets grabcut
    python -m benchmarks.full_resolution --runs '' --grabcut-margin 0.015625 --out benchmarks/results/full_resolution-grabcut.json
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks import common
from iem.bench.methods import GrabCutMethod, MethodError, grabcut_description
from iem.imaging import to_tensor
from iem.io import ImageReadError, output_paths, read_image, write_outputs

#: Sets, by folder under the data directory, and how many photos (first by name) each run takes.
SETS = (("grabcut", 50), ("weizmann_horse", 100), ("flowers17", 200))
#: The runs when none are named: today's default and the paper's settings.
DEFAULT_RUNS = ("best=", "paper=--preset paper")
#: Label prefix of a GrabCut baseline run (``grabcut@M``, as ``benchmarks.quality`` spells it).
GRABCUT_LABEL = "grabcut@"


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
    return scored_run(truths, out, lambda: subprocess.run(
        iem_command("segment", str(images), "-o", str(out), "-q", *options), check=True, env=iem_environment()))


def iem_environment() -> Dict[str, str]:
    """The environment of the ``iem`` subprocesses: the checkout's ``src`` first on the path."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(common.REPO / "src"), os.environ.get("PYTHONPATH")])))


def scored_run(truths: Path, out: Path, segment: Callable[[], Any]) -> Dict[str, Any]:
    """Call ``segment`` (it writes the masks into ``out``), score ``out`` against ``truths`` with
    ``iem eval``; the CPU seconds per photo of ``segment``, its subprocesses' and its own."""
    before = os.times()
    segment()
    after = os.times()
    table = out.parent / f"{out.name}.csv"
    subprocess.run(iem_command("eval", str(out), str(truths), "-q", "--csv", str(table)), check=True,
                   env=iem_environment(), stdout=subprocess.DEVNULL)
    scores = mean_iou(table)
    spent = sum(after[:4]) - sum(before[:4])  # user, system, children's user, children's system
    scores["segment_cpu_s_per_photo"] = spent / max(scores["photos"], 1)
    return scores


def grabcut_masks(images: Path, out: Path, margin: float) -> None:
    """Write ``out/<stem>.mask.png`` for each photo of ``images``: OpenCV GrabCut on the whole
    photo from the rectangle ``floor(margin * side)`` inside each border (:class:`GrabCutMethod`,
    seed 0). Masks already there are kept; a photo that fails is named on stderr and the others
    go on, then :class:`SystemExit` says how many failed.
    """
    method = GrabCutMethod(f"{GRABCUT_LABEL}{margin:g}", margin, seed=0)
    failed = 0
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in common.IMAGE_EXTENSIONS):
        target = output_paths(out, Path(path.name), ["mask"])
        if target["mask"].is_file():
            continue
        try:
            photo = read_image(path)
            mask = method.segment(to_tensor(photo)[None])[0].numpy()
        except (ImageReadError, MethodError) as err:
            print(f"{path}: {getattr(err, 'reason', err)}", file=sys.stderr, flush=True)
            failed += 1
            continue
        out.mkdir(parents=True, exist_ok=True)
        write_outputs(target, photo, mask)
    if failed:
        raise SystemExit(f"{images}: GrabCut failed on {failed} photo(s)")


def grabcut_margin(text: str) -> float:
    """``--grabcut-margin``'s value: a fraction of each side in [0, 0.5)."""
    margin = float(text)
    if not 0 <= margin < 0.5:
        raise argparse.ArgumentTypeError(f"must be in [0, 0.5), got {text}")
    return margin


def print_scores(folder: str, label: str, scores: Dict[str, Any]) -> None:
    """One line per run and set: strict (inverse-max) IoU and CPU seconds per photo."""
    print(f"{folder} ({scores['photos']} photos) {label}: {scores['strict']:.1f} ({scores['inverse_max']:.1f}), "
          f"{scores['segment_cpu_s_per_photo']:.2f} s CPU/photo", flush=True)


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
    parser.add_argument("--grabcut-margin", type=grabcut_margin, action="append", default=[], metavar="M",
                        help="also run OpenCV GrabCut on the whole photos from the rectangle floor(M * side) inside "
                             "each border, as run grabcut@M (repeatable; 0.015625 is the 1/64 rectangle)")
    args = parser.parse_args(argv)
    root, work = common.data_dir(args.data), Path(args.work)
    counts = dict(SETS)
    runs = [spec.split("=", 1) for spec in args.runs.split(",") if spec]
    grabcuts = {f"{GRABCUT_LABEL}{margin:g}": margin for margin in args.grabcut_margin}
    described = {label: f"`{options}`" if options else "default settings" for label, options in runs}
    described.update({label: grabcut_description(margin) for label, margin in grabcuts.items()})
    if not described:
        parser.error("nothing to run: give --runs or --grabcut-margin")
    results: Dict[str, Dict[str, Any]] = {label: {} for label in described}
    folders = args.sets.split(",")
    for folder in folders:
        count = min(counts.get(folder, args.limit or 100), args.limit or counts.get(folder, 100))
        images, truths = link_set(root, folder, count, work)
        for label, options in runs:
            results[label][folder] = run_one(images, truths, work / "out" / label / folder, shlex.split(options))
            print_scores(folder, label, results[label][folder])
        for label, margin in grabcuts.items():
            out = work / "out" / label / folder
            results[label][folder] = scored_run(truths, out, functools.partial(grabcut_masks, images, out, margin))
            print_scores(folder, label, results[label][folder])
    first = next(iter(results.values()))
    header = "| run | " + " | ".join(f"{f} ({first[f]['photos']})" for f in folders) + " |"
    lines = [header, "|" + "---|" * (len(folders) + 1)]
    for label, description in described.items():
        cells = [f"{results[label][f]['strict']:.1f} ({results[label][f]['inverse_max']:.1f})" for f in folders]
        lines.append(f"| {label} ({description}) | " + " | ".join(cells) + " |")
    print("\nstrict IoU (inverse-max) at the photo's size\n\n" + "\n".join(lines))
    report = {"runs": dict(runs), "grabcut_margins": grabcuts, "sets": folders, "results": results, "table": lines,
              "environment": common.environment()}
    common.write_json(report, Path(args.out))
    return report


if __name__ == "__main__":
    main()
