import re
import threading
import time

import pytest
import torch

import iem
from iem.config import VARIANTS, IEMConfig
from iem.core import engine, kernels
from iem.core.engine import optimize_masks
from iem.core.filters import LinearFilter
from iem.core.inpaint import gaussian_inpainter
from iem.core.masks import iem_step, initial_masks
from iem.core.objective import inpainting_error, objective_gradient_autograd

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
    # Two identical squares give two identical runs; with the compiled loop, one image's runs
    # go to separate chunks.
    image, _ = composite(40, 40, seed=6)
    cfg = IEMConfig.paper(iterations=20, init_sizes=(78, 78, 44))
    winners = [iem.segment_batch(image, cfg, device="cpu").init.item() for _ in range(4)]
    assert winners[0] in (0, 2) and winners == winners[:1] * 4


@pytest.fixture
def chunk_sizes(monkeypatch):
    """The number of runs of every chunk that ``engine.run_chunk`` computes, in call order."""
    sizes = []
    real = engine.run_chunk

    def spy(images, *args, **kwargs):
        sizes.append(images.shape[0])
        return real(images, *args, **kwargs)

    monkeypatch.setattr(engine, "run_chunk", spy)
    return sizes


def test_the_torch_loop_keeps_an_images_runs_in_one_chunk(loop, chunk_sizes, two_threads):
    # The compiled loop spreads one photo's squares over both threads; the torch loop, whose
    # step has a cost per chunk however few its runs, keeps them together.
    image, _ = composite(40, 40, seed=1)
    iem.segment_batch(image, IEMConfig.paper(iterations=3), device="cpu")
    assert chunk_sizes == ([3] if loop == "torch" else [1, 1, 1])


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


# ------------------------------------------------------------------ the loop's bookkeeping


def rolling_gradient(self, masks):
    """A stand-in gradient whose projected step (every pixel, no smoothing) rolls each mask one
    pixel to the right: all-ones masks are fixed points, alternating columns 2-cycles, and a
    lone pixel travels the row for width steps. The dynamics are then known by hand."""
    return torch.roll(masks, 1, dims=-1).float() - 0.5


def rolling_case():
    init = torch.zeros(3, 1, 6, 8, dtype=torch.bool)
    init[0] = True  # fixed point at the first step
    init[1, ..., ::2] = True  # alternating columns: a 2-cycle found at the second step
    init[2, 0, 2, 0] = True  # a lone pixel: never settles in fewer than 8 steps
    return init


@pytest.mark.parametrize("iterations", [5, 6, 7])
def test_runs_leave_at_their_own_step_and_keep_their_place(monkeypatch, iterations):
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    monkeypatch.setattr(engine.Gradient, "__call__", rolling_gradient)
    cfg = IEMConfig.released(iterations=iterations, smoothing=False, boundary_only=False)
    filt = LinearFilter.build(6, 8, cfg, torch.float32, "cpu")
    init = rolling_case()
    masks, its = optimize_masks(torch.zeros(3, 3, 6, 8), init, cfg, filt)
    expected = torch.stack([init[0], torch.roll(init[1], iterations, dims=-1), torch.roll(init[2], iterations, dims=-1)])
    assert torch.equal(masks, expected)
    assert its.tolist() == [1, 2, iterations] and its.dtype == torch.long


