import pytest
import torch

import iem
from iem.config import IEMConfig
from iem.core import engine, kernels
from iem.core.engine import optimize_masks
from iem.core.filters import LinearFilter
from iem.core.inpaint import gaussian_inpainter
from iem.core.masks import initial_masks

from ..conftest import composite


@pytest.fixture(params=["compiled", "torch"])
def loop(request, monkeypatch):
    """Runs a test with the compiled CPU loop (numba) and with the torch loop."""
    if request.param == "compiled" and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    if request.param == "torch":
        monkeypatch.setattr(kernels, "AVAILABLE", False)
    return request.param


def iou(a, b):
    return ((a & b).sum() / (a | b).sum()).item()


@pytest.mark.parametrize("shape", ["disk", "box"])
def test_recovers_a_synthetic_object(shape, loop):
    image, truth = composite(48, 56, seed=3, shape=shape)
    result = iem.segment_batch(image, IEMConfig.paper(iterations=60), device="cpu")
    assert iou(result.masks, truth) > 0.9


def test_early_exit_gives_the_same_masks_as_every_iteration(loop):
    images = torch.cat([composite(40, 40, seed=s)[0] for s in range(4)])
    images = torch.cat([images, torch.rand(2, 3, 40, 40) * 2 - 1])
    cfg = IEMConfig.paper(iterations=40)
    fast = iem.segment_batch(images, cfg, device="cpu")
    slow = iem.segment_batch(images, cfg.replace(early_exit=False), device="cpu")
    assert torch.equal(fast.masks, slow.masks)
    assert torch.equal(fast.init, slow.init)
    assert (fast.iterations <= 40).all() and (slow.iterations == 40).all()


@pytest.mark.parametrize("iterations", [7, 8])
def test_two_cycle_parity_is_resolved_exactly(monkeypatch, iterations):
    # A gradient pointing away from the current value flips every pixel at every step: a pure
    # 2-cycle from the start, so the final mask is the initial one or its inverse by parity.
    # (The torch loop: the compiled one computes its own gradient; test_kernels covers it.)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    monkeypatch.setattr(engine.Gradient, "__call__", lambda self, masks: 0.5 - masks.float())
    cfg = IEMConfig.released(iterations=iterations, smoothing=False, boundary_only=False)
    filt = LinearFilter.build(16, 16, cfg, torch.float32, "cpu")
    init = initial_masks(16, 16, (78,)).expand(3, -1, -1, -1).clone()
    images = torch.zeros(3, 3, 16, 16)
    fast, its = optimize_masks(images, init, cfg, filt)
    slow, _ = optimize_masks(images, init, cfg.replace(early_exit=False), filt)
    assert torch.equal(fast, slow)
    assert torch.equal(fast, init if iterations % 2 == 0 else ~init)
    assert its.tolist() == [2, 2, 2]


def test_fixed_points_leave_the_batch_early(loop):
    images = torch.cat([composite(40, 40, seed=s)[0] for s in range(3)])
    r = iem.segment_batch(images, IEMConfig.released(iterations=150), device="cpu")
    assert (r.iterations < 150).any()


def test_masks_do_not_depend_on_the_batch(loop):
    images = torch.cat([composite(32, 40, seed=s)[0] for s in range(5)])
    cfg = IEMConfig.paper(iterations=25)
    whole = iem.segment_batch(images, cfg, device="cpu")
    for chunk in (1, 2, 3):
        assert torch.equal(iem.segment_batch(images, cfg, device="cpu", chunk_size=chunk).masks, whole.masks)
    alone = iem.segment_batch(images[3:4], cfg, device="cpu")
    assert torch.equal(alone.masks[0], whole.masks[3])
    assert torch.equal(alone.scores[0], whole.scores[3])


def test_result_fields_and_selection():
    images = torch.cat([composite(40, 40, seed=s)[0] for s in range(3)])
    r = iem.segment_batch(images, IEMConfig.paper(iterations=10), device="cpu")
    assert r.masks.shape == (3, 1, 40, 40) and r.masks.dtype == torch.bool
    assert r.scores.shape == (3,) and torch.isfinite(r.scores).all()
    assert r.init.dtype == torch.long and ((r.init >= 0) & (r.init < 3)).all()
    assert r.iterations.shape == (3,)


