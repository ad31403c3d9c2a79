"""Files in, masks out: the library function behind ``iem segment``.

:func:`segment_files` streams any number of photos through IEM:

1. a reader thread walks the inputs lazily (:func:`iem.io.iter_inputs`), skips images whose
   outputs already exist, reads each file's bytes and decodes a small working copy (shorter
   side ``size``, bilinear and antialiased, the whole field of view);
2. the calling thread groups images of the same working shape into batches (a batch is one
   tensor) and runs IEM on them (:func:`iem.segment_batch`, paper section 3.2), or the phase-2
   network (section 3.3);
3. writer threads decode the full-resolution photo again from the bytes in memory, bring the
   mask back to it with the guided filter (:func:`iem.io.upsample_mask`) and write the chosen
   outputs atomically; with ``render_processes`` (with a GPU, ``iem segment``'s default),
   processes do all but the writing.

Queues between the stages are bounded, so memory does not grow with the number of files, and
decoding and writing overlap computation. Each image's mask depends only on that image and the
settings, never on the batch it shared: runs are deterministic and a resumed run finishes with
the same files an uninterrupted one would have written. A bad input costs one line in the
report and in ``failures.log``; the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

import iem
from iem.api import inpaint, photo_mask, resolve_config, segment_batch
from iem.config import IEMConfig
from iem.core import kernels
from iem.core.engine import resolve_device
from iem.core.guidance import guidance_at, pin_full
from iem.imaging import to_uint8
from iem.io.outputs import OUTPUT_SUFFIXES, OUTPUTS, encode_outputs, output_paths, write_encoded, write_outputs
from iem.io.record import SETTINGS_RECORD, SettingsMismatch, record_settings
from iem.io.read import DEFAULT_MAX_PIXELS, ImageReadError, read_file_bytes, read_image
from iem.io.names import printable_line, quote_name
from iem.io.upsample import UPSAMPLE_METHODS, THRESHOLD, UpsampleMethod
from iem.io.walk import InputFile, InputProblem, iter_inputs
from iem.io.working import MAX_ASPECT_RATIO, MIN_INPUT_SIDE, is_blank, working_copy, working_image
from iem.io.write import (
    StaleTemporaries,
    WriteCancelled,
    append_line,
    cancel_writes_on,
    check_cancelled,
    write_text,
)

PathLike = Union[str, os.PathLike]

#: Default working resolution: the shorter side, in pixels (the paper's 128).
DEFAULT_SIZE = 128
#: Smallest working resolution accepted. The inpainting filter keeps its size in pixels (11
#: taps, sigma 5, applied twice), so on smaller images it spans the whole picture: on
#: GrabCut-50, IoU falls from 51.3 (size 128) and 46.2 (32) to 42.0 (24) and 39.7 (16), where
#: 4 of 50 masks come out empty or full (docs/cli.md).
MIN_SIZE = 32
#: Images grouped into one tensor; the engine splits it further into chunks that fit memory.
DEFAULT_BATCH_SIZE = 16
#: Up to this many batches' worth of images wait in memory between the reader, the grouping
#: by shape and the writers; it bounds memory whatever the number of files.
PENDING_BATCHES = 2
#: Threads that decode full-resolution photos and write outputs (CPU-bound, run in parallel).
MAX_WRITERS = 4
#: With the engine on a GPU, the photo work (decoding, upsampling, the GrabCut pass, encoding)
#: runs in up to this many processes instead (:func:`count_render_processes`).
MAX_RENDER_PROCESSES = 16
#: CPUs left to the engine's thread and the reader when choosing the number of render processes.
RESERVED_CPUS = 2
#: Render processes start once this many images have been written: a shorter run would wait
#: longer for them to start (about 3 s beside an H200, importing torch once) than the writer
#: threads take over its photos.
RENDER_PROCESSES_AFTER = 32

#: After an interrupt, the longest wait for the threads to stop. Writers check for the stop
#: between their steps (decoding, upsampling, rendering) and in every chunk they write, so
#: they stop within one step; a thread stuck longer (a hung network disk) is left behind.
WIND_DOWN_SECONDS = 10.0

#: File names in the output folder.
FAILURES_LOG = "failures.log"
SUMMARY_JSON = "summary.json"

FailureCallback = Callable[["Failure"], None]


class OutputFolderError(OSError):
    """The output folder cannot be created or written; ``str(err)`` is one line."""


class RunInterrupted(KeyboardInterrupt):
    """A :func:`segment_files` run stopped by ``KeyboardInterrupt`` (Ctrl-C, or a signal the
    caller turned into one), after its threads wound down; ``summary`` says what was done.

    Every output written is complete, no temporary is left behind, and a rerun finishes the job.
    """

    def __init__(self, summary: "RunSummary") -> None:
        super().__init__("interrupted")
        self.summary = summary


@dataclass(frozen=True)
class Failure:
    """One input that produced no (or not all) outputs."""

    path: str
    reason: str

    def line(self) -> str:
        """The one-line report: ``<file>: <reason>``; a name that does not print is quoted and
        escaped (:func:`iem.io.names.quote_name`), so no name can forge a line."""
        return f"{quote_name(self.path)}: {printable_line(self.reason)}"


@dataclass
class RunSummary:
    """What a :func:`segment_files` run did.

    Attributes:
        out_dir: the output folder.
        segmented: images segmented and written.
        skipped: images whose outputs all existed already (resume).
        failures: inputs that failed, with their reasons.
        warnings: inputs segmented with a caveat (a blank or near-constant image, whose mask
            is written empty), with the reason.
        seconds: wall-clock time of the run.
        settings: every setting of the run (JSON-friendly).
        problems: one line per file of the run itself that could not be written in full
            (``failures.log`` left incomplete, ``summary.json``), naming the path and the reason.
        interrupted: the run was stopped before the end (:class:`RunInterrupted`).
    """

    out_dir: Optional[str]
    segmented: int = 0
    skipped: int = 0
    failures: List[Failure] = field(default_factory=list)
    warnings: List[Failure] = field(default_factory=list)
    seconds: float = 0.0
    settings: Dict[str, Any] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> int:
        """How many inputs failed."""
        return len(self.failures)

    @property
    def total(self) -> int:
        """Inputs seen: segmented + skipped + failed."""
        return self.segmented + self.skipped + self.failed

    @property
    def exit_code(self) -> int:
        """0 when every input succeeded (or was already done), 1 when some failed or a file of
        the run could not be written."""
        return 1 if self.failures or self.problems else 0

    def line(self) -> str:
        """The one-line summary printed at the end of a run."""
        rate = self.segmented / self.seconds if self.seconds > 0 else 0.0
        text = (
            ("interrupted: " if self.interrupted else "") + f"{self.total} inputs in {self.seconds:.1f} s: {self.segmented} segmented ({rate:.2f} images/s), "
            f"{self.skipped} already done, {self.failed} failed"
        )
        if self.warnings:
            text += f", {len(self.warnings)} blank or near-constant (empty masks written)"
        if self.out_dir is not None:
            text += f"; outputs in {self.out_dir}"
            if self.failures:
                text += f", failures listed in {os.path.join(self.out_dir, FAILURES_LOG)}"
        return text

    def to_dict(self) -> Dict[str, Any]:
        """The summary as JSON-friendly data (counts, failures, settings, timing)."""
        return {
            "counts": {"total": self.total, "segmented": self.segmented, "skipped": self.skipped, "failed": self.failed},
            "failures": [{"path": f.path, "reason": f.reason} for f in self.failures],
            "problems": list(self.problems),
            "warnings": [{"path": w.path, "reason": w.reason} for w in self.warnings],
            "settings": self.settings,
            "timing": {
                "seconds": round(self.seconds, 3),
                "images_per_second": round(self.segmented / self.seconds, 3) if self.seconds > 0 else 0.0,
            },
            "out_dir": self.out_dir,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
        }


def check_output_folder(out_dir: PathLike) -> Path:
    """Create ``out_dir`` if needed and make sure files can be written in it.

    Raises:
        OutputFolderError: with a one-line reason.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{quote_name(out)}: is a file, not a folder: give a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise OutputFolderError(f"{quote_name(out)}: cannot write to the output folder ({err.strerror or err})") from None
    return out


