"""The Gaussian filter K of the inpainter psi_K (paper Eq. 5-6, section 4.2).

The filter is separable and linear, so on an image of fixed size it is exactly a pair of
matrices: ``K(Y) = R @ Y @ C.T`` with ``R`` acting on rows (height) and ``C`` on columns
(width). Folding the repeated passes, zero padding and the optional average-pool /
nearest-upsample speed-up into those two matrices turns every filtering into two dense
matrix products, which is both the fastest form on CPU and GPU and gives the adjoint
``K^T(Y) = R.T @ Y @ C`` needed by the closed-form gradient for free.

:func:`gaussian_blur` is the direct definition (1-D convolutions, vertical then horizontal,
zero padding, repeated), kept as the reference the matrices are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F

from iem.config import IEMConfig


def gaussian_kernel1d(
    kernel_size: int, sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Normalised 1-D Gaussian taps at offsets ``-(k-1)/2 .. (k-1)/2``.

    Returns:
        Tensor of shape ``(kernel_size,)`` summing to 1, weights ``exp(-d^2 / (2 sigma^2))``.
    """
    half = (kernel_size - 1) / 2
    offsets = torch.linspace(-half, half, kernel_size, dtype=torch.float64)
    taps = torch.exp(-0.5 * offsets**2 / sigma**2)
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: float, repeats: int) -> torch.Tensor:
    """Reference separable Gaussian blur by convolution (Eq. 5): the definition of K.

    Args:
        x: ``(B, C, H, W)`` tensor.
        kernel_size, sigma: the 1-D Gaussian (:func:`gaussian_kernel1d`).
        repeats: how many times the 2-D filter (vertical pass, then horizontal) is applied.

    Returns:
        ``(B, C, H, W)`` tensor, zero padding, same size as the input.
    """
    channels = x.shape[1]
    taps = gaussian_kernel1d(kernel_size, sigma, x.dtype, x.device)
    vertical = taps.view(1, 1, kernel_size, 1).repeat(channels, 1, 1, 1)
    horizontal = taps.view(1, 1, 1, kernel_size).repeat(channels, 1, 1, 1)
    pad = kernel_size // 2
    for _ in range(repeats):
        x = F.conv2d(x, vertical, padding=(pad, 0), groups=channels)
        x = F.conv2d(x, horizontal, padding=(0, pad), groups=channels)
    return x


def filter_matrix(n: int, config: IEMConfig, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(n, n)`` matrix of K along one axis of length ``n``.

    It composes, right to left: block averaging by ``config.scale_factor`` (a last, shorter
    block is averaged over the pixels it has), ``config.filter_repeats`` passes of the 1-D
    Gaussian with zero padding, and nearest upsampling back to ``n``. Built in float64 and
    rounded once to ``dtype``.
    """
    s = config.scale_factor
    m = -(-n // s)  # pooled length, ceil(n / s)
    taps = gaussian_kernel1d(config.kernel_size, config.sigma, torch.float64)
    radius = config.kernel_size // 2
    idx = torch.arange(m)
    offset = idx.view(1, -1) - idx.view(-1, 1) + radius  # taps[j - i + r] acts on input j for output i
    inside = (offset >= 0) & (offset < config.kernel_size)
    one_pass = torch.where(inside, taps[offset.clamp(0, config.kernel_size - 1)], torch.zeros((), dtype=torch.float64))
    passes = torch.linalg.matrix_power(one_pass, config.filter_repeats)
    block = torch.arange(n) // s
    upsample = (block.view(-1, 1) == idx.view(1, -1)).to(torch.float64)  # (n, m)
    pool = upsample.T / upsample.sum(0).view(-1, 1)  # (m, n), rows average their block
    return (upsample @ passes @ pool).to(dtype)


#: Block size of the banded products on CPU. K's matrices are banded (radius 10 at the paper's
#: settings), so a block of output rows only needs ``block + 2 * radius`` input rows; at 128 px
#: and blocks of 16 skip about 70% of the multiply-adds of a dense product, with identical results.
BAND_BLOCK = 16

Span = Tuple[int, int, int, int]  # output rows [start, stop) read input rows [low, high)


def band_spans(matrix: torch.Tensor, block: int = BAND_BLOCK) -> Tuple[Span, ...]:
    """Row blocks of ``matrix`` and the column range each block touches (its non-zero band)."""
    n = matrix.shape[0]
    spans = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        cols = matrix[start:stop].abs().sum(0).nonzero().flatten()
        low, high = (int(cols[0]), int(cols[-1]) + 1) if cols.numel() else (start, start + 1)
        spans.append((start, stop, low, high))
    return tuple(spans)


@dataclass(frozen=True)
class BandedMatrix:
    """A square matrix with the column range of each block of rows (one dense block off CPU)."""

    matrix: torch.Tensor
    spans: Tuple[Span, ...]

    @classmethod
    def of(cls, matrix: torch.Tensor, device: torch.device | str) -> "BandedMatrix":
        n = matrix.shape[0]
        banded = torch.device(device).type == "cpu"
        return cls(matrix.contiguous().to(device), band_spans(matrix) if banded else ((0, n, 0, n),))

    def _dense(self, y: torch.Tensor) -> bool:
        # Block products write into slices of one output, which autograd cannot follow.
        return len(self.spans) == 1 or (y.requires_grad and torch.is_grad_enabled())

    def times(self, y: torch.Tensor) -> torch.Tensor:
        """``matrix @ y`` for ``y`` of shape ``(..., n, W)``."""
        if self._dense(y):
            return torch.matmul(self.matrix, y)
        stack = y.reshape(-1, *y.shape[-2:])
        out = torch.empty(stack.shape, dtype=y.dtype, device=y.device)
        for start, stop, low, high in self.spans:
            torch.matmul(self.matrix[start:stop, low:high], stack[:, low:high], out=out[:, start:stop])
        return out.view(y.shape)

    def times_transposed(self, y: torch.Tensor) -> torch.Tensor:
        """``y @ matrix.T`` for ``y`` of shape ``(..., H, n)``."""
        if self._dense(y):
            return torch.matmul(y, self.matrix.T)
        flat = y.reshape(-1, y.shape[-1])
        out = torch.empty(flat.shape, dtype=y.dtype, device=y.device)
        for start, stop, low, high in self.spans:
            torch.mm(flat[:, low:high], self.matrix[start:stop, low:high].T, out=out[:, start:stop])
        return out.view(y.shape)


@dataclass(frozen=True)
class LinearFilter:
    """K on ``(..., H, W)`` tensors as ``rows @ Y @ cols.T`` (see the module docstring).

    On CPU the products skip the zero blocks of the banded matrices; on other devices they
    are single dense products, which suit a GPU better than many small ones.
    """

    rows: BandedMatrix  # (H, H)
    cols: BandedMatrix  # (W, W)
    rows_t: BandedMatrix  # rows.T
    cols_t: BandedMatrix  # cols.T

    @classmethod
    def build(
        cls, height: int, width: int, config: IEMConfig, dtype: torch.dtype, device: torch.device | str
    ) -> "LinearFilter":
        rows = filter_matrix(height, config, dtype)
        cols = rows if width == height else filter_matrix(width, config, dtype)
        return cls(*(BandedMatrix.of(m, device) for m in (rows, cols, rows.T, cols.T)))

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """``K(Y)`` for ``y`` of shape ``(..., H, W)``."""
        return self.rows.times(self.cols.times_transposed(y))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``K^T(Y) = rows.T @ Y @ cols``, used to back-propagate through K."""
        return self.rows_t.times(self.cols_t.times_transposed(y))
