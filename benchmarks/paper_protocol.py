"""The paper's protocol at the paper's scale: 1,020 images at 128 px, three squares, 150 iterations.

The paper times IEM on Flowers' 1,020 evaluation images (section 4.2; 77 s for the released
code on a GTX 1080 Ti with one square). Flowers is not available offline, so the 1,020
images cycle through the 327 Weizmann Horse and 50 GrabCut images (sorted by name; each
appears two or three times), prepared with the paper protocol (nearest resize of the shorter
side to 128, center crop, ``2 x / 255 - 1``). ``iem.segment_batch(images, IEMConfig.paper())``
is timed with early exit (the default) and without it, side by side in one process; the
masks of the two must be identical, and the number of iterations each kept result needed
before its mask settled is reported as a distribution.

Example::

    python -m benchmarks.paper_protocol              # 1,020 images, both runs
    python -m benchmarks.paper_protocol --images 40 --iterations 20 --out /tmp/paper.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

import iem
from benchmarks import common

#: Issue 3's target for the whole protocol on the 2-core machine, in seconds.
TARGET_SECONDS = 60.0
#: Width of the bins of the iterations histogram.
HISTOGRAM_BIN = 10
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def iterations_distribution(iterations: torch.Tensor, total: int) -> Dict[str, Any]:
    """Summary of the iterations the kept results needed: quantiles, mean, histogram."""
    values = iterations.double()
    edges = list(range(0, total + HISTOGRAM_BIN, HISTOGRAM_BIN))
    counts = [int(((values > lo) & (values <= hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:])]
    if values.min() <= 0:
        counts[0] += int((values <= 0).sum())
    return {
        "mean": float(values.mean()),
        "min": int(values.min()),
        "max": int(values.max()),
        "quantiles": {str(q): float(torch.quantile(values, q)) for q in QUANTILES},
        "ran_all_iterations": int((iterations >= total).sum()),
        "histogram": {f"{lo + 1}-{hi}": c for lo, hi, c in zip(edges[:-1], edges[1:], counts)},
    }


def format_distribution(dist: Dict[str, Any], total: int, images: int) -> str:
    q = dist["quantiles"]
    bars = "\n".join(
        f"    {label:>9s} {count:5d} {'#' * round(50 * count / images)}" for label, count in dist["histogram"].items() if count
    )
    return (
        f"iterations of the kept result: mean {dist['mean']:.1f}, min {dist['min']}, p10 {q['0.1']:.0f}, "
        f"median {q['0.5']:.0f}, p90 {q['0.9']:.0f}, max {dist['max']}; {dist['ran_all_iterations']}/{images} "
        f"ran all {total}\n{bars}"
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.paper_protocol",
        description="Time iem.segment_batch(images, IEMConfig.paper()) on 1,020 images at 128 px (Weizmann Horse "
        "and GrabCut, cycled), with and without early exit, and check that the masks are identical.",
        epilog="Examples:\n  python -m benchmarks.paper_protocol\n  python -m benchmarks.paper_protocol --images 40 "
        "--iterations 20 --out /tmp/paper.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=common.PAPER_IMAGES, help="number of images (default 1020)")
    parser.add_argument("--iterations", type=int, default=150, help="IEM iterations (default 150)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--skip-no-early-exit", action="store_true", help="time only the default (early exit) run")
    parser.add_argument("--data", default=None, help="folder holding weizmann_horse/ and grabcut/ (default: found)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "paper_protocol.json", help="JSON output")
    args = parser.parse_args(argv)
    if min(args.images, args.iterations, args.threads) < 1:
        parser.error("--images, --iterations and --threads must be >= 1")

    common.set_threads(args.threads)
    env = common.environment(args.threads)  # at the start: the commit of the code that runs
    root = common.data_dir(args.data)
    paths = common.cycled_paths(args.images, root)
    images = common.load_batch(paths)
    # Compilation, thread pools and allocator warm up on a tiny run, so that the timed runs compare fairly.
    iem.segment_batch(images[:2], iem.IEMConfig.paper(iterations=2), device=args.device)

    runs: Dict[str, Any] = {}
    results: Dict[str, Any] = {}
    modes = [True] + ([] if args.skip_no_early_exit else [False])
    for early_exit in modes:
        name = "early_exit" if early_exit else "no_early_exit"
        config = iem.IEMConfig.paper(iterations=args.iterations, early_exit=early_exit)
        result, timing = common.run_timed(lambda c=config: iem.segment_batch(images, c, device=args.device))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        results[name] = result
        work = args.images * len(config.init_sizes) * args.iterations
        runs[name] = {
            "timing": timing.to_dict(),
            "images_per_s": args.images / timing.wall_s,
            "ms_per_image_iteration": 1000.0 * timing.wall_s / (args.images * args.iterations),
            "ms_per_run_iteration": 1000.0 * timing.wall_s / work,
            "cpu_s_per_thread": timing.cpu_s / args.threads,
        }
        print(f"{name:14s}: {timing.wall_s:7.1f} s wall ({args.images / timing.wall_s:6.1f} images/s), "
              f"{timing.cpu_s:7.1f} s CPU = {timing.cpu_s / args.threads:.1f} s per thread; machine busy "
              f"{100 * (timing.machine_busy or 0):.0f}% (others {100 * (timing.others_busy or 0):.0f}%)", flush=True)

    dist = iterations_distribution(results["early_exit"].iterations, args.iterations)
    print(format_distribution(dist, args.iterations, args.images))
    comparison: Dict[str, Any] = {}
    if "no_early_exit" in results:
        a, b = results["early_exit"], results["no_early_exit"]
        comparison = {
            "masks_identical": bool(torch.equal(a.masks, b.masks)),
            "init_identical": bool(torch.equal(a.init, b.init)),
            "max_score_difference": float((a.scores - b.scores).abs().max()),
            "speedup": runs["no_early_exit"]["timing"]["wall_s"] / runs["early_exit"]["timing"]["wall_s"],
            "speedup_cpu": runs["no_early_exit"]["timing"]["cpu_s"] / runs["early_exit"]["timing"]["cpu_s"],
        }
        print(f"early exit: masks identical {comparison['masks_identical']}, chosen squares identical "
              f"{comparison['init_identical']}; {comparison['speedup']:.2f}x faster by wall clock, "
              f"{comparison['speedup_cpu']:.2f}x less CPU time")
    seconds = runs["early_exit"]["timing"]["wall_s"]
    per_thread = runs["early_exit"]["cpu_s_per_thread"]
    print(f"paper protocol: {seconds:.1f} s wall for {args.images} images, {per_thread:.1f} s of CPU per thread (the wall "
          f"time on {args.threads} idle cores); target {TARGET_SECONDS:.0f} s: "
          f"{'met' if seconds <= TARGET_SECONDS else 'met on idle cores' if per_thread <= TARGET_SECONDS else 'missed'}")

    counts = {name: sum(1 for p in set(paths) if p.parent.parent.name == name) for name in common.DATASETS}
    result = {
        "benchmark": "paper_protocol",
        "images": args.images,
        "distinct_images": counts,
        "iterations": args.iterations,
        "device": args.device,
        "threads": args.threads,
        "config": iem.IEMConfig.paper(iterations=args.iterations).to_dict(),
        "runs": runs,
        "iterations_distribution": dist,
        "early_exit_comparison": comparison,
        "target_seconds": TARGET_SECONDS,
        "environment": env,
    }
    print(f"wrote {common.write_json(result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
