import numpy as np
import pytest
import torch

import iem
from iem.config import IEMConfig
from iem.core import kernels
from iem.core.engine import optimize_masks
from iem.core.filters import LinearFilter, filter_matrix
from iem.core.masks import initial_masks
from iem.core.objective import ImageConstants, NORMALIZER_FLOOR, pixelwise_terms

from ..conftest import composite

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")


def pixelwise_case(masks):
    """One image's inputs of the compiled pixel-wise part, and those of ``pixelwise_terms``."""
    _, _, h, w = masks.shape
    cfg = IEMConfig()
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1
    filt = LinearFilter.build(h, w, cfg, torch.float32, "cpu")
    const = ImageConstants.compute(x, filt, cfg.epsilon)
    stacked = torch.cat((x * masks, masks.float()), dim=1).double()
    state = LinearFilter.build(h, w, cfg, torch.float64, "cpu")(stacked)  # K in float64, no epsilon terms
    shifts = cfg.epsilon * stacked.sum(dim=(2, 3), keepdim=True)
    size = masks.sum().float().view(1, 1, 1, 1)
    size_f, size_b = size.clamp_min(NORMALIZER_FLOOR), (h * w - size).clamp_min(NORMALIZER_FLOOR)
    torch_args = (x, const.whole_numerator, const.whole_denominator, (state + shifts).float(), masks, size_f, size_b)
    compiled_args = (x[0].numpy(), const.whole_numerator[0].numpy(), const.whole_denominator[0, 0].numpy(),
                     state[0].numpy(), shifts.flatten().numpy(), masks[0, 0].numpy(),
                     np.float32(size_f.item()), np.float32(size_b.item()))
    return torch_args, compiled_args


def compiled_pixelwise(x, whole_numerator, whole_denominator, state, shifts, masks, size_f, size_b):
    planes, h, w = state.shape
    upstream, direct, sums = np.empty((planes, h, w), np.float32), np.empty((h, w), np.float32), np.empty(planes + 2)
    from iem.core.compiled_loop import _pixelwise

    _pixelwise(x, whole_numerator, whole_denominator, state, shifts, masks, size_f, size_b, upstream, direct, sums)
    return upstream, direct, sums


@pytest.mark.parametrize("kind", ["square", "random", "empty", "full"])
def test_compiled_pixelwise_part_matches_the_torch_definition(kind):
    if kind == "square":
        masks = initial_masks(40, 48, (78,))
    elif kind == "random":
        masks = torch.rand(1, 1, 40, 48, generator=torch.Generator().manual_seed(2)) > 0.5
    else:
        masks = torch.full((1, 1, 40, 48), kind == "full")
    torch_args, compiled_args = pixelwise_case(masks)
    direct, total_f, total_b, upstream = pixelwise_terms(*torch_args)
    got_upstream, got_direct, sums = compiled_pixelwise(*compiled_args)
    expected = [(got_upstream, upstream[0]), (got_direct, direct[0, 0]),
                (sums[:2], torch.cat((total_f.flatten(), total_b.flatten()))), (sums[2:], upstream[0].sum(dim=(1, 2)))]
    for got, want in expected:
        got = torch.from_numpy(np.asarray(got)).to(want.dtype)
        assert got.shape == want.shape
        assert torch.isfinite(got).all()
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * max(1.0, want.abs().max().item()))


@pytest.mark.parametrize("scale", [1, 2])
def test_diagonals_hold_the_band_of_the_filter_matrix(scale):
    matrix = filter_matrix(37, IEMConfig(scale_factor=scale))
    band, radius = kernels.diagonals(matrix)
    rebuilt = torch.zeros(37, 37, dtype=torch.float64)
    for i in range(37):
        for d in range(2 * radius + 1):
            if 0 <= i + d - radius < 37:
                rebuilt[i, i + d - radius] = band[i, d]
    assert torch.equal(rebuilt, matrix.double())
    assert radius == (10 if scale == 1 else int((matrix != 0).nonzero().diff(dim=1).abs().max()))


