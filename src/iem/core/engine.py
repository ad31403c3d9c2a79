"""The IEM iteration loop: chunks of images, devices, early exit, choice among initial masks."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple

import torch

from iem.config import REFERENCE_SIZE, IEMConfig
from iem.core.filters import LinearFilter
from iem.core.inpaint import Inpainter, gaussian_inpainter
from iem.core import kernels
from iem.core.guidance import pin
from iem.core.masks import SMOOTHING_MIN_COUNT, iem_step
from iem.core.objective import (
    NORMALIZER_FLOOR,
    ImageConstants,
    inpainting_error,
    objective_gradient,
    objective_gradient_autograd,
)

#: Runs (image x initial mask) per chunk at 128 x 128, by device type; scaled by pixel count.
#: Small chunks keep a CPU step's working set in cache; a GPU wants thousands in flight.
CHUNK_RUNS_AT_REFERENCE = {"cpu": 32, "cuda": 8192}
#: Chunks per CPU thread at least, so that runs that stop early do not leave a thread idle.
CHUNKS_PER_THREAD = 4


@dataclass
class IEMResult:
    """Output of :func:`iem.segment_batch` (CPU tensors).

    Attributes:
        masks: ``(B, 1, H, W)`` bool foreground masks (after ``config.grabcut``).
        scores: ``(B,)`` float, the final inpainting error ``L_inp`` (Eq. 7) of each kept mask.
        init: ``(B,)`` long, index of the initial mask whose result was kept.
        iterations: ``(B,)`` long, iterations computed for the kept result before its mask
            reached a fixed point or a 2-cycle (``config.iterations`` when it never did).
    """

    masks: torch.Tensor
    scores: torch.Tensor
    init: torch.Tensor
    iterations: torch.Tensor


#: glibc's mallopt parameters and the values set by :func:`tune_cpu_allocator`.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_ALLOCATOR_THRESHOLDS = {_M_MMAP_THRESHOLD: 256 << 20, _M_TRIM_THRESHOLD: 1 << 30}
_allocator_tuned = False


def tune_cpu_allocator() -> None:
    """Let glibc reuse freed multi-megabyte blocks instead of unmapping them (once per process).

    A CPU step allocates dozens of tensors of a few MB. By default glibc serves each with fresh
    pages from the kernel and returns them on free, and the page faults cost about a third of
    a step. Raising the mmap and trim thresholds keeps those blocks in the heap. Memory stays
    bounded by the largest chunk. Does nothing off glibc, or when ``IEM_NO_MALLOPT=1``.
    """
    global _allocator_tuned
    if _allocator_tuned or os.environ.get("IEM_NO_MALLOPT") == "1" or not sys.platform.startswith("linux"):
        return
    _allocator_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for parameter, value in _ALLOCATOR_THRESHOLDS.items():
        libc.mallopt(parameter, value)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when present; ``"cuda"`` without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
    return device


def auto_chunk_runs(height: int, width: int, device: torch.device, total_runs: int, min_runs: int = 1) -> int:
    """Default number of runs per chunk for ``total_runs`` runs of an image size on a device.

    Scaled by pixel count from :data:`CHUNK_RUNS_AT_REFERENCE`; on CPU also small enough to give
    every thread :data:`CHUNKS_PER_THREAD` chunks, which threads take as they finish, but not
    below ``min_runs`` (within the size's cap). The torch loop pays a step's dozens of small
    operations once per chunk, whatever its runs: there one image's runs stay together (a
    photo's three squares cost 17% less CPU in one chunk than in three; docs/speed.md).
    """
    base = CHUNK_RUNS_AT_REFERENCE.get(device.type, CHUNK_RUNS_AT_REFERENCE["cpu"])
    runs = max(1, int(base * REFERENCE_SIZE * REFERENCE_SIZE / (height * width)))
    if device.type == "cpu":
        runs = min(runs, max(min_runs, -(-total_runs // (CHUNKS_PER_THREAD * torch.get_num_threads()))))
    return max(1, runs)


class Gradient:
    """The objective's gradient ``dL/dM`` for the runs still moving, closed form when possible.

    Holds what the gradient reuses at every step (the images, and for the closed form the
    image-only terms of :class:`ImageConstants`); :meth:`keep` narrows them when runs leave.
    """

    def __init__(
        self, images: torch.Tensor, filt: LinearFilter, config: IEMConfig, inpainter: Optional[Inpainter]
    ) -> None:
        self.filt, self.config = filt, config
        self.closed = inpainter is None and config.closed_form
        self.images = images
        self.constants = ImageConstants.compute(images, filt, config.epsilon) if self.closed else None
        self.psi = inpainter if inpainter is not None else gaussian_inpainter(filt, config.epsilon)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the runs ``rows`` (indices into the current runs)."""
        if self.constants is not None:
            self.constants = self.constants.select(rows)
        else:
            self.images = self.images[rows]

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """``(R, 1, H, W)`` gradient at the bool ``masks`` of the current runs."""
        if self.constants is not None:
            return objective_gradient(masks, self.constants, self.filt, self.config)
        return objective_gradient_autograd(self.images, masks.to(self.images.dtype), self.psi, self.config)


def optimize_masks(
    images: torch.Tensor,
    masks: torch.Tensor,
    config: IEMConfig,
    filt: LinearFilter,
    inpainter: Optional[Inpainter] = None,
    fixed: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run ``config.iterations`` IEM steps (Eq. 9 + smoothing) from ``masks``.

    With ``config.early_exit`` a run whose mask repeats itself (fixed point) or the one of two
    steps before (2-cycle) leaves the batch; its final mask is read off the cycle, so the
    result equals running every iteration.

    Args:
        images: ``(N, C, H, W)`` float.
        masks: ``(N, 1, H, W)`` bool initial masks.
        fixed: optional ``(N, 2, H, W)`` bool pinned pixels (foreground, background), set
            again after every step (:func:`iem.core.guidance.pin`).

    Returns:
        ``(final masks (N, 1, H, W) bool, iterations computed (N,) long)``.
    """
    masks = pin(masks, fixed)
    if inpainter is None and kernels.usable(images, config):
        constants = ImageConstants.compute(images, filt, config.epsilon)
        return kernels.optimize(
            images, masks, constants.whole_numerator, constants.whole_denominator, filt.rows.matrix,
            filt.cols.matrix, config, SMOOTHING_MIN_COUNT[config.smoothing_rule], NORMALIZER_FLOOR, fixed,
        )
    total = config.iterations
    gradient = Gradient(images, filt, config, inpainter)
    final = masks.clone()
    iterations = torch.full((masks.shape[0],), total, dtype=torch.long, device=masks.device)
    active: Optional[torch.Tensor] = None  # indices of the runs still moving; None = all
    current, previous = masks, None
    for t in range(1, total + 1):
        new = pin(iem_step(current, gradient(current), config), fixed)
        if config.early_exit:
            same = (new == current).flatten(1).all(dim=1)
            cycle = torch.zeros_like(same) if previous is None else (new == previous).flatten(1).all(dim=1) & ~same
            done = same | cycle
            if bool(done.any()):
                # In a 2-cycle the mask after the last iteration is ``new`` when an even
                # number of iterations remain, else ``current``.
                take_new = same | (cycle & ((total - t) % 2 == 0))
                rows = done.nonzero().flatten()
                index = rows if active is None else active[rows]
                final[index] = torch.where(take_new.view(-1, 1, 1, 1), new, current)[rows]
                iterations[index] = t
                keep = (~done).nonzero().flatten()
                active = keep if active is None else active[keep]
                if active.numel() == 0:
                    return final, iterations
                new, current = new[keep], current[keep]
                fixed = None if fixed is None else fixed[keep]
                gradient.keep(keep)
        previous, current = current, new
    if active is None:
        return current, iterations
    final[active] = current
    return final, iterations


def refine_masks(images: torch.Tensor, masks: torch.Tensor, config: IEMConfig) -> torch.Tensor:
    """The step after the IEM iterations chosen by ``config`` (beyond the paper).

    Args:
        images: ``(B, C, H, W)`` float in [-1, 1].
        masks: ``(B, 1, H, W)`` bool, IEM's kept masks.

    Returns:
        ``(B, 1, H, W)`` bool: refined by :func:`iem.core.refine.grabcut_refine` with
        ``config.grabcut``, else ``masks`` unchanged.
    """
    if not config.grabcut:
        return masks
    from iem.core.refine import grabcut_refine

    return grabcut_refine(
        images,
        masks,
        config.grabcut_iterations,
        config.grabcut_border,
        config.grabcut_box_union,
        config.grabcut_box_rule,
        config.grabcut_reject_empty,
        config.grabcut_energy_space,
        config.grabcut_polish_iterations,
        config.grabcut_box_iterations,
        config.grabcut_polish_rule,
    )


def run_chunk(
    images: torch.Tensor,
    init_masks: torch.Tensor,
    config: IEMConfig,
    filt: LinearFilter,
    inpainter: Optional[Inpainter] = None,
    fixed: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IEM on a chunk of runs already on its device: each image from its own initial mask.

    Args:
        images: ``(R, C, H, W)`` float, one per run.
        init_masks: ``(R, 1, H, W)`` bool.
        fixed: optional ``(R, 2, H, W)`` bool pinned pixels (see :func:`optimize_masks`).

    Returns:
        ``(masks (R, 1, H, W) bool, scores (R,), iterations (R,) long)``, on the chunk's device;
        the score is the final inpainting error ``L_inp`` (Eq. 7) that picks among an image's
        initial masks (section 4.2).
    """
    masks, iterations = optimize_masks(images, init_masks, config, filt, inpainter, fixed)
    psi = inpainter if inpainter is not None else gaussian_inpainter(filt, config.epsilon)
    with torch.no_grad():
        scores = inpainting_error(images, masks.to(images.dtype), psi, config)
    return masks, scores, iterations


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_chunks(
    images: torch.Tensor,
    starts: Callable[[int, int], torch.Tensor],
    per_image: int,
    config: IEMConfig,
    filt: LinearFilter,
    chunk_runs: int,
    progress: Optional[Callable[[int], None]] = None,
    inpainter: Optional[Inpainter] = None,
    fixed: Optional[torch.Tensor] = None,
) -> IEMResult:
    """:func:`run_chunk` over consecutive chunks of runs (image x initial mask), the best run
    of each image kept on the CPU.

    On CPU the chunks run concurrently, one per torch thread, each chunk single-threaded:
    a step's operations are too small to split well across threads (and threads that wait
    on each other collapse on a busy machine), whole chunks are not. Chunks are cut by runs,
    not images, so that even one image's initial masks keep every thread busy. Results do not
    depend on this: every run is computed on its own, and an image keeps the run with the
    highest score, the first of its initial masks on a tie, in whatever order chunks finish.

    Args:
        images: ``(B, C, H, W)`` float, on any device.
        starts: ``starts(begin, end)`` gives the ``(end - begin, K, H, W)`` initial masks of
            images ``begin`` to ``end``, on the filter's device.
        per_image: ``K``, the runs (initial masks) of each image.
        chunk_runs: runs per chunk.
        progress: called with the number of images each finished chunk completed, in order.
        fixed: optional ``(B, 2, H, W)`` bool pinned pixels of each image (foreground,
            background), shared by its runs.
    """
    device = filt.rows.matrix.device
    total, size = images.shape[0], tuple(images.shape[2:])
    total_runs = total * per_image
    spans = [(begin, min(begin + chunk_runs, total_runs)) for begin in range(0, total_runs, chunk_runs)]
    # Results go straight into tensors allocated up front: nothing of a chunk outlives it.
    out = IEMResult(
        torch.empty((total, 1) + size, dtype=torch.bool),
        torch.full((total,), float("-inf"), dtype=images.dtype),
        torch.full((total,), per_image, dtype=torch.long),
        torch.empty(total, dtype=torch.long),
    )
    runs_done = [0] * total
    lock = threading.Lock()

    def work(span: Tuple[int, int]) -> int:
        begin, end = span
        first, last = begin // per_image, (end - 1) // per_image + 1
        skip = begin - first * per_image
        inits = starts(first, last).reshape((-1, 1) + size)[skip : skip + end - begin]

        def per_run(values: torch.Tensor) -> torch.Tensor:
            return values[first:last].to(device).repeat_interleave(per_image, dim=0)[skip : skip + end - begin]

        pins = None if fixed is None else per_run(fixed)
        masks, scores, iterations = (t.cpu() for t in run_chunk(per_run(images), inits, config, filt, inpainter, pins))
        completed = 0
        with lock:
            for j, run in enumerate(range(begin, end)):
                image, square = divmod(run, per_image)
                score, best = float(scores[j]), float(out.scores[image])
                if score > best or (score == best and square < int(out.init[image])):
                    out.masks[image], out.scores[image] = masks[j], scores[j]
                    out.init[image], out.iterations[image] = square, iterations[j]
                runs_done[image] += 1
                completed += runs_done[image] == per_image
        return completed

    workers = min(torch.get_num_threads(), len(spans)) if device.type == "cpu" else 1
    with contextlib.ExitStack() as stack:
        if device.type == "cpu":
            stack.enter_context(_torch_threads(1))
        if workers > 1:
            done = stack.enter_context(ThreadPoolExecutor(workers)).map(work, spans)
        else:
            done = map(work, spans)
        for count in done:
            if progress is not None and count:
                progress(count)
    return out
