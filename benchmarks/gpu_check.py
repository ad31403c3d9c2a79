"""One short GPU check: CUDA masks against CPU masks, and CUDA throughput on the paper protocol.

Meant to run once on a GPU machine within a few minutes (``benchmarks/gpu_check.sh`` installs
the package when needed and calls this module). It

1. segments 64 Weizmann Horse images (paper protocol, 128 px) on the CPU and on CUDA with the
   released and the paper presets and compares the masks (mean / min mask-to-mask IoU,
   identical masks, chosen squares, largest score difference);
2. times ``iem.segment_batch(images, IEMConfig.paper())`` on CUDA for the 1,020-image paper
   protocol (Weizmann Horse + GrabCut cycled, as ``benchmarks.paper_protocol``), with early
   exit (fastest of a few runs) and without it (once), and checks the two give identical masks;
3. if time is left, times the naive autograd baseline on CUDA on the 64 images for a
   side-by-side ratio per image-iteration;
4. prints a compact report and writes it with a JSON of everything to ``$OUT`` when that
   variable is set (else to ``benchmarks/results/``).

Steps 2 and 3 are skipped, and said so, when the time budget (``--budget``) would be
exceeded. Without CUDA the script says so clearly and exits with status 3.

Example::

    bash benchmarks/gpu_check.sh
    python -m benchmarks.gpu_check --budget 150 --data /path/to/data
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

import iem
from iem.io.write import write_text
from benchmarks import common
from benchmarks.naive import RELEASED_SQUARES, naive_segment

#: Agreement required between CUDA and CPU masks (mean mask-to-mask IoU).
AGREEMENT_TARGET = 0.99
CHECK_IMAGES = 64
#: Exit status when no CUDA device is available.
NO_CUDA_STATUS = 3
#: Exit status when CUDA and CPU masks disagree beyond the target.
DISAGREE_STATUS = 1


class Budget:
    """Seconds left of the check, so optional steps can be skipped rather than overrun."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, estimate: float) -> bool:
        return self.elapsed() + estimate <= self.seconds


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device_timed(fn: Callable[[], Any]) -> Tuple[Any, float]:
    """Run ``fn`` and return its value and wall seconds, with the GPU synchronised on both ends."""
    _synchronize()
    start = time.perf_counter()
    value = fn()
    _synchronize()
    return value, time.perf_counter() - start