def row_by_row(y, band, w):
    """``A @ y[c]`` one output row at a time, in the order the compiled product promises to
    keep (float32 numpy, so every rounding is the same): the centre, then each pair of rows
    at equal distance from it, for symmetric inner rows; otherwise each band entry."""
    channels, height, width = y.shape
    out = np.empty_like(y)
    for i in range(height):
        lo, hi = max(0, w - i), min(2 * w + 1, height + w - i)
        symmetric = lo == 0 and hi == 2 * w + 1 and all(band[i, d] == band[i, 2 * w - d] for d in range(w))
        for c in range(channels):
            if symmetric:
                row = band[i, w] * y[c, i]
                for d in range(w):
                    row = row + band[i, d] * (y[c, i + d - w] + y[c, i + w - d])
            else:
                row = np.zeros(width, np.float32)
                for d in range(lo, hi):
                    row = row + band[i, d] * y[c, i + d - w]
            out[c, i] = row
    return out


def banded(height, w, seed, symmetric_inner=True, centre=1.0):
    """A random ``(height, 2 w + 1)`` float32 band: inner rows equal and symmetric (like K's)
    except where a run is broken on purpose, border rows arbitrary."""
    rng = np.random.default_rng(seed)
    half = rng.random(w + 1).astype(np.float32)
    half[w] = centre
    inner = np.concatenate((half, half[:w][::-1]))
    band = rng.random((height, 2 * w + 1)).astype(np.float32)
    band[w : height - w] = inner
    if not symmetric_inner:
        band[height // 2, 0] += 1  # an inner row that is not symmetric splits the run
        band[height // 2 + 3] *= 2  # a symmetric row unlike its neighbours starts a new run
    for i in range(height):  # nothing off the matrix
        band[i, : max(0, w - i)] = 0
        band[i, min(2 * w + 1, height + w - i) :] = 0
    return band


@pytest.mark.parametrize(
    "height, width, w, symmetric_inner, centre",
    # K's size (runs of many blocks), broken runs with a part block, w not a multiple of
    # five, a zero centre, fewer than five pairs, a matrix with no inner row.
    [(128, 128, 10, True, 1.0), (60, 37, 10, False, 0.7), (41, 130, 7, True, 0.0), (30, 9, 3, True, 2.0),
     (50, 20, 12, False, 1.5), (5, 6, 4, True, 1.0)],
)
def test_left_product_is_the_banded_product_with_the_same_roundings(height, width, w, symmetric_inner, centre):
    from iem.core.compiled_loop import _left_product

    rng = np.random.default_rng(height + w)
    y = rng.standard_normal((2, height, width)).astype(np.float32)
    band = banded(height, w, w, symmetric_inner, centre)
    out = np.full_like(y, np.nan)
    _left_product(y, band, w, out)
    dense = np.zeros((height, height))
    for i in range(height):
        for d in range(2 * w + 1):
            if 0 <= i + d - w < height:
                dense[i, i + d - w] = band[i, d]
    assert np.allclose(out, np.einsum("ij,cjk->cik", dense, y.astype(np.float64)), rtol=1e-5, atol=1e-5)
    assert np.array_equal(out, row_by_row(y, band, w))  # to the bit


@pytest.fixture
def horse_images(shared_data):
    from benchmarks.common import horse_batch

    return horse_batch(12, shared_data)

def both_loops(images, init, cfg, monkeypatch):
    filt = LinearFilter.build(images.shape[2], images.shape[3], cfg, torch.float32, "cpu")
    compiled = optimize_masks(images, init, cfg, filt)
    with monkeypatch.context() as patch:
        patch.setattr(kernels, "AVAILABLE", False)
        reference = optimize_masks(images, init, cfg, filt)
    return compiled, reference


def runs(height, width, count=4, noise=True):
    """Composites, the last replaced by uniform noise when ``noise``, each from the 78 px square."""
    images = torch.cat([composite(height, width, seed=s)[0] for s in range(count)])
    if noise:
        images[-1] = torch.rand(3, height, width, generator=torch.Generator().manual_seed(9)) * 2 - 1
    init = initial_masks(height, width, (78,)).expand(count, -1, -1, -1).contiguous()
    return images, init


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"lambda_": 0.0},
        {"smoothing_rule": "paper"},
        {"smoothing": False},
        {"boundary_only": False},
        {"scale_factor": 2},
        {"early_exit": False},
    ],
    ids=["paper", "no-diversity", "paper-smoothing", "no-smoothing", "all-pixels", "pooled", "every-iteration"],
)
def test_compiled_loop_follows_the_torch_loop(overrides, monkeypatch):
    # With every pixel movable, noise meets gradients within float rounding of 0 by the
    # fifth step (both loops then differ from float64 too): composites only there.
    images, init = runs(40, 48, noise="boundary_only" not in overrides)
    cfg = IEMConfig.paper(iterations=40, **overrides)
    (masks, its), (ref_masks, ref_its) = both_loops(images, init, cfg, monkeypatch)
    assert masks.shape == ref_masks.shape and masks.dtype == torch.bool
    assert torch.equal(masks, ref_masks)
    assert torch.equal(its, ref_its)