def test_a_tie_between_initial_masks_goes_to_the_first_whatever_finishes_first(loop):
    # Two identical squares give two identical runs; one image's runs go to separate chunks.
    image, _ = composite(40, 40, seed=6)
    cfg = IEMConfig.paper(iterations=20, init_sizes=(78, 78, 44))
    winners = [iem.segment_batch(image, cfg, device="cpu").init.item() for _ in range(4)]
    assert winners[0] in (0, 2) and winners == winners[:1] * 4


def test_progress_counts_every_image_once_when_chunks_split_images(loop):
    images = torch.cat([composite(32, 32, seed=s)[0] for s in range(5)])
    seen = []
    iem.segment_batch(images, IEMConfig.paper(iterations=5), device="cpu", progress=seen.append)
    assert sum(seen) == 5 and all(count > 0 for count in seen)


def test_kept_score_is_the_highest_of_the_squares():
    image, _ = composite(40, 40, seed=1)
    cfg = IEMConfig.paper(iterations=15)
    best = iem.segment_batch(image, cfg, device="cpu")
    for size in cfg.init_sizes:
        single = iem.segment_batch(image, cfg.replace(init_sizes=(size,)), device="cpu")
        assert single.scores[0] <= best.scores[0] + 1e-6


@pytest.mark.parametrize(
    "image",
    [
        torch.zeros(1, 3, 32, 32),  # constant image
        torch.ones(1, 3, 32, 32),
    ],
)
def test_degenerate_images_give_defined_results(image, loop):
    r = iem.segment_batch(image, IEMConfig.paper(iterations=10), device="cpu")
    assert torch.isfinite(r.scores).all()


def test_single_pixel_object_and_empty_or_full_initial_masks(loop):
    image = torch.full((1, 3, 32, 32), -1.0)
    image[..., 16, 16] = 1.0
    cfg = IEMConfig.released(iterations=10)
    for fill in (False, True):
        init = torch.full((1, 1, 32, 32), fill)
        r = iem.segment_batch(image, cfg, device="cpu", init_masks=init)
        assert torch.isfinite(r.scores).all()
    r = iem.segment_batch(image, cfg, device="cpu")
    assert torch.isfinite(r.scores).all()


def test_init_masks_are_used():
    image, truth = composite(40, 40, seed=2)
    r = iem.segment_batch(image, IEMConfig.paper(iterations=0), device="cpu", init_masks=truth)
    assert torch.equal(r.masks, truth) and r.init.tolist() == [0]


def test_custom_inpainter_runs_through_autograd():
    image, truth = composite(40, 40, seed=4)
    cfg = IEMConfig.released(iterations=30)
    filt = LinearFilter.build(40, 40, cfg, torch.float32, "cpu")
    calls = []

    def psi(masked, masks):
        calls.append(1)
        return gaussian_inpainter(filt, cfg.epsilon)(masked, masks)

    r = iem.segment_batch(image, cfg, device="cpu", inpainter=psi)
    assert calls and iou(r.masks, truth) > 0.9


def test_autograd_variants_run_end_to_end():
    image, truth = composite(40, 40, seed=5)
    for norm, normalizer in (("l2", "size"), ("l1", "marginal")):
        cfg = IEMConfig.released(iterations=30, numerator_norm=norm, normalizer=normalizer)
        r = iem.segment_batch(image, cfg, device="cpu")
        assert torch.isfinite(r.scores).all()


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(1, 3, 8, 8), "too small"),
        (torch.zeros(3, 32, 32), r"\(B, C, H, W\)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "float"),
        (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
    ],
)
def test_bad_input_raises_value_error(images, message):
    with pytest.raises(ValueError, match=message):
        iem.segment_batch(images, device="cpu")


def test_cuda_request_without_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="CUDA"):
        iem.segment_batch(torch.zeros(1, 3, 32, 32), device="cuda")
