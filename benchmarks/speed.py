"""Side-by-side speed of ``iem.segment_batch`` against the naive autograd baseline.

Both implementations segment the same Weizmann Horse images (paper protocol, 128 px) with
the released preset (one square of side 78, 150 iterations), in the same process, one after
the other, so that they meet the same machine load. Two measurements are taken:

* wall-clock time with ``--threads`` intra-op threads (2 by default, the target machine);
* process CPU time with one thread, which other processes on a shared machine barely move:
  the load-insensitive ratio.

The time per image-iteration divides a run by ``images x iterations`` (the configured 150,
also for the early-exit run, which computes fewer): that is the cost of the job a user asks
for. The ``iem (no early exit)`` row runs every iteration and measures the engine alone. The
masks of the naive baseline and of ``iem`` are compared (mean mask-to-mask IoU; the target is
at least 0.99).

Example::

    python -m benchmarks.speed                       # 64 images, 150 iterations
    python -m benchmarks.speed --images 8 --iterations 10 --out /tmp/speed.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

import iem
from benchmarks import common
from benchmarks.naive import RELEASED_SQUARES, naive_segment

#: Engines timed, in the order they run; the first is the baseline of every ratio.
ENGINES = ("naive", "iem", "iem_no_early_exit")
LABELS = {"naive": "naive autograd", "iem": "iem", "iem_no_early_exit": "iem (no early exit)"}
#: Target of issue 3 and its moonshot, as speed-ups per image-iteration.
TARGET_RATIO = 50.0
MOONSHOT_RATIO = 100.0
#: Masks of the two implementations must agree at least this well (mean IoU).
AGREEMENT_TARGET = 0.99
WARMUP_IMAGES = 2
WARMUP_ITERATIONS = 2


def _runner(engine: str, images: torch.Tensor, iterations: int) -> Callable[[], Any]:
    if engine == "naive":
        return lambda: naive_segment(images, RELEASED_SQUARES, iterations)
    config = iem.IEMConfig.released(iterations=iterations, early_exit=engine == "iem")
    return lambda: iem.segment_batch(images, config, device="cpu")


def measure(images: torch.Tensor, iterations: int, threads: int, repeats: Dict[str, int], clock: str) -> Dict[str, Any]:
    """Time every engine with ``threads`` threads; keep the fastest of its repeats.

    Args:
        clock: ``"wall"`` or ``"cpu"``: which time the ratio of this setting uses.

    Returns:
        ``{"threads", "clock", "engines": {name: {...}}, "masks": {name: tensor}}``.
    """
    common.set_threads(threads)
    for engine in ENGINES:  # first calls pay for compilation, thread pools and allocations
        _runner(engine, images[:WARMUP_IMAGES], WARMUP_ITERATIONS)()
    engines: Dict[str, Any] = {}
    masks: Dict[str, torch.Tensor] = {}
    work = images.shape[0] * iterations
    for engine in ENGINES:
        best: Optional[common.Timing] = None
        runs: List[Dict[str, Any]] = []
        for _ in range(repeats[engine]):
            result, timing = common.run_timed(_runner(engine, images, iterations))
            runs.append(timing.to_dict())
            if best is None or getattr(timing, f"{clock}_s") < getattr(best, f"{clock}_s"):
                best = timing
        masks[engine] = result.masks
        assert best is not None
        print(f"  {LABELS[engine]}, {threads} thread(s): {getattr(best, f'{clock}_s'):.2f} s {clock}", flush=True)
        seconds = getattr(best, f"{clock}_s")
        entry = {
            "seconds": seconds,
            "ms_per_image_iteration": 1000.0 * seconds / work,
            "images_per_s": images.shape[0] / seconds,
            "best": best.to_dict(),
            "runs": runs,
        }
        if engine != "naive":
            entry["iterations_mean"] = float(result.iterations.float().mean())
        engines[engine] = entry
    base = engines["naive"]["seconds"]
    for entry in engines.values():
        entry["ratio"] = base / entry["seconds"]
    return {"threads": threads, "clock": clock, "engines": engines, "masks": masks}


def report(settings: List[Dict[str, Any]], images: int, iterations: int) -> str:
    table = common.Table(["engine", "threads", "clock", "s", "images/s", "ms/img-iter", "ratio", "others busy"])
    for setting in settings:
        for engine in ENGINES:
            entry = setting["engines"][engine]
            busy = entry["best"]["others_busy"]
            table.add(
                LABELS[engine],
                setting["threads"],
                setting["clock"],
                entry["seconds"],
                entry["images_per_s"],
                entry["ms_per_image_iteration"],
                f"{entry['ratio']:.1f}x",
                "-" if busy is None else f"{100 * busy:.0f}%",
            )
    return f"{images} images x {iterations} iterations, released preset\n{table}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speed",
        description="Time iem.segment_batch against the naive autograd baseline, side by side, on Weizmann "
        "Horse images at 128 px (released preset), and check that their masks agree.",
        epilog="Examples:\n  python -m benchmarks.speed\n  python -m benchmarks.speed --images 8 --iterations 10 "
        "--out /tmp/speed.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=64, help="number of horse images (default 64)")
    parser.add_argument("--iterations", type=int, default=150, help="IEM iterations (default 150)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the wall-clock setting (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of iem per setting, fastest kept (default 3)")
    parser.add_argument("--naive-repeats", type=int, default=1, help="timed runs of the naive baseline (default 1)")
    parser.add_argument("--no-cpu-clock", action="store_true", help="skip the one-thread process-CPU-time setting")
    parser.add_argument("--data", default=None, help="folder holding weizmann_horse/ (default: found)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "speed.json", help="JSON output")
    args = parser.parse_args(argv)
    if min(args.images, args.iterations, args.repeats, args.naive_repeats, args.threads) < 1:
        parser.error("--images, --iterations, --threads and the repeats must be >= 1")

    env = common.environment(args.threads)  # at the start: the commit of the code that runs
    images = common.horse_batch(args.images, common.data_dir(args.data))
    repeats = {"naive": args.naive_repeats, "iem": args.repeats, "iem_no_early_exit": args.repeats}
    plans = [(args.threads, "wall")] + ([] if args.no_cpu_clock else [(1, "cpu")])
    settings = [measure(images, args.iterations, threads, repeats, clock) for threads, clock in plans]

    agreement = common.mask_agreement(settings[0]["masks"]["naive"], settings[0]["masks"]["iem"])
    early_exit_identical = bool(torch.equal(settings[0]["masks"]["iem"], settings[0]["masks"]["iem_no_early_exit"]))
    print(report(settings, args.images, args.iterations))
    print(f"naive vs iem: {common.format_agreement(agreement)} (target mean >= {AGREEMENT_TARGET})")
    print(f"iem masks identical with and without early exit: {early_exit_identical}")
    ratios = {f"{s['clock']}_{s['threads']}t": s["engines"]["iem"]["ratio"] for s in settings}
    print("ratios (naive / iem, per image-iteration): " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items())
          + f"; target {TARGET_RATIO:.0f}x, moonshot {MOONSHOT_RATIO:.0f}x")

    result = {
        "benchmark": "speed",
        "images": args.images,
        "iterations": args.iterations,
        "preset": "released",
        "config": iem.IEMConfig.released(iterations=args.iterations).to_dict(),
        "settings": [{k: v for k, v in s.items() if k != "masks"} for s in settings],
        "ratios": ratios,
        "agreement_naive_vs_iem": agreement,
        "early_exit_identical": early_exit_identical,
        "targets": {"ratio": TARGET_RATIO, "moonshot": MOONSHOT_RATIO, "agreement_mean_iou": AGREEMENT_TARGET},
        "environment": env,
    }
    print(f"wrote {common.write_json(result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
