"""Each equation of IEM against a second, straightforward computation written here.

The oracles below use numpy loops and scipy's convolution, never the functions under test, so
that a plausible misreading of the paper (sigma for sigma squared, the region size in place of
the marginal normaliser, the pixel counted in the paper's smoothing rule...) changes the result
of one side only. Images are tiny so the loops stay cheap.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate1d

from iem.config import VARIANTS, IEMConfig
from iem.core.filters import LinearFilter, filter_matrix, gaussian_kernel1d
from iem.core.inpaint import gaussian_inpainter
from iem.core.masks import boundary, iem_step, projected_step, smooth
from iem.core.objective import diversity, inpainting_error, objective, objective_gradient_autograd

# --------------------------------------------------------------------------- the filter K (Eq. 5)


def taps_by_formula(size: int, sigma: float) -> np.ndarray:
    weights = [math.exp(-(d * d) / (2.0 * sigma * sigma)) for d in range(-(size // 2), size // 2 + 1)]
    return np.array(weights) / sum(weights)


@pytest.mark.parametrize("size, sigma", [(3, 0.5), (5, 2.0), (11, 5.0), (11, 3.0), (7, 1.5)])
def test_gaussian_taps_at_several_sigmas(size: int, sigma: float) -> None:
    got = gaussian_kernel1d(size, sigma, torch.float64).numpy()
    assert np.allclose(got, taps_by_formula(size, sigma), rtol=1e-12, atol=0)


def blur_by_scipy(plane: np.ndarray, cfg: IEMConfig) -> np.ndarray:
    """K by definition: vertical then horizontal 1-D Gaussian, zero padding, repeated."""
    taps = taps_by_formula(cfg.kernel_size, cfg.sigma)
    for _ in range(cfg.filter_repeats):
        plane = correlate1d(plane, taps, axis=0, mode="constant", cval=0.0)
        plane = correlate1d(plane, taps, axis=1, mode="constant", cval=0.0)
    return plane


@pytest.mark.parametrize("kw", [{}, {"sigma": 2.0, "kernel_size": 7}, {"sigma": 0.7, "kernel_size": 5, "filter_repeats": 3}])
def test_filter_is_the_repeated_zero_padded_gaussian(kw) -> None:
    cfg = IEMConfig(**kw)
    plane = np.random.default_rng(0).normal(size=(17, 23))
    filt = LinearFilter.build(17, 23, cfg, torch.float64, "cpu")
    assert np.allclose(filt(torch.from_numpy(plane)).numpy(), blur_by_scipy(plane, cfg), atol=1e-12)


def test_filter_and_adjoint_on_a_batch_larger_than_the_row_blocks() -> None:
    # 45 x 70 planes span several of the CPU's blocks of rows: the banded products against scipy,
    # and K^T through <K(x), y> = <x, K^T(y)> with K from scipy.
    cfg = IEMConfig(kernel_size=7, sigma=2.0)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 3, 45, 70)), rng.normal(size=(2, 3, 45, 70))
    filt = LinearFilter.build(45, 70, cfg, torch.float64, "cpu")
    expected = np.stack([[blur_by_scipy(plane, cfg) for plane in image] for image in x])
    assert np.allclose(filt(torch.from_numpy(x)).numpy(), expected, atol=1e-12)
    adjoint = filt.adjoint(torch.from_numpy(y)).numpy()
    for b in range(2):
        for c in range(3):
            assert (expected[b, c] * y[b, c]).sum() == pytest.approx((x[b, c] * adjoint[b, c]).sum(), rel=1e-10)


def test_filter_with_pooling_averages_blocks_then_repeats_nearest() -> None:
    cfg = IEMConfig(scale_factor=3, kernel_size=5, sigma=1.3)
    x = np.random.default_rng(1).normal(size=9)  # three blocks of three
    pooled = x.reshape(3, 3).mean(1)
    blurred = pooled
    for _ in range(cfg.filter_repeats):
        blurred = correlate1d(blurred, taps_by_formula(5, 1.3), mode="constant")
    expected = np.repeat(blurred, 3)
    got = filter_matrix(9, cfg, torch.float64).numpy() @ x
    assert np.allclose(got, expected, atol=1e-12)


# --------------------------------------------------------- psi_K (Eq. 6) and the objective (Eq. 7)


def psi_by_definition(x: np.ndarray, source: np.ndarray, cfg: IEMConfig) -> np.ndarray:
    """Eq. 6 with the released code's epsilon terms: (K(X W) + eps sum(X W)) / (K(W) + eps sum(W))."""
    den = blur_by_scipy(source, cfg) + cfg.epsilon * source.sum()
    return np.stack([(blur_by_scipy(c * source, cfg) + cfg.epsilon * (c * source).sum()) / den for c in x])


