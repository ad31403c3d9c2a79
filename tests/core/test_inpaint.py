import torch

from iem.config import IEMConfig
from iem.core.filters import LinearFilter
from iem.core.inpaint import gaussian_inpainter, inpaint_from_other_region, psi
from iem.core.filters import gaussian_kernel1d


def build(h, w, **kw):
    cfg = IEMConfig(**kw)
    return cfg, LinearFilter.build(h, w, cfg, torch.float64, "cpu")


def test_constant_image_is_inpainted_exactly():
    cfg, filt = build(16, 16)
    x = torch.full((1, 3, 16, 16), 0.3, dtype=torch.float64)
    w = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    w[..., 4:9, 4:9] = 1
    assert torch.allclose(psi(x * w, w, filt, cfg.epsilon), x)


def test_prediction_by_hand_near_and_out_of_reach():
    # One pass of a 3-tap filter on a 1 x 7 strip whose source region is pixels 0 and 1.
    cfg, filt = build(1, 7, kernel_size=3, sigma=1.0, filter_repeats=1)
    t = gaussian_kernel1d(3, 1.0, torch.float64)
    x = torch.tensor([2.0, 4.0, 0, 0, 0, 0, 0], dtype=torch.float64).view(1, 1, 1, 7)
    w = torch.tensor([1.0, 1.0, 0, 0, 0, 0, 0], dtype=torch.float64).view(1, 1, 1, 7)
    eps = cfg.epsilon
    out = psi(x * w, w, filt, eps)[0, 0, 0]
    # pixel 2 sees only pixel 1 through the tap t[0]; the epsilon terms are eps * 6 and eps * 2
    assert torch.isclose(out[2], (t[0] * 4 + eps * 6) / (t[0] + eps * 2))
    # pixel 5 is out of reach: only the epsilon terms remain, the region's mean
    assert torch.isclose(out[5], torch.tensor(3.0, dtype=torch.float64))


def test_empty_source_region_predicts_zero_not_nan():
    cfg, filt = build(8, 8)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    out = psi(x * w, w, filt, cfg.epsilon)
    assert torch.all(out == 0)


def test_inpaint_from_other_region_uses_the_other_side():
    cfg, filt = build(12, 12)
    x = torch.zeros(1, 3, 12, 12, dtype=torch.float64)
    m = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    m[..., :, :6] = True
    x[:, :, :, :6] = 1.0  # foreground white, background black
    out = inpaint_from_other_region(x, m, gaussian_inpainter(filt, cfg.epsilon))
    assert torch.allclose(out[..., :6], torch.zeros(1, 3, 12, 6, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(out[..., 6:], torch.ones(1, 3, 12, 6, dtype=torch.float64), atol=1e-6)
