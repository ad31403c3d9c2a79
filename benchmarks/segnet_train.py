"""Training speed of the phase-2 network on a CPU: threads x precision x memory format, side by side.

One optimiser step (forward, per-pixel BCE, backward, Adam) of :class:`iem.segnet.SegNet` on a
batch of 128x128 photos is timed for every combination of torch threads, ``fp32`` / ``bf16``
(autocast) and the NCHW / channels-last memory formats, in interleaved rounds (the median of
the rounds is reported, so a burst of load on a shared machine hits every variant alike).
bf16's effect on the result is measured too: the foreground probabilities of one network
evaluated in both precisions (largest difference, share of pixels whose mask differs), and
the loss after the timed steps of each run (all start from the same weights and data).

Example::

    python -m benchmarks.segnet_train                          # threads 1,2, batch 32, 3 rounds
    python -m benchmarks.segnet_train --threads 1 --batch 8 --steps 1 --rounds 1 --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from benchmarks import common
from iem.segnet.model import SegNet
from iem.segnet.predict import THRESHOLD

PRECISIONS = ("fp32", "bf16")
FORMATS = ("nchw", "channels_last")


def _batch(count: int, data: Optional[str]) -> torch.Tensor:
    try:
        root = common.data_dir(data)
    except FileNotFoundError:
        return common.synthetic_batch(count)
    return common.load_batch(common.cycled_paths(count, root))


def _setup(images: torch.Tensor, memory_format: str, seed: int = 0):
    torch.manual_seed(seed)
    model = SegNet()
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), images.contiguous(memory_format=fmt)


def _step(model, optimizer, x, y, precision: str) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        logits = model(x)
    loss = F.binary_cross_entropy_with_logits(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def time_variant(images, labels, threads: int, precision: str, memory_format: str, steps: int) -> Dict[str, Any]:
    """Images per second of ``steps`` training steps (after one untimed warm-up step)."""
    common.set_threads(threads)
    model, optimizer, x = _setup(images, memory_format)
    _step(model, optimizer, x, labels, precision)
    start = time.perf_counter()
    loss = 0.0
    for _ in range(steps):
        loss = _step(model, optimizer, x, labels, precision)
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * len(images) / seconds, "loss": loss}


def bf16_agreement(images: torch.Tensor) -> Dict[str, float]:
    """How far bf16 autocast moves one (untrained) network's probabilities and masks."""
    model, _, x = _setup(images, "nchw")
    model.eval()
    with torch.no_grad():
        full = torch.sigmoid(model(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = torch.sigmoid(model(x).float())
    return {
        "max_abs_probability_difference": float((full - half).abs().max()),
        "mask_pixels_differing": float(((full > THRESHOLD) != (half > THRESHOLD)).float().mean()),
    }


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.segnet_train",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Example"):],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--threads", default="1,2", help="Comma-separated torch thread counts.")
    parser.add_argument("--batch", type=int, default=32, help="Images per step.")
    parser.add_argument("--steps", type=int, default=2, help="Timed steps per variant and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds (the median is reported).")
    parser.add_argument("--data", default=None, help="Folder holding weizmann_horse/ and grabcut/ (synthetic images when absent).")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "segnet_train.json")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    images = _batch(args.batch, args.data)
    # Labels: a centered disk, the same for every run (the speed does not depend on them).
    side = images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    disk = (((yy - side / 2) ** 2 + (xx - side / 2) ** 2) < (side / 3) ** 2).float()
    labels = disk.expand(len(images), 1, side, side).contiguous()

    variants = [(t, p, f) for t in threads for p in PRECISIONS for f in FORMATS]
    runs: Dict[tuple, List[Dict[str, Any]]] = {v: [] for v in variants}
    with common.timed() as timing:
        for _ in range(args.rounds):
            for variant in variants:
                runs[variant].append(time_variant(images, labels, *variant, args.steps))
    baseline = statistics.median(r["images_per_s"] for r in runs[(threads[0], "fp32", "nchw")])
    table = common.Table(["threads", "precision", "format", "images/s", "ratio", "loss"])
    rows = []
    for (t, p, f), results in runs.items():
        rate = statistics.median(r["images_per_s"] for r in results)
        rows.append({"threads": t, "precision": p, "format": f, "images_per_s": rate, "ratio": rate / baseline, "loss_after_steps": results[-1]["loss"]})
        table.add(t, p, f, rate, rate / baseline, results[-1]["loss"])
    agreement = bf16_agreement(images)
    print(table)
    print(f"bf16 vs fp32, same weights: largest probability difference {agreement['max_abs_probability_difference']:.2e}, "
          f"mask pixels differing {100 * agreement['mask_pixels_differing']:.3f} %")
    report = {
        "config": {"batch": args.batch, "steps": args.steps, "rounds": args.rounds, "threads": threads},
        "rows": rows,
        "bf16_agreement": agreement,
        "timing": timing.to_dict(),
        "environment": common.environment(),
    }
    common.write_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
