import pytest
import torch

from iem.config import IEMConfig
from iem.core.filters import LinearFilter
from iem.core.inpaint import gaussian_inpainter
from iem.core.objective import (
    ImageConstants,
    diversity,
    inpainting_error,
    objective,
    objective_gradient,
    objective_gradient_autograd,
)


def setup(h=20, w=24, b=3, seed=0, dtype=torch.float64, **kw):
    cfg = IEMConfig(**kw)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g, dtype=dtype) * 2 - 1
    m = torch.rand(b, 1, h, w, generator=g) > 0.5
    filt = LinearFilter.build(h, w, cfg, dtype, "cpu")
    return cfg, x, m, filt


def closed_and_autograd(cfg, x, m, filt):
    closed = objective_gradient(m, ImageConstants.compute(x, filt, cfg.epsilon), filt, cfg)
    auto = objective_gradient_autograd(x, m, gaussian_inpainter(filt, cfg.epsilon), cfg)
    return closed, auto


@pytest.mark.parametrize("kw", [{}, {"lambda_": 0.0}, {"scale_factor": 2}, {"epsilon": 0.0}])
def test_closed_form_gradient_matches_autograd(kw):
    cfg, x, m, filt = setup(**kw)
    closed, auto = closed_and_autograd(cfg, x, m, filt)
    assert torch.allclose(closed, auto, rtol=1e-7, atol=1e-9 * auto.abs().max().item())


def test_closed_form_gradient_matches_autograd_on_squares_far_from_the_border():
    # Large regions out of the filter's reach exercise the epsilon terms.
    cfg, x, _, filt = setup(h=64, w=64, b=2)
    m = torch.zeros(2, 1, 64, 64, dtype=torch.bool)
    m[0, :, 10:54, 10:54] = True
    m[1, :, 30:33, 30:33] = True
    closed, auto = closed_and_autograd(cfg, x, m, filt)
    assert torch.allclose(closed, auto, rtol=1e-6, atol=1e-9 * auto.abs().max().item())


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_masks_give_finite_objective_and_gradient(fill):
    cfg, x, _, filt = setup()
    m = torch.full((3, 1, 20, 24), fill, dtype=torch.bool)
    closed, auto = closed_and_autograd(cfg, x, m, filt)
    assert torch.isfinite(closed).all() and torch.isfinite(auto).all()
    assert torch.allclose(closed, auto, rtol=1e-7, atol=1e-12)
    value = objective(x, m.to(x.dtype), gaussian_inpainter(filt, cfg.epsilon), cfg)
    assert torch.isfinite(value).all()


def test_constant_image_gives_zero_error_and_finite_gradient():
    cfg, _, m, filt = setup()
    x = torch.full((3, 3, 20, 24), 0.25, dtype=torch.float64)
    psi = gaussian_inpainter(filt, cfg.epsilon)
    assert torch.allclose(inpainting_error(x, m.double(), psi, cfg), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    closed, _ = closed_and_autograd(cfg, x, m, filt)
    assert torch.isfinite(closed).all()


def test_diversity_by_hand():
    x = torch.tensor([1.0, 3.0, 10.0, 10.0], dtype=torch.float64).view(1, 1, 1, 4)
    m = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 1, 4)
    # foreground mean 2: deviations 1 + 1; background constant
    assert diversity(x, m).item() == pytest.approx(2.0)
    assert diversity(x, torch.zeros_like(m)).item() == pytest.approx(((x - 6) ** 2).sum().item())


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("normalizer", ["size", "marginal"])
def test_variants_are_finite_and_differentiable(norm, normalizer):
    cfg, x, m, filt = setup(numerator_norm=norm, normalizer=normalizer)
    psi = gaussian_inpainter(filt, cfg.epsilon)
    for masks in (m, torch.zeros_like(m), torch.ones_like(m)):
        g = objective_gradient_autograd(x, masks, psi, cfg)
        assert torch.isfinite(g).all()


def test_l1_size_error_by_hand_for_a_half_split():
    # Two flat halves far apart: each side's prediction is the other side's colour.
    cfg = IEMConfig(kernel_size=3, sigma=1.0, filter_repeats=1)
    x = torch.zeros(1, 3, 4, 40, dtype=torch.float64)
    x[..., 20:] = 1.0
    m = torch.zeros(1, 1, 4, 40, dtype=torch.float64)
    m[..., 20:] = 1.0
    filt = LinearFilter.build(4, 40, cfg, torch.float64, "cpu")
    err = inpainting_error(x, m, gaussian_inpainter(filt, cfg.epsilon), cfg)
    assert err.item() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("variant", ["l2_size", "l2_marginal", "l1_marginal"])
def test_variants_score_each_image_of_a_batch_on_its_own(variant):
    # Each image's value must not depend on the others: a sum over the batch would mix them.
    from iem.config import VARIANTS

    cfg, x, m, filt = setup(b=2, **VARIANTS[variant])
    psi = gaussian_inpainter(filt, cfg.epsilon)
    together = inpainting_error(x, m.double(), psi, cfg)
    alone = torch.cat([inpainting_error(x[i : i + 1], m[i : i + 1].double(), psi, cfg) for i in range(2)])
    assert torch.allclose(together, alone, rtol=1e-12)


def test_one_pixel_regions_have_no_diversity_and_a_matching_gradient():
    x = torch.tensor([1.0, 3.0, 10.0, 10.0], dtype=torch.float64).view(1, 1, 1, 4)
    m = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 1, 4)
    # a lone pixel is its own mean; the background's mean is 23 / 3
    assert diversity(x, m).item() == pytest.approx(sum((v - 23 / 3) ** 2 for v in (3.0, 10.0, 10.0)))
    # A large lambda makes the regions' means weigh; psi from one pixel is poorly conditioned.
    cfg, x, _, filt = setup(lambda_=1.0)
    for lone in (True, False):  # one foreground pixel, then one background pixel
        m = torch.full((3, 1, 20, 24), not lone, dtype=torch.bool)
        m[:, :, 7, 9] = lone
        closed, auto = closed_and_autograd(cfg, x, m, filt)
        assert torch.allclose(closed, auto, rtol=1e-6, atol=1e-8 * auto.abs().max().item())


def test_constants_of_a_subset_are_those_computed_for_it():
    cfg, x, _, filt = setup(b=4)
    index = torch.tensor([2, 0])
    picked = ImageConstants.compute(x, filt, cfg.epsilon).select(index)
    direct = ImageConstants.compute(x[index], filt, cfg.epsilon)
    for field in ("images", "image_sums", "whole_numerator", "whole_denominator"):
        assert torch.allclose(getattr(picked, field), getattr(direct, field), rtol=1e-12), field


def test_reciprocal_is_zero_where_a_region_is_empty():
    from iem.core.objective import _reciprocal_or_zero

    values = torch.tensor([4.0, 0.0, -0.0])
    assert _reciprocal_or_zero(values).tolist() == [0.25, 0.0, 0.0]