# --------------------------------------------------------------------------------------------
# Working images and the computation
# --------------------------------------------------------------------------------------------


class Segmenter:
    """The computation on working-resolution batches: IEM, or the phase-2 network (+ IEM).

    Args:
        config: IEM settings.
        device: where to compute (``"auto"``, ``"cpu"``, ``"cuda"``).
        model: path of a trained network checkpoint (``iem train``), or None for IEM alone.
        refine: with a model, start IEM from the network's masks instead of the squares.
    """

    def __init__(
        self, config: IEMConfig, device: str = "auto", model: Optional[PathLike] = None, refine: bool = False
    ) -> None:
        if refine and model is None:
            raise ValueError("refine needs a model: it starts IEM from the network's masks")
        self.config = config
        self.device = resolve_device(device)
        self.refine = refine
        self.network: Optional[torch.nn.Module] = None
        self._predict: Optional[Callable[..., torch.Tensor]] = None
        if model is not None:
            from iem.segnet import load_model, predict

            self.network = load_model(model, self.device)
            self._predict = predict

    def soft_masks(
        self, images: torch.Tensor, init: Optional[torch.Tensor] = None, fixed: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``(B, 1, h, w)`` foreground masks in [0, 1] for ``(B, 3, h, w)`` images in [-1, 1].

        IEM's masks are binary; the network alone gives probabilities, which the guided
        upsampling uses as they are. A user's guidance (``init``: ``(B, 1, h, w)`` initial
        masks such as a box; ``fixed``: ``(B, 2, h, w)`` pinned pixels, see
        :mod:`iem.core.guidance`) is for IEM alone.
        """
        if init is not None or fixed is not None:
            if self.network is not None:
                raise ValueError("a box or marked pixels guide IEM: they cannot be combined with a trained network")
            pins = {} if fixed is None else {"foreground": fixed[:, :1], "background": fixed[:, 1:]}
            return segment_batch(images, self.config, self.device, init_masks=init, **pins).masks.float()
        if self.network is None:
            return segment_batch(images, self.config, self.device).masks.float()
        assert self._predict is not None
        # predict() resizes to the network's 128x128 input and its output back to (h, w).
        probabilities = self._predict(self.network, images).float().cpu()
        if not self.refine:
            return probabilities
        init = probabilities >= THRESHOLD
        return segment_batch(images, self.config, self.device, init_masks=init).masks.float()

    def inpainted(self, images: torch.Tensor, masks: torch.Tensor) -> List[np.ndarray]:
        """Each image inpainted from the other region (``iem.inpaint``), as uint8 arrays."""
        result = inpaint(images, masks >= THRESHOLD, self.config)
        return [to_uint8(picture) for picture in result]


#: Why a blank image gets an empty mask (the warning of :attr:`RunSummary.warnings`).
BLANK_WARNING = "blank or near-constant image: nothing to segment, empty mask written"


def _empty_where_blank(soft: torch.Tensor, blank: Sequence[bool]) -> torch.Tensor:
    """Blank images (:func:`iem.io.working.is_blank`) get an empty mask: with no structure to
    inpaint, IEM's mask would only follow noise or the initial square."""
    if any(blank):
        soft = soft.clone()
        soft[torch.tensor(blank)] = 0.0
    return soft