def test_pins_hold_at_every_step_of_the_loop(monkeypatch):
    # A foreground pin at column 3 of an empty mask: the rolling step grows a run of ones to the
    # right of it, one pixel per step (pinned before the first step, and after each).
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    monkeypatch.setattr(engine.Gradient, "__call__", rolling_gradient)
    cfg = IEMConfig.released(iterations=3, smoothing=False, boundary_only=False)
    filt = LinearFilter.build(6, 8, cfg, torch.float32, "cpu")
    init = torch.zeros(2, 1, 6, 8, dtype=torch.bool)
    init[1] = True  # a fixed point that leaves the batch first, so the pins of the rest are narrowed
    fixed = torch.zeros(2, 2, 6, 8, dtype=torch.bool)
    fixed[0, 0, 1, 3] = True
    masks, its = optimize_masks(torch.zeros(2, 3, 6, 8), init, cfg, filt, fixed=fixed)
    expected = torch.zeros(6, 8, dtype=torch.bool)
    expected[1, 3:7] = True  # the pin and three steps
    assert torch.equal(masks[0, 0], expected) and masks[1].all()
    assert its.tolist() == [3, 1]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_torch_loop_repeats_the_step_of_each_variant(variant):
    # float64 images: the torch loop, whose closed-form or autograd gradient must be that of the
    # variant's objective (objective_gradient_autograd, checked against finite differences).
    images = torch.cat([composite(24, 24, seed=s)[0] for s in range(2)]).double()
    cfg = IEMConfig.released(iterations=3, **VARIANTS[variant])
    filt = LinearFilter.build(24, 24, cfg, torch.float64, "cpu")
    init = initial_masks(24, 24, (14,)).expand(2, -1, -1, -1).clone()
    psi = gaussian_inpainter(filt, cfg.epsilon)
    expected = init
    for _ in range(3):
        expected = iem_step(expected, objective_gradient_autograd(images, expected.double(), psi, cfg), cfg)
    assert torch.equal(optimize_masks(images, init, cfg.replace(early_exit=False), filt)[0], expected)


def test_autograd_runs_that_leave_early_keep_the_others_going():
    # The autograd path narrows its images when a run leaves; compared with running every step.
    images = torch.cat([composite(24, 24, seed=s)[0] for s in range(3)]).double()
    cfg = IEMConfig.released(iterations=25, numerator_norm="l2")
    filt = LinearFilter.build(24, 24, cfg, torch.float64, "cpu")
    init = initial_masks(24, 24, (14,)).expand(3, -1, -1, -1).clone()
    fast, its = optimize_masks(images, init, cfg, filt)
    slow, _ = optimize_masks(images, init, cfg.replace(early_exit=False), filt)
    assert torch.equal(fast, slow) and len(set(its.tolist())) > 1


def test_a_custom_inpainter_drives_the_steps_and_the_scores():
    image, _ = composite(32, 32, seed=4)
    cfg = IEMConfig.released(iterations=5)
    filt = LinearFilter.build(32, 32, cfg, torch.float32, "cpu")
    gaussian = gaussian_inpainter(filt, cfg.epsilon)
    with_gradient = []

    def psi(masked, masks):  # the Gaussian inpainter, darker: not the one the engine would pick
        with_gradient.append(torch.is_grad_enabled() and masks.requires_grad)
        return gaussian(masked, masks) * 0.5

    r = iem.segment_batch(image, cfg, device="cpu", inpainter=psi)
    assert any(with_gradient), "the gradient must come from the given inpainter"
    expected = inpainting_error(image, r.masks.float(), psi, cfg)
    assert torch.allclose(r.scores, expected)


def test_result_types_follow_the_images():
    images = torch.cat([composite(32, 32, seed=s)[0] for s in range(2)]).double()
    r = iem.segment_batch(images, IEMConfig.released(iterations=3), device="cpu")
    assert r.scores.dtype == torch.float64
    assert r.iterations.dtype == torch.long and r.init.dtype == torch.long


def test_progress_with_one_run_per_image(loop):
    images = torch.cat([composite(32, 32, seed=s)[0] for s in range(3)])
    seen = []
    iem.segment_batch(images, IEMConfig.released(iterations=3), device="cpu", chunk_size=1, progress=seen.append)
    assert seen == [1, 1, 1]


def test_every_run_is_computed_once(chunk_sizes):
    images = torch.cat([composite(32, 32, seed=s)[0] for s in range(3)])
    cfg = IEMConfig.paper(iterations=2)
    filt = LinearFilter.build(32, 32, cfg, torch.float32, "cpu")
    squares = initial_masks(32, 32, cfg.init_sizes).view(1, 3, 32, 32).expand(3, -1, -1, -1)
    engine.run_chunks(images, lambda begin, end: squares[begin:end], 3, cfg, filt, chunk_runs=2)
    assert sum(chunk_sizes) == 9 and max(chunk_sizes) == 2


