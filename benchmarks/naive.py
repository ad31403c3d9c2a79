"""The speed baseline: IEM phase 1 written the straightforward way, with autograd.

This is how the algorithm reads in the paper (section 3.2) and in the authors' released
code: the whole batch is one tensor, and every iteration builds the objective with
convolutions, calls ``backward()`` to get ``dL/dM``, and updates the mask. Nothing is cached
between iterations and no image ever leaves the batch. It is the yardstick the engine of
``iem`` is measured against (``python -m benchmarks.speed``), not library code.

The numerics follow docs/reference.md, "Phase 1" (the released code's reading):

* psi_K (Eq. 6): a separable Gaussian (k = 11, sigma = 5) as two grouped ``conv2d`` passes,
  vertical then horizontal, zero padding, the 2-D filter applied twice; each filtered channel
  gets ``1e-8 * sum(unfiltered channel)`` added before the division;
* objective: ``L = L_inp - lambda * div`` (Eq. 7 and Eq. 10, lambda = 0.001);
* boundary: a 3x3 cross-shaped (Laplacian-style) convolution of ``M`` and of ``1 - M``,
  zero padding, so the image border always counts as boundary;
* projected step (Eq. 9): boundary pixels go to 1 where ``g > 0`` and to 0 where ``g < 0``;
* smoothing: ``avg_pool2d(M, 3, stride 1, padding 1, divisor_override=1) >= 4``.

An empty region would divide by zero; like :mod:`iem`, a prediction from an empty region is
0 and an empty region's size is floored, so both implementations stay finite there.

Example::

    python -m benchmarks.naive --images 8 --iterations 20
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: The released code's settings (docs/reference.md, "Phase 1").
KERNEL_SIZE = 11
SIGMA = 5.0
FILTER_REPEATS = 2
EPSILON = 1e-8
LAMBDA = 1e-3
ITERATIONS = 150
#: A pixel stays foreground after smoothing when its 3x3 window, itself included, holds this many ones.
SMOOTHING_MIN_COUNT = 4
#: Initial square sides at 128 px: the released code's one and the paper's three.
RELEASED_SQUARES = (78,)
PAPER_SQUARES = (44, 78, 92)
#: Floor of a region's size in the objective's denominators (only an empty region reaches it).
SIZE_FLOOR = 1e-6


@dataclass
class NaiveResult:
    """Masks ``(B, 1, H, W)`` bool, final inpainting error ``(B,)`` and chosen square index ``(B,)``."""

    masks: torch.Tensor
    scores: torch.Tensor
    init: torch.Tensor


class NaiveIEM:
    """Full-batch autograd IEM with fixed settings (the released code's).

    Args:
        channels: image channels (3 for RGB).
        kernel_size, sigma, repeats: the Gaussian filter of psi_K.
        epsilon: weight of the per-channel sums added after filtering.
        lambda_: weight of the diversity term.
        device: where the convolution weights live (the images' device).
    """

    def __init__(
        self,
        channels: int = 3,
        kernel_size: int = KERNEL_SIZE,
        sigma: float = SIGMA,
        repeats: int = FILTER_REPEATS,
        epsilon: float = EPSILON,
        lambda_: float = LAMBDA,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
        taps = torch.exp(-(offsets**2) / (2 * sigma**2))
        taps = (taps / taps.sum()).to(dtype=dtype, device=device)
        # One weight per group: channels of the image plus the one of the mask.
        groups = channels + 1
        self.vertical = taps.view(1, 1, kernel_size, 1).repeat(groups, 1, 1, 1)
        self.horizontal = taps.view(1, 1, 1, kernel_size).repeat(groups, 1, 1, 1)
        self.pad = kernel_size // 2
        self.repeats = repeats
        self.epsilon = epsilon
        self.lambda_ = lambda_
        cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=dtype, device=device)
        self.laplacian = cross.view(1, 1, 3, 3)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """The Gaussian K on ``(B, G, H, W)``: grouped separable convolutions, zero padding."""
        groups = x.shape[1]
        for _ in range(self.repeats):
            x = F.conv2d(x, self.vertical[:groups], padding=(self.pad, 0), groups=groups)
            x = F.conv2d(x, self.horizontal[:groups], padding=(0, self.pad), groups=groups)
        return x

    def psi(self, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """psi_K(Y, W) = K(Y) / K(W) with the epsilon terms (Eq. 6)."""
        stacked = torch.cat((y, w), dim=1)
        filtered = self.blur(stacked) + self.epsilon * stacked.sum(dim=(2, 3), keepdim=True)
        num, den = filtered[:, :-1], filtered[:, -1:]
        positive = den > 0
        return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), 0.0)

    def inpainting_error(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """L_inp of Eq. 7 per image, ``(B,)``."""
        mb = 1 - m
        pred_f = self.psi(x * mb, mb)
        pred_b = self.psi(x * m, m)
        size_f = m.sum(dim=(1, 2, 3)).clamp_min(SIZE_FLOOR)
        size_b = mb.sum(dim=(1, 2, 3)).clamp_min(SIZE_FLOOR)
        term_f = (m * (x - pred_f).abs().mean(dim=1, keepdim=True)).sum(dim=(1, 2, 3)) / size_f
        term_b = (mb * (x - pred_b).abs().mean(dim=1, keepdim=True)).sum(dim=(1, 2, 3)) / size_b
        return term_f + term_b

    def diversity(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Eq. 10: squared deviations from each region's mean colour, ``(B,)``."""
        mb = 1 - m
        mu_f = (x * m).sum(dim=(2, 3), keepdim=True) / m.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        mu_b = (x * mb).sum(dim=(2, 3), keepdim=True) / mb.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        return (m * (x - mu_f) ** 2).sum(dim=(1, 2, 3)) + (mb * (x - mu_b) ** 2).sum(dim=(1, 2, 3))

    def boundary(self, m: torch.Tensor) -> torch.Tensor:
        """Pixels with a 4-neighbour of the other value; zero padding makes the border boundary."""
        inside = F.conv2d(m, self.laplacian, padding=1) < 0  # a 1 pixel with a 0 (or outside) neighbour
        outside = F.conv2d(1 - m, self.laplacian, padding=1) < 0  # a 0 pixel with a 1 (or outside) neighbour
        return inside | outside

    def step(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """One iteration: objective, ``backward()``, projected step, smoothing."""
        m = m.detach().requires_grad_(True)
        loss = self.inpainting_error(x, m) - self.lambda_ * self.diversity(x, m)
        loss.sum().backward()
        g = m.grad
        with torch.no_grad():
            edge = self.boundary(m)
            new = torch.where(edge & (g > 0), torch.ones_like(m), m)
            new = torch.where(edge & (g < 0), torch.zeros_like(m), new)
            count = F.avg_pool2d(new, 3, stride=1, padding=1, divisor_override=1)
            return (count >= SMOOTHING_MIN_COUNT).to(x.dtype)

    def run(self, images: torch.Tensor, masks: torch.Tensor, iterations: int = ITERATIONS) -> Tuple[torch.Tensor, torch.Tensor]:
        """All iterations on the whole batch; returns final masks (float 0/1) and their L_inp."""
        m = masks.to(images.dtype)
        for _ in range(iterations):
            m = self.step(images, m)
        with torch.no_grad():
            return m, self.inpainting_error(images, m)


def centered_square(height: int, width: int, side: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A ``(1, 1, H, W)`` float mask with a centered square of ones starting at ``(H - side) // 2``."""
    mask = torch.zeros((1, 1, height, width), device=device)
    top, left = (height - side) // 2, (width - side) // 2
    mask[..., top : top + side, left : left + side] = 1.0
    return mask


def naive_segment(
    images: torch.Tensor, squares: Sequence[int] = RELEASED_SQUARES, iterations: int = ITERATIONS
) -> NaiveResult:
    """IEM from each initial square in turn (a full batch each), keeping the highest L_inp per image.

    Args:
        images: ``(B, 3, H, W)`` float in [-1, 1].
        squares: initial square sides, in pixels.
        iterations: iterations per run.
    """
    b, c, h, w = images.shape
    iem = NaiveIEM(channels=c, device=images.device, dtype=images.dtype)
    best_masks: Optional[torch.Tensor] = None
    best_scores = torch.full((b,), -float("inf"), device=images.device)
    best_init = torch.zeros(b, dtype=torch.long, device=images.device)
    for index, side in enumerate(squares):
        start = centered_square(h, w, side, images.device).expand(b, 1, h, w)
        masks, scores = iem.run(images, start, iterations)
        better = scores > best_scores
        best_masks = masks if best_masks is None else torch.where(better.view(-1, 1, 1, 1), masks, best_masks)
        best_scores = torch.where(better, scores, best_scores)
        best_init = torch.where(better, torch.full_like(best_init, index), best_init)
    assert best_masks is not None
    return NaiveResult(best_masks > 0.5, best_scores, best_init)


def main(argv: Optional[List[str]] = None) -> int:
    from benchmarks import common

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.naive",
        description="Run the naive autograd IEM on Weizmann Horse images and compare its masks "
        "with iem.segment_batch (released preset).",
        epilog="Example: python -m benchmarks.naive --images 8 --iterations 20",
    )
    parser.add_argument("--images", type=int, default=8, help="number of horse images (default 8)")
    parser.add_argument("--iterations", type=int, default=20, help="IEM iterations (default 20)")
    parser.add_argument("--data", default=None, help="data folder holding weizmann_horse/ (default: found)")
    args = parser.parse_args(argv)
    import iem

    images = common.horse_batch(args.images, common.data_dir(args.data))
    start = time.perf_counter()
    naive = naive_segment(images, iterations=args.iterations)
    naive_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = iem.segment_batch(images, iem.IEMConfig.released(iterations=args.iterations), device="cpu")
    ours_s = time.perf_counter() - start
    agreement = common.mask_agreement(naive.masks, ours.masks)
    print(f"naive {naive_s:.2f} s, iem {ours_s:.2f} s, ratio {naive_s / ours_s:.1f}x; {common.format_agreement(agreement)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