def test_compiled_loop_on_real_photos_agrees_with_the_torch_loop(monkeypatch, horse_images):
    cfg = IEMConfig.released()
    init = initial_masks(128, 128, cfg.init_sizes).expand(horse_images.shape[0], -1, -1, -1).contiguous()
    (masks, its), (ref_masks, ref_its) = both_loops(horse_images, init, cfg, monkeypatch)
    inter = (masks & ref_masks).flatten(1).sum(1)
    union = (masks | ref_masks).flatten(1).sum(1)
    assert (inter / union).mean() > 0.999
    assert (its == ref_its).float().mean() > 0.8


def test_refiltering_after_large_changes_agrees(monkeypatch):
    # From a random mask every pixel may move: most change at once and K is filtered anew.
    images, _ = runs(32, 32, count=3)
    init = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.5
    cfg = IEMConfig.released(iterations=12, boundary_only=False, smoothing=False)
    (masks, its), (ref_masks, ref_its) = both_loops(images, init, cfg, monkeypatch)
    assert torch.equal(masks, ref_masks) and torch.equal(its, ref_its)


def test_zero_iterations_return_the_initial_masks():
    images, init = runs(24, 24, count=2)
    result = iem.segment_batch(images, IEMConfig.paper(iterations=0), device="cpu", init_masks=init)
    assert torch.equal(result.masks, init) and result.iterations.tolist() == [0, 0]


def test_compiled_early_exit_reads_fixed_points_and_two_cycles_exactly(shared_data):
    from benchmarks.common import horse_batch

    images = horse_batch(14, shared_data)  # the 9th and 14th end in 2-cycles, the 10th never settles
    init = initial_masks(128, 128, (78,)).expand(14, -1, -1, -1).contiguous()
    cfg = IEMConfig.released()
    filt = LinearFilter.build(128, 128, cfg, torch.float32, "cpu")
    finals = {}
    for total in (149, 150):
        fast, its = optimize_masks(images, init, cfg.replace(iterations=total), filt)
        slow, _ = optimize_masks(images, init, cfg.replace(iterations=total, early_exit=False), filt)
        assert torch.equal(fast, slow)
        finals[total] = (slow, its)
    parity_matters = (finals[149][0] != finals[150][0]).flatten(1).any(dim=1) & (finals[150][1] < 149)
    assert parity_matters.any()


@pytest.mark.parametrize("channels, height, width", [(1, 24, 20), (4, 16, 16), (3, 11, 13)])
def test_compiled_loop_handles_any_channel_count_and_tiny_images(channels, height, width, monkeypatch):
    pick = [c % 3 for c in range(channels)]  # composites' colour channels, repeated or dropped
    images = torch.cat([composite(height, width, seed=s)[0][:, pick] for s in (channels, channels + 1)]).contiguous()
    init = initial_masks(height, width, (44, 92))  # one square per image
    cfg = IEMConfig.paper(iterations=30)
    (masks, its), (ref_masks, ref_its) = both_loops(images, init, cfg, monkeypatch)
    assert torch.equal(masks, ref_masks) and torch.equal(its, ref_its)


def test_the_loop_is_chosen_once_per_process(monkeypatch, tmp_path):
    # auto policy, nothing compiled: the torch loop, and a background compilation starts.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("IEM_NUMBA", "auto")
    monkeypatch.setattr(kernels, "_READY", None)
    started = []
    monkeypatch.setattr(kernels, "compile_in_background", lambda: started.append(True))
    assert not kernels.compiled()
    assert kernels.ready() is False and started == [True]
    x = torch.zeros(1, 3, 16, 16)
    assert not kernels.usable(x, IEMConfig())
    # The compilation finishing meanwhile does not switch this process's loop...
    marker = kernels.compile_now()
    assert marker.parent == tmp_path / "iem" and kernels.compiled()
    assert kernels.ready() is False and started == [True]
    # ...the next process takes the compiled loop without compiling anything.
    monkeypatch.setattr(kernels, "_READY", None)
    assert kernels.ready() is True and started == [True]
    # A record whose cache files are gone is not trusted.
    marker.write_text('{"numba_cache": "%s"}' % (tmp_path / "nowhere"))
    assert not kernels.compiled()
