"""The compiled CPU loop (numba) against the torch loop, side by side, per IEM step.

Both loops run the same Weizmann Horse images (paper protocol, 128 px, released preset) in the
same process, one after the other, on one thread and without early exit, so that both compute
every step; each is timed by process CPU time (which other processes on a shared machine
barely move) and the fastest of ``--repeats`` runs is kept. Reports the milliseconds per step
of one image (one run), their ratio, and how far the two loops' masks agree (they differ only
by float rounding of near-zero gradients).

Example::

    python -m benchmarks.loops                        # 16 images, 150 iterations
    python -m benchmarks.loops --images 4 --iterations 10 --out /tmp/loops.json
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

# The compiled loop compiled (or loaded from numba's cache) in this process, never in the background.
os.environ.setdefault("IEM_NUMBA", "wait")

import torch  # noqa: E402

import iem  # noqa: E402
from benchmarks import common  # noqa: E402
from iem.core import kernels  # noqa: E402

LOOPS = ("compiled", "torch")


def run(images: torch.Tensor, iterations: int, loop: str) -> iem.IEMResult:
    """``segment_batch`` with the released preset, every iteration, on the chosen loop."""
    config = iem.IEMConfig.released(iterations=iterations, early_exit=False)
    available = kernels.AVAILABLE
    kernels.AVAILABLE = available and loop == "compiled"
    try:
        return iem.segment_batch(images, config, device="cpu")
    finally:
        kernels.AVAILABLE = available


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loops",
        description="Time the compiled CPU loop against the torch loop per IEM step (one thread, process CPU "
        "time, no early exit) on Weizmann Horse images, and compare their masks.",
        epilog="Examples:\n  python -m benchmarks.loops\n  python -m benchmarks.loops --images 4 --iterations 10 "
        "--out /tmp/loops.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=16, help="number of horse images (default 16)")
    parser.add_argument("--iterations", type=int, default=150, help="IEM iterations (default 150)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per loop, fastest kept (default 3)")
    parser.add_argument("--data", default=None, help="folder holding weizmann_horse/ (default: found)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "loops.json", help="JSON output")
    args = parser.parse_args(argv)
    if min(args.images, args.iterations, args.repeats) < 1:
        parser.error("--images, --iterations and --repeats must be >= 1")
    if not kernels.AVAILABLE:
        parser.error("the compiled loop needs numba (the 'fast' extra) and IEM_NUMBA not 'off'")

    env = common.environment(1)
    images = common.horse_batch(args.images, common.data_dir(args.data))
    common.set_threads(1)
    steps = args.images * args.iterations
    loops: Dict[str, Any] = {}
    masks: Dict[str, torch.Tensor] = {}
    for loop in LOOPS:
        run(images[:1], 2, loop)  # compilation, allocations
        best: Optional[common.Timing] = None
        for _ in range(args.repeats):
            result, timing = common.run_timed(lambda: run(images, args.iterations, loop))
            if best is None or timing.cpu_s < best.cpu_s:
                best = timing
        assert best is not None
        masks[loop] = result.masks
        loops[loop] = {"cpu_s": best.cpu_s, "ms_per_step": 1000.0 * best.cpu_s / steps, "best": best.to_dict()}
    ratio = loops["torch"]["cpu_s"] / loops["compiled"]["cpu_s"]
    agreement = common.mask_agreement(masks["compiled"], masks["torch"])

    table = common.Table(["loop", "process CPU s", "ms per step", "others busy"])
    for loop in LOOPS:
        busy = loops[loop]["best"]["others_busy"]
        table.add(loop, loops[loop]["cpu_s"], loops[loop]["ms_per_step"], "-" if busy is None else f"{100 * busy:.0f}%")
    print(f"{args.images} images x {args.iterations} iterations, released preset, no early exit, 1 thread\n{table}")
    print(f"torch loop / compiled loop per step: {ratio:.2f}x")
    print(f"masks, compiled vs torch loop: {common.format_agreement(agreement)}")
    result = {
        "benchmark": "loops",
        "images": args.images,
        "iterations": args.iterations,
        "preset": "released",
        "loops": loops,
        "ratio_torch_over_compiled": ratio,
        "agreement_compiled_vs_torch": agreement,
        "environment": env,
    }
    print(f"wrote {common.write_json(result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