def norm_by_definition(values: np.ndarray, region: np.ndarray, norm: str) -> float:
    """sum_p R_p mean_c |V| (l1) or sqrt(sum_p R_p mean_c V^2) (l2), with plain loops."""
    total = 0.0
    channels, height, width = values.shape
    for i in range(height):
        for j in range(width):
            if norm == "l1":
                total += region[i, j] * sum(abs(values[c, i, j]) for c in range(channels)) / channels
            else:
                total += region[i, j] * sum(values[c, i, j] ** 2 for c in range(channels)) / channels
    return total if norm == "l1" else math.sqrt(total)


def objective_by_definition(x: np.ndarray, m: np.ndarray, cfg: IEMConfig) -> float:
    """L = L_inp - lambda div for one image (C, H, W) and mask (H, W), all in float64."""
    mb = 1.0 - m
    terms = 0.0
    for region, other in ((m, mb), (mb, m)):
        residual = x - psi_by_definition(x, other, cfg)
        if cfg.normalizer == "size":
            denominator = region.sum()
        else:  # Table 5 "marginal": the same norm of the region's own pixels
            denominator = norm_by_definition(x, region, cfg.numerator_norm)
        terms += norm_by_definition(residual, region, cfg.numerator_norm) / denominator
    div = 0.0
    for region in (m, mb):
        mean = (x * region).sum(axis=(1, 2)) / region.sum()
        div += float((region * (x - mean[:, None, None]) ** 2).sum())
    return terms - cfg.lambda_ * div


def small_case(seed: int = 0, shape=(3, 6, 7)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=shape)
    m = np.zeros(shape[1:])
    m[1:5, 2:6] = 1.0
    m[0, 0] = 1.0  # an isolated pixel, so the regions are not symmetric
    return x, m


def torch_objective(x: np.ndarray, m: np.ndarray, cfg: IEMConfig, mask=None) -> torch.Tensor:
    h, w = m.shape
    filt = LinearFilter.build(h, w, cfg, torch.float64, "cpu")
    masks = torch.from_numpy(m).view(1, 1, h, w) if mask is None else mask
    return objective(torch.from_numpy(x)[None], masks, gaussian_inpainter(filt, cfg.epsilon), cfg)


# Large sigma and lambda so that every term weighs in the total; epsilon large enough to matter.
ORACLE_SETTINGS = {"kernel_size": 5, "sigma": 1.5, "lambda_": 0.05, "epsilon": 1e-3}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_objective_and_every_table5_variant_against_the_definition(variant: str) -> None:
    cfg = IEMConfig(**ORACLE_SETTINGS, **VARIANTS[variant])
    x, m = small_case()
    got = torch_objective(x, m, cfg).item()
    assert got == pytest.approx(objective_by_definition(x, m, cfg), rel=1e-10)


def test_the_variants_differ_from_each_other() -> None:
    # Guards the oracle itself: were the normalisers or norms equal, the test above would not see a swap.
    x, m = small_case()
    values = {v: objective_by_definition(x, m, IEMConfig(**ORACLE_SETTINGS, **VARIANTS[v])) for v in VARIANTS}
    assert len({round(v, 6) for v in values.values()}) == len(VARIANTS), values


def test_inpainting_error_without_regulariser_and_diversity_by_definition() -> None:
    cfg = IEMConfig(**{**ORACLE_SETTINGS, "lambda_": 0.0})
    x, m = small_case(seed=4)
    h, w = m.shape
    filt = LinearFilter.build(h, w, cfg, torch.float64, "cpu")
    xt, mt = torch.from_numpy(x)[None], torch.from_numpy(m).view(1, 1, h, w)
    assert inpainting_error(xt, mt, gaussian_inpainter(filt, cfg.epsilon), cfg).item() == pytest.approx(
        objective_by_definition(x, m, cfg), rel=1e-10
    )
    div = (objective_by_definition(x, m, cfg) - objective_by_definition(x, m, IEMConfig(**ORACLE_SETTINGS))) / ORACLE_SETTINGS["lambda_"]
    assert diversity(xt, mt).item() == pytest.approx(div, rel=1e-8)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gradient_of_every_variant_against_finite_differences(variant: str) -> None:
    cfg = IEMConfig(**ORACLE_SETTINGS, **VARIANTS[variant])
    x, m = small_case(seed=2, shape=(3, 5, 6))
    h, w = m.shape
    filt = LinearFilter.build(h, w, cfg, torch.float64, "cpu")
    grad = objective_gradient_autograd(
        torch.from_numpy(x)[None], torch.from_numpy(m).view(1, 1, h, w) > 0.5, gaussian_inpainter(filt, cfg.epsilon), cfg
    )[0, 0].numpy()
    step = 1e-6
    numeric = np.empty_like(m)
    for i in range(h):
        for j in range(w):
            up, down = m.copy(), m.copy()
            up[i, j] += step
            down[i, j] -= step
            numeric[i, j] = (objective_by_definition(x, up, cfg) - objective_by_definition(x, down, cfg)) / (2 * step)
    assert np.allclose(grad, numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max())