def compare(cpu: Any, gpu: Any) -> Dict[str, Any]:
    agreement = common.mask_agreement(cpu.masks, gpu.masks)
    agreement["init_identical"] = int((cpu.init == gpu.init).sum())
    agreement["max_score_difference"] = float((cpu.scores - gpu.scores.cpu()).abs().max())
    return agreement


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description="Check iem on CUDA against the CPU (64 horse images, released and paper presets) and time the "
        "1,020-image paper protocol on CUDA; a compact report, JSON to $OUT when set.",
        epilog="Examples:\n  bash benchmarks/gpu_check.sh\n  python -m benchmarks.gpu_check --budget 150",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--budget", type=float, default=200.0, help="seconds the whole check may take (default 200)")
    parser.add_argument("--images", type=int, default=common.PAPER_IMAGES, help="images of the timed protocol (default 1020)")
    parser.add_argument("--check-images", type=int, default=CHECK_IMAGES, help="horse images compared with the CPU (default 64)")
    parser.add_argument("--iterations", type=int, default=150, help="IEM iterations of every run (default 150)")
    parser.add_argument("--repeats", type=int, default=3, help="timed CUDA runs of the protocol, fastest kept (default 3)")
    parser.add_argument("--data", default=None, help="folder holding weizmann_horse/ and grabcut/ (default: found)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default $OUT, else benchmarks/results)")
    parser.add_argument("--device", default="cuda", help="device checked against the CPU (default cuda; cpu is a dry run)")
    args = parser.parse_args(argv)
    budget = Budget(args.budget)
    out_dir = args.out or Path(os.environ.get("OUT") or common.RESULTS_DIR)
    lines: List[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    env = common.environment()
    say(f"iem {iem.__version__} from {Path(iem.__file__).parent}; torch {torch.__version__}; python {env['python']}")
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        say("CUDA IS NOT AVAILABLE: torch.cuda.is_available() is False "
            f"(torch built with CUDA {torch.version.cuda}); nothing was checked on a GPU.")
        common.write_json({"benchmark": "gpu_check", "cuda": False, "environment": env}, out_dir / "gpu_check.json")
        return NO_CUDA_STATUS
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"{device} (dry run)"
    say(f"device: {name}, CUDA {torch.version.cuda}; CPU reference on {torch.get_num_threads()} threads")

    try:
        root = common.data_dir(args.data)
    except FileNotFoundError as err:
        say(f"DATA NOT FOUND: {err}. Copy shared/data/weizmann_horse and shared/data/grabcut into <repo>/.bench_data "
            "(and carry it) or set IEM_DATA.")
        return 2
    checks = common.horse_batch(args.check_images, root)
    protocol = common.load_batch(common.cycled_paths(args.images, root))
    say(f"data: {root} ({args.check_images} horse images for the check, {args.images} cycled images for the protocol); "
        f"{budget.elapsed():.0f} s")

    record: Dict[str, Any] = {"benchmark": "gpu_check", "cuda": device.startswith("cuda"), "device": device,
                              "iterations": args.iterations, "environment": env, "agreement": {}}
    iem.segment_batch(checks[:2], iem.IEMConfig.paper(iterations=2), device=device)  # CUDA context, kernels
    agree_ok = True
    for preset in ("released", "paper"):
        config = iem.IEMConfig.preset(preset, iterations=args.iterations)
        cpu, cpu_timing = common.run_timed(lambda c=config: iem.segment_batch(checks, c, device="cpu"))
        gpu, gpu_s = device_timed(lambda c=config: iem.segment_batch(checks, c, device=device))
        agreement = compare(cpu, gpu)
        agreement["cpu_seconds"] = cpu_timing.wall_s
        agreement["device_seconds"] = gpu_s
        record["agreement"][preset] = agreement
        agree_ok &= agreement["mean_iou"] >= AGREEMENT_TARGET
        say(f"{preset:8s} {device} vs CPU: {common.format_agreement(agreement)}, chosen squares "
            f"{agreement['init_identical']}/{agreement['images']} identical, max |score diff| "
            f"{agreement['max_score_difference']:.2e}; {budget.elapsed():.0f} s")

    timings: Dict[str, Any] = {}
    config = iem.IEMConfig.paper(iterations=args.iterations)
    first, seconds = device_timed(lambda: iem.segment_batch(protocol, config, device=device))
    best = seconds
    for _ in range(args.repeats - 1):
        if not budget.allows(2 * seconds):
            break
        best = min(best, device_timed(lambda: iem.segment_batch(protocol, config, device=device))[1])
    timings["paper_early_exit"] = {"seconds": best, "first_seconds": seconds, "images_per_s": args.images / best,
                                   "ms_per_image_iteration": 1000 * best / (args.images * config.iterations)}
    say(f"paper protocol on {device}, {args.images} images x 3 squares x {config.iterations} iterations: {best:.2f} s "
        f"({args.images / best:.0f} images/s; first run {seconds:.2f} s); "
        f"iterations of the kept result mean {float(first.iterations.float().mean()):.1f}")

    if budget.allows(6 * best):
        full, full_s = device_timed(lambda: iem.segment_batch(protocol, config.replace(early_exit=False), device=device))
        identical = bool(torch.equal(first.masks, full.masks))
        timings["paper_no_early_exit"] = {"seconds": full_s, "images_per_s": args.images / full_s, "masks_identical": identical}
        say(f"  without early exit: {full_s:.2f} s ({args.images / full_s:.0f} images/s); masks identical: {identical}")
    else:
        say("  without early exit: skipped (time budget)")

    released = iem.IEMConfig.released(iterations=args.iterations)
    ours, ours_s = device_timed(lambda: iem.segment_batch(checks, released, device=device))
    naive_estimate = 60.0 * ours_s + 5.0
    if budget.allows(naive_estimate):
        naive, naive_s = device_timed(lambda: naive_segment(checks.to(device), RELEASED_SQUARES, released.iterations))
        agreement = common.mask_agreement(naive.masks.cpu(), ours.masks)
        timings["naive_vs_iem_released"] = {"naive_seconds": naive_s, "iem_seconds": ours_s, "ratio": naive_s / ours_s,
                                            "agreement": agreement}
        say(f"naive autograd on {device}, {args.check_images} images x {released.iterations} iterations: {naive_s:.2f} s vs iem "
            f"{ours_s:.3f} s: ratio {naive_s / ours_s:.1f}x per image-iteration; {common.format_agreement(agreement)}")
    else:
        say(f"naive autograd on {device}: skipped (time budget)")

    record["timings"] = timings
    record["seconds"] = budget.elapsed()
    verdict = "PASS" if agree_ok else "FAIL"
    say(f"{verdict}: {device} masks {'agree' if agree_ok else 'DISAGREE'} with the CPU (target mean IoU >= {AGREEMENT_TARGET}); "
        f"total {budget.elapsed():.0f} s")
    record["report"] = lines
    common.write_json(record, out_dir / "gpu_check.json")
    report = out_dir / "gpu_check.txt"
    write_text(report, "\n".join(lines) + "\n")
    print(f"wrote {out_dir / 'gpu_check.json'} and {report}")
    return 0 if agree_ok else DISAGREE_STATUS


if __name__ == "__main__":
    raise SystemExit(main())