def _batch_tensor(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return stacked * (2.0 / 255.0) - 1.0  # same mapping as iem.imaging.to_tensor


def segment_bytes(
    data: bytes,
    config: Optional[IEMConfig] = None,
    size: int = DEFAULT_SIZE,
    device: str = "auto",
    model: Optional[PathLike] = None,
    refine: bool = False,
    *,
    upsample: UpsampleMethod = "guided",
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    name: str = "<stdin>",
    box: Optional[Sequence[float]] = None,
    foreground: Optional[np.ndarray] = None,
    background: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Segment one encoded image (e.g. read from stdin) exactly like :func:`segment_files` does.

    ``box`` (``x0, y0, x1, y1`` in the photo's pixels) and the ``(H, W)`` bool ``foreground`` /
    ``background`` marks guide IEM as in :func:`iem.segment`.

    Returns:
        ``(H, W)`` bool mask at the image's full resolution; empty for a blank or
        near-constant image (:func:`iem.io.working.is_blank`).

    Raises:
        ImageReadError: the bytes are not a usable image.
    """
    config = resolve_config(config, IEMConfig.best)
    _check_size(size, config)
    segmenter = Segmenter(config, device, model, refine)
    working = working_copy(data, size, max_pixels=max_pixels, name=name)
    photo = read_image(data, max_pixels=max_pixels, name=name)
    init, fixed = guidance_at((photo.height, photo.width), working.shape[:2], box, foreground, background)
    soft = segmenter.soft_masks(_batch_tensor([working]), init, fixed)
    soft = _empty_where_blank(soft, [is_blank(working)])[0, 0].numpy()
    return pin_full(photo_mask(photo, soft, config, upsample), foreground, background)


# --------------------------------------------------------------------------------------------
# The streaming run
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    """An image on its way: bytes of the file, working copy, outputs still to write."""

    item: InputFile
    targets: Dict[str, Path]
    data: bytes
    working: np.ndarray
    blank: bool = False


@dataclass
class _Result:
    job: _Job
    soft: np.ndarray
    inpainted: Optional[np.ndarray]


_END = object()


class _Report:
    """Counts, the progress bar, failure lines and the failures log; shared by all threads."""

    def __init__(self, summary: RunSummary, out_dir: Path, bar: Any, on_failure: Optional[FailureCallback]) -> None:
        self.summary = summary
        self.log = out_dir / FAILURES_LOG
        self.bar = bar
        self.on_failure = on_failure
        self.lock = threading.Lock()
        #: Why the log stopped taking lines, and how many failures it misses since.
        self.log_error: Optional[OSError] = None
        self.unlogged = 0

    def done(self, warning: Optional[Failure] = None) -> None:
        with self.lock:
            self.summary.segmented += 1
            if warning is not None:
                self.summary.warnings.append(warning)
            self.bar.update(1)

    def skipped(self) -> None:
        with self.lock:
            self.summary.skipped += 1
            self.bar.update(1)

    def failed(self, path: str, reason: str) -> None:
        failure = Failure(path, reason.splitlines()[0] if reason else "unknown error")
        with self.lock:
            self.summary.failures.append(failure)
            self._log(failure)
            if self.on_failure is not None:
                self.on_failure(failure)
            self.bar.set_postfix(failed=self.summary.failed, refresh=False)
            self.bar.update(1)


    def _log(self, failure: Failure) -> None:
        """Append to the log; once a line does not fit, mark the log incomplete and stop, so
        that it never holds a cut line nor a silent gap (the summary lists every failure)."""
        if self.log_error is not None:
            self.unlogged += 1
            return
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            append_line(self.log, f"{stamp}\t{failure.line()}")
        except OSError as err:
            self.log_error = err
            self.unlogged += 1
            try:  # the cut line was removed: a short marker may still fit
                append_line(self.log, f"{stamp}\t# INCOMPLETE: later failures are not listed here ({err.strerror or err})")
            except OSError:
                pass

    def close(self) -> None:
        """Report an incomplete log among the run's problems."""
        if self.log_error is not None:
            reason = self.log_error.strerror or str(self.log_error)
            self.summary.problems.append(
                f"{quote_name(self.log)}: incomplete, {self.unlogged} of {self.summary.failed} failures not recorded "
                f"({reason}); the summary lists them all"
            )


def _put(q: "queue.Queue[Any]", item: Any, stop: threading.Event) -> bool:
    """Put with a bounded wait, giving up when the run is stopping."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _error_reason(err: BaseException) -> str:
    if isinstance(err, ImageReadError):
        return err.reason
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _read_stage(
    inputs: Sequence[PathLike],
    out_dir: Path,
    outputs: Sequence[str],
    overwrite: bool,
    size: int,
    max_pixels: Optional[int],
    jobs: "queue.Queue[Any]",
    report: _Report,
    stop: threading.Event,
) -> None:
    """Walk, skip what is done, read and shrink; runs in its own thread."""
    owners: Dict[PurePath, str] = {}
    try:
        for item in iter_inputs(inputs, exclude=out_dir, output_suffixes=OUTPUT_SUFFIXES):
            if stop.is_set():
                return
            if isinstance(item, InputProblem):
                report.failed(item.path, item.reason)
                continue
            name = str(item.path)
            stem = item.relative.with_suffix("")
            if stem in owners:
                report.failed(name, f"its outputs would overwrite those of {owners[stem]}; rename one of them")
                continue
            owners[stem] = name
            targets = output_paths(out_dir, item.relative, outputs)
            if not overwrite:
                targets = {kind: path for kind, path in targets.items() if not path.exists()}
            if not targets:
                report.skipped()
                continue
            try:
                data = read_file_bytes(item.path, name)
                working = working_copy(data, size, max_pixels=max_pixels, name=name)
            except ImageReadError as err:
                report.failed(name, err.reason)
                continue
            if not _put(jobs, _Job(item, targets, data, working, is_blank(working)), stop):
                return
    except Exception as err:  # an unexpected error must not hang the run: hand it over
        _put(jobs, err, stop)
    finally:
        _put(jobs, _END, stop)


def _write_stage(
    results: "queue.Queue[Any]",
    report: _Report,
    renderer: "_Renderer",
    cleaner: StaleTemporaries,
    stop: threading.Event,
) -> None:
    """Full-resolution mask and outputs for each result; runs in writer threads."""
    with cancel_writes_on(stop):
        while not stop.is_set():
            try:
                result = results.get(timeout=0.1)
            except queue.Empty:
                continue
            if result is _END:
                return
            name = str(result.job.item.path)
            try:
                renderer.write(result, cleaner, name)
            except WriteCancelled:
                return  # stopping: this image's outputs are left for the rerun
            except ImageReadError as err:
                report.failed(name, err.reason)
            except OSError as err:
                where = f" {err.filename}" if getattr(err, "filename", None) else ""
                report.failed(name, f"cannot write output{where} ({err.strerror or err})")
            except Exception as err:  # one image's bad luck must not end the batch
                report.failed(name, _error_reason(err))
            else:
                report.done(Failure(name, BLANK_WARNING) if result.job.blank else None)


def count_render_processes(device: torch.device) -> int:
    """How many processes should render a run's outputs (``render_processes`` of
    :func:`segment_files`) with the engine on ``device``; 0: threads.

    With the engine on the CPU, its compiled loop runs without Python's lock and keeps every
    core busy, so the photo work gains nothing from processes. On a GPU the engine's thread
    launches small operations one after the other from Python: writer threads doing the photo
    work take the interpreter's lock from it and from one another, so the machine's cores sit
    idle while the run waits (measured on 16 cores beside an H200: 1.5 to 7 of them busy on average, and
    16 writer threads slower than 4). Processes have a lock each: ``cpu_count -``
    :data:`RESERVED_CPUS` of them, at most :data:`MAX_RENDER_PROCESSES`.
    """
    if device.type == "cpu":
        return 0
    return max(0, min(MAX_RENDER_PROCESSES, (os.cpu_count() or 1) - RESERVED_CPUS))


def _full_mask(
    data: bytes, soft: np.ndarray, name: str, upsample: UpsampleMethod, max_pixels: Optional[int], config: IEMConfig
) -> Tuple[Image.Image, np.ndarray]:
    """The decoded photo and its full-resolution mask (:func:`iem.api.photo_mask`)."""
    photo = read_image(data, max_pixels=max_pixels, name=name)
    check_cancelled()
    return photo, photo_mask(photo, soft, config, upsample)


def _render(
    data: bytes,
    soft: np.ndarray,
    inpainted: Optional[np.ndarray],
    kinds: Tuple[str, ...],
    name: str,
    upsample: UpsampleMethod,
    max_pixels: Optional[int],
    config: IEMConfig,
) -> Dict[str, bytes]:
    """One image's outputs, encoded; what a render process runs."""
    photo, mask = _full_mask(data, soft, name, upsample, max_pixels, config)
    return encode_outputs(kinds, photo, mask, inpainted)


def _start_render_process() -> None:
    # Ctrl-C reaches the whole process group: the run winds down from the main process, so a
    # worker must not die with a traceback of its own. One thread each for OpenCV and torch:
    # the processes already fill the cores.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class _Renderer:
    """Makes and writes each result's outputs, in the writer thread or in render processes.

    The processes are forked from a server process that imported this module once, before
    any thread or GPU context (``forkserver``; ``spawn`` where there is none): a fork of this
    process would copy the engine's threads and its GPU context midway, and a spawned process
    imports torch again, seconds of CPU each. Starting them takes seconds all the same, so
    they start only once :data:`RENDER_PROCESSES_AFTER` images have been written. Until they
    are all up, and for good should the pool break (a worker killed, or a script whose main
    module starts a run again when imported), the writer threads render, at most
    :data:`MAX_WRITERS` at a time. The files are the same either way.
    """

    def __init__(self, processes: int, upsample: UpsampleMethod, max_pixels: Optional[int], config: IEMConfig) -> None:
        self._processes = processes
        self._settings = (upsample, max_pixels, config)
        self._local = threading.BoundedSemaphore(MAX_WRITERS)
        self._lock = threading.Lock()
        self._written = 0
        self._pool: Optional[ProcessPoolExecutor] = None
        self._started: List["Future[int]"] = []
        self._retired = False  # the pool broke or was closed: the threads render from then on

    def write(self, result: _Result, cleaner: StaleTemporaries, name: str) -> None:
        """Write ``result``'s outputs (atomically, :mod:`iem.io.write`)."""
        job = result.job
        pool = self._ready_pool()
        if pool is not None:
            try:
                future = pool.submit(_render, job.data, result.soft, result.inpainted, tuple(job.targets), name, *self._settings)
                write_encoded(job.targets, _wait(future), cleaner)
                return
            except BrokenProcessPool:
                self._retired = True
            except RuntimeError:
                if self._retired:  # the pool shut down by an interrupt meanwhile: left for the rerun
                    raise WriteCancelled("the run is stopping") from None
                raise
        with self._local:
            photo, mask = _full_mask(job.data, result.soft, name, *self._settings)
            write_outputs(job.targets, photo, mask, result.inpainted, cleaner)

    def _ready_pool(self) -> Optional[ProcessPoolExecutor]:
        """The pool once every process is up; starts it at the image that reaches the mark."""
        with self._lock:
            self._written += 1
            if self._processes and self._pool is None and not self._retired and self._written > RENDER_PROCESSES_AFTER:
                self._pool = ProcessPoolExecutor(
                    self._processes, mp_context=_process_context(), initializer=_start_render_process
                )
                self._started = [self._pool.submit(int) for _ in range(self._processes)]  # one task each starts them all
            if self._pool is None or self._retired or not all(f.done() for f in self._started):
                return None
            return self._pool

    def close(self, wait: bool) -> None:
        """Stop the processes, waiting for them to end or not; work not started is dropped.
        A writer still at work after an interrupt renders in its own thread from then on."""
        with self._lock:
            self._retired = True
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)


def _process_context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _wait(future: "Future[Dict[str, bytes]]") -> Dict[str, bytes]:
    """The future's result, checking between waits whether the run is stopping."""
    while True:
        try:
            return future.result(timeout=0.1)
        except FutureTimeout:
            check_cancelled()


def _compute(
    group: List[_Job],
    segmenter: Segmenter,
    want_inpaint: bool,
    results: "queue.Queue[Any]",
    report: _Report,
    stop: threading.Event,
) -> None:
    """Segment one group of same-shape images; if the batch fails, retry image by image."""
    try:
        images = _batch_tensor([job.working for job in group])
        soft = _empty_where_blank(segmenter.soft_masks(images), [job.blank for job in group])
        pictures: List[Optional[np.ndarray]] = (
            list(segmenter.inpainted(images, soft)) if want_inpaint else [None] * len(group)
        )
    except Exception as err:
        if len(group) > 1:
            for job in group:
                _compute([job], segmenter, want_inpaint, results, report, stop)
        else:
            report.failed(str(group[0].item.path), f"segmentation failed ({_error_reason(err)})")
        return
    for index, job in enumerate(group):
        _put(results, _Result(job, soft[index, 0].numpy(), pictures[index]), stop)


def parse_outputs(outputs: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """The chosen outputs, in order, without repeats: ``"mask,cutout"``, ``"mask"`` or a sequence.

    Raises:
        ValueError: an unknown name, or none.
    """
    if isinstance(outputs, str):
        outputs = outputs.split(",")
    names = tuple(dict.fromkeys(str(name).strip() for name in outputs))
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown or not names:
        raise ValueError(f"outputs must be a non-empty selection of {sorted(OUTPUTS)}, got {list(names)}")
    return names


def check_settings(
    config: IEMConfig, outputs: Union[str, Sequence[str]], size: int, batch_size: int, upsample: str
) -> Tuple[str, ...]:
    """Validate a run's settings; return the outputs as :func:`parse_outputs` gives them.

    Raises:
        ValueError: an unknown output or upsampling method, or a size or batch size too small.
    """
    outputs = parse_outputs(outputs)
    if upsample not in UPSAMPLE_METHODS:
        raise ValueError(f"upsample must be one of {UPSAMPLE_METHODS}, got {upsample!r}")
    _check_size(size, config)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return outputs


def _check_size(size: int, config: IEMConfig) -> None:
    if not isinstance(size, int) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    if size < config.kernel_size:
        raise ValueError(f"size {size} is smaller than the filter (kernel_size {config.kernel_size})")


def _settings(
    config: IEMConfig,
    size: int,
    device: str,
    resolved: torch.device,
    outputs: Sequence[str],
    overwrite: bool,
    batch_size: int,
    model: Optional[PathLike],
    refine: bool,
    upsample: str,
    max_pixels: Optional[int],
) -> Dict[str, Any]:
    values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.to_dict().items()}
    return {
        "config": values,
        "size": size,
        "device": device,
        "device_used": str(resolved),
        "outputs": list(outputs),
        "overwrite": overwrite,
        "batch_size": batch_size,
        "model": None if model is None else os.fspath(model),
        "refine": refine,
        "upsample": upsample,
        "max_pixels": max_pixels,
        # Which CPU loop computed the masks (they agree up to float rounding; iem.core.kernels).
        "cpu_loop": "compiled" if resolved.type == "cpu" and kernels.AVAILABLE and kernels.ready() else "torch",
        "iem_version": iem.__version__,
        "torch_version": torch.__version__,
    }


#: The settings that decide what an output holds, compared with the output folder's record;
#: the others (device, batch size, which outputs, versions) are noted in it only.
RECORDED_SETTINGS = ("config", "size", "upsample", "model", "refine")


def _record_settings(out: Path, settings: Dict[str, Any], model: Optional[PathLike], overwrite: bool) -> None:
    """Refuse to resume over outputs made with other settings; record this run's (iem.io.record)."""
    compared = {key: settings[key] for key in RECORDED_SETTINGS}
    if model is not None:  # the network's weights, not where the file lies, make the masks
        from iem.segnet.shipped import resolve_model

        compared["model"] = hashlib.sha256(resolve_model(model).read_bytes()).hexdigest()
    notes = {key: value for key, value in settings.items() if key not in RECORDED_SETTINGS or key == "model"}
    try:
        record_settings(out, compared, overwrite, notes)
    except OSError as err:
        raise OutputFolderError(f"{out}: cannot write the settings record ({err.strerror or err})") from None


def segment_files(
    inputs: Union[PathLike, Iterable[PathLike]],
    out_dir: PathLike,
    config: Optional[IEMConfig] = None,
    size: int = DEFAULT_SIZE,
    device: str = "auto",
    outputs: Sequence[str] = ("mask",),
    overwrite: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    model: Optional[PathLike] = None,
    refine: bool = False,
    *,
    upsample: UpsampleMethod = "guided",
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    on_failure: Optional[FailureCallback] = None,
    write_summary: bool = False,
    render_processes: int = 0,
) -> RunSummary:
    """Segment every image named by ``inputs`` and write the outputs under ``out_dir``.

    Each image is resized so that its shorter side is ``size`` pixels (bilinear, antialiased;
    the whole field of view, any aspect ratio up to :data:`MAX_ASPECT_RATIO`), segmented by IEM
    (paper section 3.2) or by a trained network (section 3.3), and its mask brought back to the
    original resolution with edge-aware (guided-filter) upsampling. Outputs mirror the input
    tree: ``photos/a/b.jpg`` given as ``photos`` becomes ``OUT/a/b.mask.png`` (and
    ``b.cutout.png``, ``b.overlay.jpg``, ``b.inpaint.png``). Existing outputs are kept unless
    ``overwrite``; every file is written atomically, so an interrupted run can simply be rerun.
    The settings that decide the outputs are recorded in ``OUT/iem-settings.json``
    (:mod:`iem.io.record`): a run with other settings into the same folder is refused unless
    ``overwrite``.

    Args:
        inputs: files, folders (walked recursively) and glob patterns, or one of them.
        out_dir: output folder (created).
        config: IEM settings; :meth:`IEMConfig.best` when None.
        size: working resolution, the shorter side in pixels (>= :data:`MIN_SIZE`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (an error when no GPU is present).
        outputs: one name or a comma-separated string (``"mask,cutout"``), or a sequence of
            names, among ``"mask"`` (8-bit PNG, 0/255, original resolution), ``"cutout"`` (RGBA
            PNG, background transparent), ``"overlay"`` (JPEG, foreground tinted) and
            ``"inpaint"`` (PNG, each region inpainted from the other, :func:`iem.inpaint`).
        overwrite: rewrite outputs that exist already.
        batch_size: images of the same working shape segmented together.
        progress: show a tqdm progress bar (images/s) on stderr.
        model: checkpoint of a trained network (``iem train``); its masks replace IEM's.
        refine: with ``model``, run IEM starting from the network's masks.
        upsample: ``"guided"`` (edge-aware), ``"bilinear"`` or ``"nearest"``.
        max_pixels: images with more pixels are refused as decompression bombs; None: no limit.
        on_failure: called with each :class:`Failure` as it happens (the CLI prints it).
        write_summary: also write :meth:`RunSummary.to_dict` to ``OUT/summary.json``.
        render_processes: processes that decode the photos and make the outputs, 0 for threads
            of this process; :func:`count_render_processes` says how many pay (``iem segment``
            uses it). Each imports the calling script's main module again, as
            :mod:`multiprocessing` does: a script must keep its own work under
            ``if __name__ == "__main__":``. The files are the same either way.

    Returns:
        :class:`RunSummary`; failures are also appended to ``OUT/failures.log``.
        When a ``KeyboardInterrupt`` (Ctrl-C) arrives, queued work is dropped, the file being
        written is finished or removed, and :class:`RunInterrupted` (a ``KeyboardInterrupt``)
        is raised with the summary so far.

    Raises:
        ValueError: invalid settings (unknown output or upsampling method, size or batch size
            too small, CUDA requested without a GPU, ``refine`` without ``model``).
        OutputFolderError: ``out_dir`` cannot be created or written.
        SettingsMismatch: ``out_dir`` holds outputs made with other settings (not ``overwrite``).
        iem.segnet.CheckpointError: ``model`` is not a readable checkpoint.
    """
    started = time.perf_counter()
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    config = resolve_config(config, IEMConfig.best)
    outputs = check_settings(config, outputs, size, batch_size, upsample)
    segmenter = Segmenter(config, device, model, refine)
    if not isinstance(render_processes, int) or render_processes < 0:
        raise ValueError(f"render_processes must be an integer >= 0, got {render_processes!r}")
    out = check_output_folder(out_dir)

    summary = RunSummary(out_dir=str(out))
    summary.settings = _settings(
        config, size, device, segmenter.device, outputs, overwrite, batch_size, model, refine, upsample, max_pixels
    )
    summary.settings["render_processes"] = render_processes
    _record_settings(out, summary.settings, model, overwrite)
    total = sum(1 for _ in iter_inputs(inputs, exclude=out, output_suffixes=OUTPUT_SUFFIXES)) if progress else None
    bar = tqdm(
        total=total, unit="img", desc="iem segment", disable=not progress, file=sys.stderr, dynamic_ncols=True
    )
    report = _Report(summary, out, bar, on_failure)
    stop = threading.Event()
    jobs: "queue.Queue[Any]" = queue.Queue(maxsize=batch_size)
    results: "queue.Queue[Any]" = queue.Queue(maxsize=batch_size)
    cleaner = StaleTemporaries()
    renderer = _Renderer(render_processes, upsample, max_pixels, config)
    reader = _Stage(
        target=_read_stage,
        args=(inputs, out, outputs, overwrite, size, max_pixels, jobs, report, stop),
        name="iem-reader",
        daemon=True,
    )
    writers = [
        _Stage(
            target=_write_stage,
            args=(results, report, renderer, cleaner, stop),
            name=f"iem-writer-{i}",
            daemon=True,
        )
        # With render processes, a writer thread mostly waits for its process.
        for i in range(render_processes or max(1, min(MAX_WRITERS, os.cpu_count() or 1)))
    ]
    reader.start()
    for writer in writers:
        writer.start()
    want_inpaint = "inpaint" in outputs
    interrupted: Optional[KeyboardInterrupt] = None
    try:
        groups: Dict[Tuple[int, ...], List[_Job]] = {}
        waiting = 0
        while True:
            job = jobs.get()
            if job is _END:
                break
            if isinstance(job, BaseException):
                raise job
            group = groups.setdefault(job.working.shape, [])
            group.append(job)
            waiting += 1
            if len(group) >= batch_size:
                waiting -= len(group)
                _compute(groups.pop(job.working.shape), segmenter, want_inpaint, results, report, stop)
            elif waiting > PENDING_BATCHES * batch_size:
                # Too many shapes in flight: run the largest group now (ties: the oldest).
                shape = max(groups, key=lambda s: len(groups[s]))
                waiting -= len(groups[shape])
                _compute(groups.pop(shape), segmenter, want_inpaint, results, report, stop)
        for shape in list(groups):
            _compute(groups.pop(shape), segmenter, want_inpaint, results, report, stop)
        for _ in writers:
            _put(results, _END, stop)
        _wind_down(writers, None)
    except KeyboardInterrupt as err:
        interrupted = err
    finally:
        stop.set()
        _wind_down([reader, *writers], WIND_DOWN_SECONDS if interrupted is not None else None)
        renderer.close(wait=interrupted is None)
        bar.close()
    summary.seconds = time.perf_counter() - started
    summary.interrupted = interrupted is not None
    report.close()
    if write_summary:
        try:
            write_text(out / SUMMARY_JSON, json.dumps(summary.to_dict(), indent=2) + "\n")
        except OSError as err:
            summary.problems.append(f"{quote_name(out / SUMMARY_JSON)}: cannot write ({err.strerror or err})")
    if interrupted is not None:
        raise RunInterrupted(summary) from interrupted
    return summary


class _Stage(threading.Thread):
    """A pipeline thread that says when it has finished through an event.

    Waiting on the event instead of ``Thread.join`` matters: a ``KeyboardInterrupt`` landing in
    ``join`` can leave Python believing a running thread has stopped (CPython issue 90882),
    and the wind-down would then stop waiting for a writer in the middle of a file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.finished.set()


def _wind_down(threads: Sequence[_Stage], seconds: Optional[float]) -> None:
    """Wait for ``threads`` to finish, for at most ``seconds`` in all (None: until they end).

    A KeyboardInterrupt while waiting for the end of a normal run propagates (the run is then
    wound down with a limit); during that wind-down, a second Ctrl-C does not cut it short:
    the writers need it to finish or remove the file in hand.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    for thread in threads:
        while not thread.finished.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                thread.finished.wait(0.1 if left is None else min(0.1, left))
            except KeyboardInterrupt:
                if seconds is None:
                    raise


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_SIZE",
    "FAILURES_LOG",
    "MAX_ASPECT_RATIO",
    "MIN_INPUT_SIDE",
    "MIN_SIZE",
    "OUTPUTS",
    "SETTINGS_RECORD",
    "SUMMARY_JSON",
    "Failure",
    "OutputFolderError",
    "RunInterrupted",
    "RunSummary",
    "Segmenter",
    "SettingsMismatch",
    "check_output_folder",
    "output_paths",
    "parse_outputs",
    "segment_bytes",
    "segment_files",
    "working_image",
]
