"""Time per image of presets against ``paper``, side by side (the cost budget of ``best``).

For each data set (Weizmann Horse, GrabCut, Flowers-17 under the paper protocol, the first
``--images`` of each), one process runs :func:`iem.segment_batch` with every preset in turn,
``--repeats`` rounds, the order rotated from round to round so that a change in the machine's
load falls on each preset alike, after a warm-up run that compiles or loads the engine's loop.
Each run is timed by process CPU time (which other processes on a shared machine barely move)
and by the wall clock (what a user waits; ``--threads`` 2 for a 2-core machine). A preset's cost
in a round is its time divided by ``paper``'s in the same round; the report gives, per clock,
the median of those ratios, their range, and the median milliseconds per image. The budget is
``best`` at most :data:`BUDGET` times ``paper``.

Example::

    python -m benchmarks.preset_cost                                  # 48 images, 5 rounds, 1 thread
    python -m benchmarks.preset_cost --threads 2                      # the wall clock of 2 cores
    python -m benchmarks.preset_cost --images 8 --repeats 2 --sets grabcut --out /tmp/cost.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

import iem
from benchmarks import common
from benchmarks.quality import load_set
from iem.config import PRESETS

#: The data sets, by folder under the data directory.
SETS = ("weizmann_horse", "grabcut", "flowers17")
#: The cost budget of ``best``, in multiples of ``paper``'s time per image (issue 10).
BUDGET = 3.0
BASE = "paper"
CLOCKS = ("cpu", "wall")


def time_presets(images: torch.Tensor, presets: List[str], repeats: int) -> Dict[str, Dict[str, List[float]]]:
    """Seconds of ``segment_batch`` on ``images`` by clock (:data:`CLOCKS`) and preset, one
    entry per round."""
    configs = {name: iem.IEMConfig.preset(name) for name in presets}
    for config in configs.values():  # compile or load the loop, allocate, import OpenCV
        iem.segment_batch(images[:1], config.replace(iterations=2), device="cpu")
    seconds: Dict[str, Dict[str, List[float]]] = {clock: {name: [] for name in presets} for clock in CLOCKS}
    for round_ in range(repeats):
        shift = round_ % len(presets)
        for name in presets[shift:] + presets[:shift]:
            _, timing = common.run_timed(lambda: iem.segment_batch(images, configs[name], device="cpu"))
            seconds["cpu"][name].append(timing.cpu_s)
            seconds["wall"][name].append(timing.wall_s)
    return seconds


def summarise(seconds: Dict[str, List[float]], count: int) -> Dict[str, Dict[str, Any]]:
    """Per preset: median ms per image, and the per-round ratios to :data:`BASE` with their median."""
    summary = {}
    for name, values in seconds.items():
        ratios = [value / base for value, base in zip(values, seconds[BASE])]
        summary[name] = {
            "s": values,
            "ms_per_image": 1000.0 * statistics.median(values) / count,
            "ratios": ratios,
            "ratio": statistics.median(ratios),
        }
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.preset_cost",
        description="Time per image of presets against paper, side by side in one process (rounds in rotated "
        "order; process CPU time and wall clock), on Weizmann Horse, GrabCut and Flowers-17 at 128 px.",
        epilog="Examples:\n  python -m benchmarks.preset_cost\n  python -m benchmarks.preset_cost --threads 2\n"
        "  python -m benchmarks.preset_cost --images 8 --repeats 2 --sets grabcut --out /tmp/cost.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--presets", default="paper,best", help="comma-separated presets; paper is always timed (default paper,best)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated data set folders (default {','.join(SETS)})")
    parser.add_argument("--images", type=int, default=48, help="first N images of each set (default 48)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, and GrabCut's worker threads (default 1)")
    parser.add_argument("--data", default=None, help="folder holding the data sets (default: found)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "preset_cost.json", help="JSON output")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--images, --repeats and --threads must be >= 1")
    presets = [BASE] + [name for name in args.presets.split(",") if name and name != BASE]
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(sorted(PRESETS))}")

    # Wait for the compiled loop rather than time the torch loop that stands in while it compiles.
    os.environ.setdefault("IEM_NUMBA", "wait")
    common.set_threads(args.threads)
    env = common.environment(args.threads)
    root = common.data_dir(args.data)
    results: Dict[str, Any] = {}
    tables = {clock: common.Table(["set", "images", *(f"{name} ms" for name in presets), *(f"{name}/{BASE}" for name in presets[1:])])
              for clock in CLOCKS}
    for folder in [name for name in args.sets.split(",") if name]:
        images = load_set(root, folder, "all")[0][: args.images]
        seconds = time_presets(images, presets, args.repeats)
        summaries = {clock: summarise(seconds[clock], images.shape[0]) for clock in CLOCKS}
        results[folder] = {"images": images.shape[0], "clocks": summaries}
        for clock, summary in summaries.items():
            ratio_cells = [f"{s['ratio']:.2f}x ({min(s['ratios']):.2f}-{max(s['ratios']):.2f})" for s in (summary[n] for n in presets[1:])]
            tables[clock].add(folder, images.shape[0], *(summary[name]["ms_per_image"] for name in presets), *ratio_cells)
        print(f"{folder}: " + ", ".join(f"{name} {summaries['cpu'][name]['ms_per_image']:.1f} ms" for name in presets), flush=True)
    for clock, label in (("cpu", "process CPU time"), ("wall", "wall clock")):
        print(f"\n{label} per image, {args.threads} thread(s), median of {args.repeats} rounds; ratio to {BASE}: median of the rounds (range)")
        print(tables[clock])
    if "best" in presets:
        for clock in CLOCKS:
            within = all(r["clocks"][clock]["best"]["ratio"] <= BUDGET for r in results.values())
            print(f"best within {BUDGET:g}x {BASE} on every set, by {clock} time: {'yes' if within else 'no'}")
    common.write_json({"benchmark": "preset_cost", "budget": BUDGET, "base": BASE, "repeats": args.repeats,
                       "threads": args.threads, "sets": results, "environment": env}, args.out)
    return 0

if __name__ == "__main__":
    sys.exit(main())
