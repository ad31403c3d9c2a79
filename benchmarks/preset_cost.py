"""CPU time per image of presets against ``paper``, side by side (the cost budget of ``best``).

For each data set (Weizmann Horse, GrabCut, Flowers-17 under the paper protocol, the first
``--images`` of each), one process runs :func:`iem.segment_batch` with every preset in turn,
``--repeats`` rounds, the order rotated from round to round so that a change in the machine's
load falls on each preset alike. One torch thread, timed by process CPU time (which other
processes on a shared machine barely move), after a warm-up run that compiles or loads the
engine's loop. A preset's cost in a round is its time divided by ``paper``'s in the same round;
the report gives the median of those ratios, their range, and the median milliseconds per image.
The budget is ``best`` at most :data:`BUDGET` times ``paper``.

Example::

    python -m benchmarks.preset_cost                                  # 48 images, 5 rounds
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


def time_presets(images: torch.Tensor, presets: List[str], repeats: int) -> Dict[str, List[float]]:
    """Process CPU seconds of ``segment_batch`` on ``images`` per preset, one entry per round."""
    configs = {name: iem.IEMConfig.preset(name) for name in presets}
    for config in configs.values():  # compile or load the loop, allocate, import OpenCV
        iem.segment_batch(images[:1], config.replace(iterations=2), device="cpu")
    seconds: Dict[str, List[float]] = {name: [] for name in presets}
    for round_ in range(repeats):
        shift = round_ % len(presets)
        for name in presets[shift:] + presets[:shift]:
            start = time.process_time()
            iem.segment_batch(images, configs[name], device="cpu")
            seconds[name].append(time.process_time() - start)
    return seconds


def summarise(seconds: Dict[str, List[float]], count: int) -> Dict[str, Dict[str, Any]]:
    """Per preset: median ms per image, and the per-round ratios to :data:`BASE` with their median."""
    summary = {}
    for name, values in seconds.items():
        ratios = [value / base for value, base in zip(values, seconds[BASE])]
        summary[name] = {
            "cpu_s": values,
            "ms_per_image": 1000.0 * statistics.median(values) / count,
            "ratios": ratios,
            "ratio": statistics.median(ratios),
        }
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.preset_cost",
        description="CPU time per image of presets against paper, side by side in one process (one thread, "
        "process CPU time, rounds in rotated order), on Weizmann Horse, GrabCut and Flowers-17 at 128 px.",
        epilog="Examples:\n  python -m benchmarks.preset_cost\n"
        "  python -m benchmarks.preset_cost --images 8 --repeats 2 --sets grabcut --out /tmp/cost.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--presets", default="paper,best", help="comma-separated presets; paper is always timed (default paper,best)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated data set folders (default {','.join(SETS)})")
    parser.add_argument("--images", type=int, default=48, help="first N images of each set (default 48)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--data", default=None, help="folder holding the data sets (default: found)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "preset_cost.json", help="JSON output")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        parser.error("--images and --repeats must be >= 1")
    presets = [BASE] + [name for name in args.presets.split(",") if name and name != BASE]
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(sorted(PRESETS))}")

    # Wait for the compiled loop rather than time the torch loop that stands in while it compiles.
    os.environ.setdefault("IEM_NUMBA", "wait")
    torch.set_num_threads(1)
    env = common.environment(1)
    root = common.data_dir(args.data)
    results: Dict[str, Any] = {}
    table = common.Table(["set", "images", *(f"{name} ms" for name in presets), *(f"{name}/{BASE}" for name in presets[1:])])
    for folder in [name for name in args.sets.split(",") if name]:
        images = load_set(root, folder, "all")[0][: args.images]
        summary = summarise(time_presets(images, presets, args.repeats), images.shape[0])
        results[folder] = {"images": images.shape[0], "presets": summary}
        ratio_cells = [f"{s['ratio']:.2f}x ({min(s['ratios']):.2f}-{max(s['ratios']):.2f})" for s in (summary[n] for n in presets[1:])]
        table.add(folder, images.shape[0], *(summary[name]["ms_per_image"] for name in presets), *ratio_cells)
        print(f"{folder}: " + ", ".join(f"{name} {summary[name]['ms_per_image']:.1f} ms" for name in presets), flush=True)
    print(f"\nCPU time per image, 1 thread, median of {args.repeats} rounds; ratio to {BASE}: median of the rounds (range)")
    print(table)
    if "best" in presets:
        within = all(r["presets"]["best"]["ratio"] <= BUDGET for r in results.values())
        print(f"best within {BUDGET:g}x {BASE} on every set: {'yes' if within else 'no'}")
    common.write_json({"benchmark": "preset_cost", "budget": BUDGET, "base": BASE, "repeats": args.repeats,
                       "sets": results, "environment": env}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
