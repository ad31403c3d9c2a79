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


@dataclass(frozen=True)
class LinearFilter:
    """K on ``(..., H, W)`` tensors as ``rows @ Y @ cols.T`` (see the module docstring)."""

    rows: torch.Tensor  # (H, H)
    cols_t: torch.Tensor  # (W, W), the transpose of the column matrix
    rows_t: torch.Tensor  # (H, H)
    cols: torch.Tensor  # (W, W)

    @classmethod
    def build(
        cls, height: int, width: int, config: IEMConfig, dtype: torch.dtype, device: torch.device | str
    ) -> "LinearFilter":
        rows = filter_matrix(height, config, dtype).to(device)
        cols = rows if width == height else filter_matrix(width, config, dtype).to(device)
        return cls(rows, cols.T.contiguous(), rows.T.contiguous(), cols)

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """``K(Y)`` for ``y`` of shape ``(..., H, W)``."""
        return torch.matmul(self.rows, torch.matmul(y, self.cols_t))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``K^T(Y)``, the transpose of the operator, used to back-propagate through K."""
        return torch.matmul(self.rows_t, torch.matmul(y, self.cols))
