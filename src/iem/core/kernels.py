"""A compiled CPU kernel for the pixel-wise part of the closed-form gradient (optional).

Between its two filterings, the closed-form gradient
(:func:`iem.core.objective.objective_gradient`) makes a few dozen pixel-wise operations; in
torch each is a pass over memory, and together they cost almost as much as the filterings.
With numba installed (the ``fast`` extra), this module does them in one pass, on CPU,
releasing the GIL so that chunks run in parallel threads. The torch formulas in :mod:`iem.core.objective` stay the definition (and the
path on GPU); the tests check that both agree. ``IEM_NO_NUMBA=1`` turns the kernels off.
"""

from __future__ import annotations

import os
from typing import Tuple

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

#: Whether the compiled kernels are used for float32 CPU tensors.
AVAILABLE = numba is not None and os.environ.get("IEM_NO_NUMBA") != "1"


def usable(x: torch.Tensor) -> bool:
    """Whether the kernels can serve tensors like ``x`` (float32 on CPU)."""
    return AVAILABLE and x.device.type == "cpu" and x.dtype == torch.float32


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _pixelwise(x, whole_num, whole_den, terms, inside, size_f, size_b, upstream, direct, totals):  # pragma: no cover
        # Rows are processed as contiguous vectors so that the compiler can use SIMD.
        n, channels, height, width = x.shape
        zero = np.float32(0.0)
        inv_f = np.empty(width, dtype=np.float32)
        inv_b = np.empty(width, dtype=np.float32)
        weight = np.empty(width, dtype=np.float32)
        err_f = np.empty(width, dtype=np.float32)
        err_b = np.empty(width, dtype=np.float32)
        den_up = np.empty(width, dtype=np.float32)
        for i in range(n):
            # Explicit float32 constants keep the arithmetic in float32, as in torch.
            inv_channels = np.float32(1.0) / np.float32(channels)
            scale_f = inv_channels / size_f[i]
            scale_b = inv_channels / size_b[i]
            total_f = 0.0
            total_b = 0.0
            for r in range(height):
                fg = inside[i, r]
                for s in range(width):
                    den_b = terms[i, channels, r, s]
                    den_f = whole_den[r, s] - den_b
                    inv_b[s] = np.float32(1.0) / den_b if den_b > zero else zero
                    inv_f[s] = np.float32(1.0) / den_f if den_f > zero else zero
                    weight[s] = inv_f[s] * scale_f if fg[s] else -inv_b[s] * scale_b
                    err_f[s] = zero
                    err_b[s] = zero
                    den_up[s] = zero
                for c in range(channels):
                    for s in range(width):
                        value = x[i, c, r, s]
                        num_b = terms[i, c, r, s]
                        res_f = value - (whole_num[i, c, r, s] - num_b) * inv_f[s]
                        res_b = value - num_b * inv_b[s]
                        err_f[s] += abs(res_f)
                        err_b[s] += abs(res_b)
                        selected = res_f if fg[s] else res_b
                        up = np.float32(np.sign(selected)) * weight[s]
                        upstream[i, c, r, s] = up
                        den_up[s] += up * (selected - value)
                for s in range(width):
                    upstream[i, channels, r, s] = den_up[s]
                    e_f = err_f[s] * inv_channels
                    e_b = err_b[s] * inv_channels
                    direct[i, r, s] = e_f / size_f[i] - e_b / size_b[i]
                    if fg[s]:
                        total_f += e_f
                    else:
                        total_b += e_b
            totals[i, 0] = total_f
            totals[i, 1] = total_b


def pixelwise(
    x: torch.Tensor,
    whole_numerator: torch.Tensor,
    whole_denominator: torch.Tensor,
    terms: torch.Tensor,
    masks: torch.Tensor,
    size_f: torch.Tensor,
    size_b: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compiled twin of :func:`iem.core.objective.pixelwise_terms` (same arguments and results)."""
    n, channels, height, width = x.shape
    upstream = torch.empty((n, channels + 1, height, width), dtype=x.dtype)
    direct = torch.empty((n, 1, height, width), dtype=x.dtype)
    totals = np.empty((n, 2), dtype=np.float64)
    _pixelwise(
        x.contiguous().numpy(),
        whole_numerator.contiguous().numpy(),
        whole_denominator.reshape(height, width).contiguous().numpy(),
        terms.contiguous().numpy(),
        masks.reshape(n, height, width).contiguous().numpy(),
        size_f.reshape(n).contiguous().numpy(),
        size_b.reshape(n).contiguous().numpy(),
        upstream.numpy(),
        direct.numpy()[:, 0],
        totals,
    )
    totals_t = torch.from_numpy(totals).to(x.dtype).view(n, 2, 1, 1)
    return direct, totals_t[:, :1], totals_t[:, 1:], upstream
