import math

import pytest
import torch
import torch.nn.functional as F

from iem.config import IEMConfig
from iem.core.filters import LinearFilter, filter_matrix, gaussian_blur, gaussian_kernel1d


def test_taps_by_hand():
    taps = gaussian_kernel1d(3, 1.0, torch.float64)
    e = math.exp(-0.5)
    assert torch.allclose(taps, torch.tensor([e, 1.0, e], dtype=torch.float64) / (1 + 2 * e))
    assert gaussian_kernel1d(11, 5.0).sum().item() == pytest.approx(1.0)


def test_impulse_response_of_one_pass_is_the_taps_and_truncated_at_the_border():
    cfg = IEMConfig(kernel_size=3, sigma=1.0, filter_repeats=1)
    taps = gaussian_kernel1d(3, 1.0, torch.float64)
    a = filter_matrix(5, cfg, torch.float64)
    assert torch.allclose(a[:, 2], torch.tensor([0, taps[0], taps[1], taps[2], 0], dtype=torch.float64))
    # zero padding: the first output only sees pixels 0 and 1
    assert torch.allclose(a[0], torch.tensor([taps[1], taps[2], 0, 0, 0], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(1, 2, 16, 16), (2, 4, 13, 21), (1, 1, 30, 11)])
def test_matrix_filter_equals_the_convolution_definition(shape):
    cfg = IEMConfig()
    x = torch.randn(shape, dtype=torch.float64)
    filt = LinearFilter.build(shape[2], shape[3], cfg, torch.float64, "cpu")
    expected = gaussian_blur(x, cfg.kernel_size, cfg.sigma, cfg.filter_repeats)
    assert torch.allclose(filt(x), expected, atol=1e-12)


def test_scale_factor_equals_pool_filter_upsample():
    cfg = IEMConfig(scale_factor=2, kernel_size=7, sigma=2.5)
    x = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    filt = LinearFilter.build(16, 24, cfg, torch.float64, "cpu")
    pooled = F.avg_pool2d(x, 2)
    expected = F.interpolate(gaussian_blur(pooled, 7, 2.5, 2), scale_factor=2, mode="nearest")
    assert torch.allclose(filt(x), expected, atol=1e-12)


def test_scale_factor_with_a_partial_last_block():
    cfg = IEMConfig(scale_factor=2)
    a = filter_matrix(7, cfg, torch.float64)
    assert a.shape == (7, 7)
    # a constant input far from the borders stays finite and positive everywhere
    assert torch.all(a.sum(1) > 0)


def test_adjoint_is_the_transpose():
    cfg = IEMConfig(scale_factor=2)
    filt = LinearFilter.build(12, 18, cfg, torch.float64, "cpu")
    x, y = torch.randn(3, 12, 18, dtype=torch.float64), torch.randn(3, 12, 18, dtype=torch.float64)
    assert torch.allclose((filt(x) * y).sum(), (x * filt.adjoint(y)).sum())
