import math

import pytest
import torch
import torch.nn.functional as F

from iem.config import IEMConfig
from iem.core.filters import BandedMatrix, LinearFilter, band_spans, filter_matrix, gaussian_blur, gaussian_kernel1d


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


def test_taps_and_matrices_come_in_the_precision_and_on_the_device_asked_for():
    cfg = IEMConfig(kernel_size=5, sigma=1.5)
    assert gaussian_kernel1d(5, 1.5).dtype == torch.float32  # the default
    assert gaussian_kernel1d(5, 1.5, device="meta").device.type == "meta"
    assert filter_matrix(9, cfg).dtype == torch.float32
    for height, width in ((12, 12), (12, 20)):  # the square case shares one matrix
        filt = LinearFilter.build(height, width, cfg, torch.float32, "cpu")
        assert {m.matrix.dtype for m in (filt.rows, filt.cols, filt.rows_t, filt.cols_t)} == {torch.float32}
    x = torch.randn(1, 2, 10, 9, dtype=torch.float64)
    single = gaussian_blur(x.float(), 5, 1.5, 2)
    assert single.dtype == torch.float32
    assert torch.allclose(single.double(), gaussian_blur(x, 5, 1.5, 2), atol=1e-6)


def tridiagonal_with_a_zero_block(n: int = 40) -> torch.Tensor:
    m = torch.diag(torch.ones(n)) + torch.diag(torch.ones(n - 1), 1) + torch.diag(torch.ones(n - 1), -1)
    m[16:32] = 0
    return m


def test_band_spans_by_hand():
    # Rows in blocks of 16; a block reads the columns its rows touch, one column either side of
    # the diagonal; the block of zeros reads the single column at its start.
    m = tridiagonal_with_a_zero_block()
    assert band_spans(m) == ((0, 16, 0, 17), (16, 32, 16, 17), (32, 40, 31, 40))
    assert band_spans(m, block=25) == ((0, 25, 0, 17), (25, 40, 31, 40))


def test_banded_on_the_cpu_one_dense_block_elsewhere():
    m = tridiagonal_with_a_zero_block()
    assert BandedMatrix.of(m, "cpu").spans == band_spans(m)
    other = BandedMatrix.of(m, "meta")  # any device but the CPU: one dense product
    assert other.spans == ((0, 40, 0, 40),) and other.matrix.device.type == "meta"


@pytest.mark.parametrize("size", [12, 40])  # one block of rows, and several
def test_gradients_flow_through_the_filter(size):
    # The banded products write into slices of one output, which autograd cannot follow: with
    # gradients wanted the filter must take the dense product, and give K^T as the gradient.
    filt = LinearFilter.build(size, size, IEMConfig(), torch.float64, "cpu")
    x = torch.randn(2, size, size, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, size, size, dtype=torch.float64)
    (filt(x) * y).sum().backward()
    assert torch.allclose(x.grad, filt.adjoint(y), atol=1e-12)