# ----------------------------------------------- boundary, projected step (Eq. 8-9), smoothing


def random_masks(seed: int, count: int = 6, shape=(7, 9)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(count,) + shape) < rng.uniform(0.2, 0.8, size=(count, 1, 1))


def as_torch(masks: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(masks).unsqueeze(1)


def boundary_by_definition(m: np.ndarray) -> np.ndarray:
    """On the image border (zero padding of the mask and its complement) or a 4-neighbour differs."""
    h, w = m.shape
    out = np.zeros_like(m)
    for i in range(h):
        for j in range(w):
            if i in (0, h - 1) or j in (0, w - 1):
                out[i, j] = True
                continue
            out[i, j] = any(m[i + di, j + dj] != m[i, j] for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)))
    return out


def test_boundary_against_the_definition() -> None:
    masks = random_masks(0)
    got = boundary(as_torch(masks))[:, 0].numpy()
    assert np.array_equal(got, np.stack([boundary_by_definition(m) for m in masks]))


@pytest.mark.parametrize("boundary_only", [True, False])
def test_projected_step_against_the_definition(boundary_only: bool) -> None:
    masks = random_masks(1)
    rng = np.random.default_rng(2)
    grad = rng.normal(size=masks.shape) * (rng.uniform(size=masks.shape) > 0.2)  # some exact zeros
    expected = masks.copy()
    for b, m in enumerate(masks):
        feasible = boundary_by_definition(m) if boundary_only else np.ones_like(m)
        for (i, j), g in np.ndenumerate(grad[b]):
            if feasible[i, j] and g != 0:
                expected[b, i, j] = g > 0  # eta -> infinity: the step saturates to 0 or 1
    got = projected_step(as_torch(masks), torch.from_numpy(grad).unsqueeze(1), boundary_only)[:, 0].numpy()
    assert np.array_equal(got, expected)


def smooth_by_definition(m: np.ndarray, rule: str) -> np.ndarray:
    """code: >= 4 ones in the 3x3 window, the pixel included; paper: > 4 ones among the 8 neighbours."""
    h, w = m.shape
    out = np.zeros_like(m)
    for i in range(h):
        for j in range(w):
            neighbours = sum(
                bool(m[i + di, j + dj])
                for di in (-1, 0, 1)
                for dj in (-1, 0, 1)
                if (di, dj) != (0, 0) and 0 <= i + di < h and 0 <= j + dj < w
            )
            out[i, j] = neighbours + int(m[i, j]) >= 4 if rule == "code" else neighbours > 4
    return out


@pytest.mark.parametrize("rule", ["code", "paper"])
def test_smoothing_rules_against_the_definition(rule: str) -> None:
    masks = random_masks(3, count=12)
    got = smooth(as_torch(masks), rule)[:, 0].numpy()
    assert np.array_equal(got, np.stack([smooth_by_definition(m, rule) for m in masks]))


def test_the_paper_rule_ignores_the_pixel_itself() -> None:
    # A set pixel with exactly 4 set neighbours: 5 in its window, but not more than 4 neighbours.
    m = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=bool)
    assert not smooth(as_torch(m[None]), "paper")[0, 0, 1, 1]
    assert smooth(as_torch(m[None]), "code")[0, 0, 1, 1]
    # The same neighbourhood around an unset pixel gives the same answer under the paper's rule.
    m[1, 1] = False
    assert not smooth(as_torch(m[None]), "paper")[0, 0, 1, 1]


@pytest.mark.parametrize("rule", ["code", "paper"])
def test_one_iteration_is_the_step_then_the_smoothing(rule: str) -> None:
    masks = random_masks(5)
    grad = np.random.default_rng(6).normal(size=masks.shape)
    cfg = IEMConfig(smoothing_rule=rule)
    expected = []
    for m, g in zip(masks, grad):
        stepped = np.where(boundary_by_definition(m) & (g != 0), g > 0, m)
        expected.append(smooth_by_definition(stepped, rule))
    got = iem_step(as_torch(masks), torch.from_numpy(grad).unsqueeze(1), cfg)[:, 0].numpy()
    assert np.array_equal(got, np.stack(expected))