@pytest.fixture
def two_threads(monkeypatch):
    """torch reports two threads, so that chunks run on two Python threads, while its OpenMP
    pool keeps its size: resizing it in a forked process (mutation testing forks one per
    mutant) can hang."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch, "set_num_threads", lambda count: None)


@pytest.mark.parametrize("sizes", [(78, 78), (30, 78)])
@pytest.mark.parametrize("late", [0, 1])
def test_the_best_run_wins_whatever_order_chunks_finish_in(monkeypatch, two_threads, sizes, late):
    # One run per chunk on two threads; the chunk that starts first (late=0) or second finishes last.
    image, _ = composite(40, 40, seed=6)
    cfg = IEMConfig.released(iterations=10, init_sizes=sizes)
    filt = LinearFilter.build(40, 40, cfg, torch.float32, "cpu")
    squares = initial_masks(40, 40, sizes).view(1, 2, 40, 40)
    alone = [engine.run_chunk(image, squares[:, i : i + 1], cfg, filt)[1].item() for i in range(2)]
    real, started, lock = engine.run_chunk, [], threading.Lock()

    def ordered(*args, **kwargs):
        with lock:
            turn = len(started)
            started.append(turn)
        out = real(*args, **kwargs)
        if turn == late:
            time.sleep(0.3)
        return out

    monkeypatch.setattr(engine, "run_chunk", ordered)
    r = engine.run_chunks(image, lambda begin, end: squares[begin:end], 2, cfg, filt, chunk_runs=1)
    best = 0 if alone[0] >= alone[1] else 1  # the first square on a tie
    assert r.init.item() == best and r.scores.item() == pytest.approx(max(alone))
    assert sizes[0] != sizes[1] or alone[0] == alone[1]


# ------------------------------------------------------------------ devices, chunk sizes, allocator


def test_auto_chunk_runs_by_hand(two_threads):
    cpu, cuda, other = torch.device("cpu"), torch.device("cuda"), torch.device("meta")
    assert engine.auto_chunk_runs(128, 128, cpu, 10_000) == 32
    assert engine.auto_chunk_runs(64, 128, cpu, 10_000) == 64  # half the pixels, twice the runs
    assert engine.auto_chunk_runs(128, 128, cpu, 10) == 2  # ceil(10 / (4 chunks x 2 threads))
    assert engine.auto_chunk_runs(128, 128, cpu, 3) == 1  # one photo's squares on separate chunks
    assert engine.auto_chunk_runs(128, 128, cpu, 10, min_runs=3) == 3  # an image's runs together
    assert engine.auto_chunk_runs(128, 128, cpu, 100, min_runs=3) == 13  # more than that already
    assert engine.auto_chunk_runs(2048, 2048, cpu, 10, min_runs=3) == 1  # the size's cap first
    assert engine.auto_chunk_runs(2048, 2048, cpu, 10_000) == 1
    assert engine.auto_chunk_runs(128, 128, cuda, 10) == 8192  # no per-thread cap off the CPU
    assert engine.auto_chunk_runs(256, 128, cuda, 10) == 4096
    assert engine.auto_chunk_runs(128, 128, other, 10) == 32  # an unknown device: the CPU's size
    assert engine.auto_chunk_runs(128, 128, cpu, 10, min_runs=3) == 3  # one image's runs kept together
    assert engine.auto_chunk_runs(2048, 2048, cpu, 10, min_runs=3) == 1  # within the size's cap


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert engine.resolve_device("auto") == torch.device("cpu")
    assert engine.resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="^" + re.escape("device 'cuda' was requested but no CUDA GPU is available") + "$"):
        engine.resolve_device("cuda:0")
    with pytest.raises(ValueError, match="^" + re.escape("device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got 'gpu'") + "$"):
        engine.resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert engine.resolve_device("auto") == torch.device("cuda")


def test_refinement_passes_its_settings(monkeypatch):
    from iem.core import refine

    calls = []
    monkeypatch.setattr(refine, "grabcut_refine", lambda *args: calls.append(args) or "refined")
    images, masks = torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    assert engine.refine_masks(images, masks, IEMConfig()) is masks and not calls
    cfg = IEMConfig(
        grabcut=True,
        grabcut_iterations=3,
        grabcut_border=7,
        grabcut_box_union=True,
        grabcut_box_rule="energy",
        grabcut_reject_empty=True,
        grabcut_energy_space="lab",
        grabcut_polish_iterations=2,
        grabcut_box_iterations=4,
        grabcut_polish_rule="union",
    )
    assert engine.refine_masks(images, masks, cfg) == "refined"
    assert len(calls) == 1 and calls[0][0] is images and calls[0][1] is masks
    assert calls[0][2:] == (3, 7, True, "energy", True, "lab", 2, 4, "union")


class FakeLibc:
    def __init__(self, name):
        self.name, self.calls = name, []

    def mallopt(self, parameter, value):
        self.calls.append((parameter, value))


@pytest.fixture
def fake_libc(monkeypatch):
    opened = []

    def cdll(name):
        opened.append(FakeLibc(name))
        return opened[-1]

    monkeypatch.setattr(engine.ctypes, "CDLL", cdll)
    monkeypatch.setattr(engine, "_allocator_tuned", False)
    monkeypatch.delenv("IEM_NO_MALLOPT", raising=False)
    monkeypatch.setattr(engine.sys, "platform", "linux")
    return opened


def test_the_allocator_is_tuned_once_on_glibc(fake_libc):
    engine.tune_cpu_allocator()
    engine.tune_cpu_allocator()
    assert [lib.name for lib in fake_libc] == ["libc.so.6"]
    # M_MMAP_THRESHOLD (-3) 256 MiB, M_TRIM_THRESHOLD (-1) 1 GiB
    assert sorted(fake_libc[0].calls) == [(-3, 256 * 2**20), (-1, 2**30)]


@pytest.mark.parametrize("reason", ["switched off", "not linux", "no glibc"])
def test_the_allocator_is_left_alone(fake_libc, monkeypatch, reason):
    if reason == "switched off":
        monkeypatch.setenv("IEM_NO_MALLOPT", "1")
    elif reason == "not linux":
        monkeypatch.setattr(engine.sys, "platform", "darwin")
    else:
        def missing(name):
            fake_libc.append(name)
            raise OSError("no libc.so.6")

        monkeypatch.setattr(engine.ctypes, "CDLL", missing)
    engine.tune_cpu_allocator()
    assert fake_libc == ([] if reason != "no glibc" else ["libc.so.6"])
    if reason == "no glibc":  # tried once, not at every batch
        engine.tune_cpu_allocator()
        assert fake_libc == ["libc.so.6"]


def test_pins_reach_every_run_of_the_batch(loop):
    # segment_batch passes each image's pins down to its runs' loops: the kept mask is the loop's
    # own pinned result, not an unpinned one with the marks set again at the end.
    image, _ = composite(40, 48, seed=3)
    fixed = torch.zeros(1, 2, 40, 48, dtype=torch.bool)
    fixed[0, 0, 0:8, :] = True  # a foreground band along the top, in the background
    fixed[0, 1, 12:28, 12:36] = True  # a background block over the object
    cfg = IEMConfig.released(iterations=40)
    filt = LinearFilter.build(40, 48, cfg, torch.float32, "cpu")
    expected, _ = optimize_masks(image, initial_masks(40, 48, cfg.init_sizes), cfg, filt, fixed=fixed)
    unpinned, _ = optimize_masks(image, initial_masks(40, 48, cfg.init_sizes), cfg, filt)
    assert not torch.equal(expected, (unpinned | fixed[:, :1]) & ~fixed[:, 1:])  # the pins change the run
    got = iem.segment_batch(image, cfg, device="cpu", foreground=fixed[:, :1], background=fixed[:, 1:])
    assert torch.equal(got.masks, expected)
