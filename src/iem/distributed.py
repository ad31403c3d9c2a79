"""The same ``iem segment`` over a Dask cluster, with inputs and outputs on object storage.

The client walks the inputs (local paths, globs, fsspec URLs), cuts them into *shares* of many
images and hands each share to the cluster as one task. A worker runs the ordinary streaming
pipeline (:func:`iem.pipeline.segment_files`) on its share, so masks are byte-identical to a
single-machine run with the same settings:

1. it asks the output store which outputs exist (resume: an image whose outputs all exist is
   skipped);
2. it lays the share out in a local scratch folder that mirrors the input tree (a symbolic
   link per local file, the downloaded bytes per object);
3. :func:`iem.pipeline.segment_files` segments the scratch tree into a scratch output folder;
4. each new output is published to its place, atomically (:func:`iem.io.storage.publish`),
   and the scratch folder is removed.

The task returns its counts and failures; the client keeps one progress bar, one summary line,
``failures.log`` and the exit status exactly as a single-machine run does. Only this module
imports Dask, and only when it is used.

Faults: Dask reruns the tasks of a worker that dies on another worker; outputs are published
whole or not at all, and the rerun skips what the dead worker had already published. A client
that dies takes its tasks with it; running the command again skips every finished image.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import itertools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from tqdm.auto import tqdm

from iem.api import resolve_config
from iem.config import IEMConfig
from iem.io.outputs import OUTPUTS, output_paths
from iem.io.read import DEFAULT_MAX_PIXELS, ImageReadError
from iem.io.storage import (
    Source,
    StorageError,
    check_output_location,
    is_url,
    iter_sources,
    join,
    local_form,
    missing,
    output_locations,
    publish,
    read_bytes,
    read_text,
    write_bytes,
)
from iem import pipeline
from iem.io.walk import InputProblem
from iem.io.write import StaleTemporaries
from iem.pipeline import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SIZE,
    FAILURES_LOG,
    SUMMARY_JSON,
    Failure,
    FailureCallback,
    RunInterrupted,
    RunSummary,
    _settings,
    check_output_folder,
    check_settings,
    segment_files as segment_locally,
)

PathLike = Union[str, os.PathLike]

#: Address prefix of a LocalCluster started (and stopped) by iem: ``local:N`` for N workers.
LOCAL_PREFIX = "local:"
#: Seconds to wait for a scheduler before the run is given up.
CONNECT_TIMEOUT_S = 10
#: The automatic task size aims at this many tasks per worker thread, so that work stays
#: balanced when images differ in cost and a dead worker's share is small ...
TASKS_PER_THREAD = 4
#: ... within these bounds: a task of one image pays the scheduling overhead per image, a huge
#: task holds a worker's results back from the progress bar and from resume.
MIN_TASK_IMAGES = 1
MAX_TASK_IMAGES = 256
#: Clocks of the client, the workers and a shared file system may differ by this much: a
#: temporary younger than the run's start by less than this is never taken for a leftover.
CLOCK_MARGIN_S = 120.0
#: Storage requests in flight at once per task (existence checks, downloads, uploads).
IO_THREADS = 16
#: Tasks submitted ahead of the results: bounded, so the client's memory does not grow with
#: the number of images, but enough that no worker waits for the client.
IN_FLIGHT_PER_THREAD = 2


class ClusterError(RuntimeError):
    """The Dask scheduler cannot be reached or started; ``str(err)`` is one line."""


@dataclass(frozen=True)
class ShareSettings:
    """Everything a worker needs besides its images: the arguments of :func:`segment_files`."""

    config: IEMConfig
    size: int = DEFAULT_SIZE
    device: str = "auto"
    outputs: Tuple[str, ...] = ("mask",)
    overwrite: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    model: Optional[str] = None
    refine: bool = False
    upsample: str = "guided"
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
    #: When the run began (``time.time()`` on the client): hidden temporaries in a local output
    #: folder older than that, less :data:`CLOCK_MARGIN_S`, were left by an earlier run.
    started: float = 0.0


@dataclass
class ShareResult:
    """What one task did: counts and ``(input, reason)`` failures."""

    segmented: int = 0
    skipped: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The worker's side
# --------------------------------------------------------------------------------------------


def segment_share(items: Sequence[Tuple[str, str]], out: str, settings: ShareSettings) -> ShareResult:
    """Segment one share of images with the single-machine pipeline; runs on a worker.

    Args:
        items: ``(input location, relative output path)`` pairs (:class:`Source` fields).
        out: the output folder or URL.
        settings: the run's settings.

    Returns:
        :class:`ShareResult`; an image is *segmented* once all its new outputs are published.
    """
    result = ShareResult()
    suffixes = {kind: OUTPUTS[kind][0] for kind in settings.outputs}
    scratch = Path(tempfile.mkdtemp(prefix="iem-share-"))

    def prepare(item: Tuple[str, str]) -> Tuple[str, PurePosixPath, Dict[str, str], Optional[Path], str]:
        """Which outputs are missing, and the input laid out in the scratch tree."""
        name, relative_text = item
        relative = PurePosixPath(relative_text)
        targets = output_locations(out, relative, suffixes)
        if not settings.overwrite:
            targets = missing(targets)
        if not targets:
            return name, relative, targets, None, ""
        # Top-level names are passed as files (taken whatever their extension, as on one
        # machine); deeper ones inside the "tree" folder, so that their path below it is kept.
        local = scratch / ("tree" if len(relative.parts) > 1 else "files") / relative
        try:
            _stage(name, local)
        except ImageReadError as err:
            return name, relative, targets, None, err.reason
        return name, relative, targets, local, ""

    try:
        staged: Dict[str, Tuple[str, PurePosixPath, Dict[str, str]]] = {}
        arguments: List[str] = []
        # Object stores answer each request after a round trip: many in flight at once.
        with ThreadPoolExecutor(IO_THREADS) as pool:
            for name, relative, targets, local, problem in pool.map(prepare, items):
                if problem:
                    result.failures.append((name, problem))
                elif local is None:
                    result.skipped += 1
                else:
                    staged[str(local)] = (name, relative, targets)
                    if local.parent == scratch / "files":
                        arguments.append(str(local))
            if (scratch / "tree").is_dir():
                arguments.append(str(scratch / "tree"))
            if not staged:
                return result
            failed: Dict[str, str] = {}

            def note(failure: Failure) -> None:
                failed[failure.path] = failure.reason

            segment_locally(
                arguments,
                scratch / "out",
                config=settings.config,
                size=settings.size,
                device=settings.device,
                outputs=settings.outputs,
                overwrite=True,
                batch_size=settings.batch_size,
                progress=False,
                model=settings.model,
                refine=settings.refine,
                upsample=settings.upsample,  # type: ignore[arg-type]
                max_pixels=settings.max_pixels,
                on_failure=note,
            )

            cleaner = _cleaner(settings.started)

            def deliver(local: str) -> str:
                """Publish one image's new outputs; the reason when that fails."""
                name, relative, targets = staged[local]
                if local in failed:
                    return failed[local]
                produced = output_paths(scratch / "out", relative, list(targets))
                try:
                    for kind, target in targets.items():
                        if not is_url(target):
                            cleaner.clean(os.path.dirname(target))
                        publish(produced[kind], target)
                except OSError as err:
                    return f"cannot write output ({err.strerror or err})"
                return ""

            for local, problem in zip(staged, pool.map(deliver, staged)):
                if problem:
                    result.failures.append((staged[local][0], problem))
                else:
                    result.segmented += 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


_cleaners: Dict[float, StaleTemporaries] = {}


def _cleaner(started: float) -> StaleTemporaries:
    """This worker process's cleaner for the run that began at ``started``: each local output
    folder is listed once per run and worker, not once per task."""
    if started not in _cleaners:
        _cleaners.clear()  # one run at a time is remembered
        _cleaners[started] = StaleTemporaries(started=started - CLOCK_MARGIN_S)
    return _cleaners[started]


def _stage(name: str, local: Path) -> None:
    """Put input ``name`` at ``local``: a link to a local file, the bytes of an object."""
    local.parent.mkdir(parents=True, exist_ok=True)
    if is_url(name):
        write_bytes(str(local), read_bytes(name))
    elif not os.path.lexists(name):
        raise ImageReadError(name, "no such file")
    else:
        os.symlink(os.path.abspath(name), local)


# --------------------------------------------------------------------------------------------
# The client's side
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``address``, closed (with its cluster) afterwards.

    Args:
        address: a scheduler (``tcp://host:8786``, or any address Dask accepts) or
            ``local:N`` for a LocalCluster of N worker processes on this machine, bound to the
            loopback interface and stopped at the end.

    Raises:
        ClusterError: Dask is missing, the address is malformed, or no scheduler answers.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--cluster needs Dask: pip install 'iem[distributed]'") from None
    cluster = None
    try:
        if address.startswith(LOCAL_PREFIX):
            workers = _local_workers(address)
            # One thread per worker process; torch inside each uses its share of the cores.
            threads = max(1, (os.cpu_count() or 1) // workers)
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # Dask's own warnings (e.g. a worker slow to stop at the end) are not the user's.
                silence_logs=logging.ERROR,
                env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
            )
            client = Client(cluster)
        else:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except ClusterError:
        raise
    except Exception as err:
        if cluster is not None:
            cluster.close()
        raise ClusterError(f"{address}: cannot reach the Dask scheduler ({_reason(err)})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _local_workers(address: str) -> int:
    text = address[len(LOCAL_PREFIX) :]
    if not text.isdigit() or int(text) < 1:
        raise ClusterError(f"{address}: expected local:N with N >= 1 worker processes")
    return int(text)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def auto_task_size(images: int, threads: int) -> int:
    """Images per task: about :data:`TASKS_PER_THREAD` tasks per worker thread, bounded."""
    share = math.ceil(images / max(1, TASKS_PER_THREAD * threads)) if images else MIN_TASK_IMAGES
    return max(MIN_TASK_IMAGES, min(MAX_TASK_IMAGES, share))


class _Report(pipeline._Report):
    """The run's counts, progress bar and failures, as on one machine; on object storage, where
    an object cannot be appended to, the failure lines are kept and written at the end."""

    def __init__(self, out: str, summary: RunSummary, bar: Any, on_failure: Optional[FailureCallback]) -> None:
        super().__init__(summary, Path(out), bar, on_failure)
        self.remote_log = join(out, FAILURES_LOG) if is_url(out) else None
        self.lines: List[str] = []

    def _log(self, failure: Failure) -> None:
        if self.remote_log is None:
            super()._log(failure)
        else:
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.lines.append(f"{stamp}\t{failure.line()}")

    def remote_text(self) -> str:
        """The whole log to write on object storage (its old lines, then this run's), or ""."""
        if self.remote_log is None or not self.lines:
            return ""
        return read_text(self.remote_log) + "".join(line + "\n" for line in self.lines)


def _shares(
    sources: Iterable[Union[Source, InputProblem]], size: int, log: _Report
) -> Iterator[List[Tuple[str, str]]]:
    """Group the inputs into shares; report problems and colliding output names on the way."""
    owners: Dict[PurePosixPath, str] = {}
    share: List[Tuple[str, str]] = []
    for item in sources:
        if isinstance(item, InputProblem):
            log.failed(item.path, item.reason)
            continue
        stem = item.relative.with_suffix("")
        if stem in owners:
            log.failed(item.name, f"its outputs would overwrite those of {owners[stem]}; rename one of them")
            continue
        owners[stem] = item.name
        share.append((item.name, item.relative.as_posix()))
        if len(share) >= size:
            yield share
            share = []
    if share:
        yield share


class _SerialExecutor:
    """Runs shares one after the other in this process: URLs without a cluster."""

    threads = 1

    def run(self, shares: Iterator[List[Tuple[str, str]]], out: str, settings: ShareSettings) -> Iterator[Any]:
        for share in shares:
            try:
                yield share, segment_share(share, out, settings), None
            except Exception as err:
                yield share, None, err


class _DaskExecutor:
    """Submits shares to a Dask client, a bounded number ahead, results as they complete."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.threads = max(1, sum(client.nthreads().values()))

    def run(self, shares: Iterator[List[Tuple[str, str]]], out: str, settings: ShareSettings) -> Iterator[Any]:
        from dask.distributed import as_completed

        ahead = IN_FLIGHT_PER_THREAD * self.threads
        owners: Dict[str, List[Tuple[str, str]]] = {}

        def submit(share: List[Tuple[str, str]]) -> Any:
            future = self.client.submit(segment_share, share, out, settings, pure=False)
            owners[future.key] = share
            return future

        pending = as_completed([submit(share) for share in itertools.islice(shares, ahead)])
        for future in pending:
            share = owners.pop(future.key)
            try:
                yield share, future.result(), None
            except Exception as err:
                yield share, None, err
            future.release()
            following = next(shares, None)
            if following is not None:
                pending.add(submit(following))


def runs_here(inputs: Sequence[PathLike], out_dir: PathLike, cluster: Any, task_size: Optional[int]) -> bool:
    """Whether :func:`segment_files` is :func:`iem.pipeline.segment_files` itself for these
    arguments: no cluster (a client, or the address of one), no task size, no URL."""
    return cluster is None and task_size is None and not any(is_url(item) for item in [*inputs, out_dir])


def segment_files(
    inputs: Union[PathLike, Iterable[PathLike]],
    out_dir: PathLike,
    *args: Any,
    client: Any = None,
    task_size: Optional[int] = None,
    **kwargs: Any,
) -> RunSummary:
    """:func:`iem.pipeline.segment_files`, also over a Dask cluster and fsspec URLs.

    Takes every argument of :func:`iem.pipeline.segment_files`, plus ``client`` and
    ``task_size``. Without a client, a task size or a URL, it *is* that function (and Dask and
    fsspec are not imported).

    Args:
        inputs: local paths, globs and URLs (``s3://bucket/photos``, ``gs://...``).
        out_dir: a local folder or a URL; every worker must be able to write there.
        client: a ``dask.distributed.Client``; the images are segmented on its cluster in tasks
            of ``task_size`` images. None: the tasks run here, one after the other.
        task_size: images per task; by default :func:`auto_task_size` of the input count.

    Raises:
        ValueError: invalid settings.
        iem.pipeline.OutputFolderError: a local ``out_dir`` cannot be created or written.
        StorageError: an input or output store cannot be reached, or the output URL cannot be
            written.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(item) for item in inputs]
    if runs_here(inputs, out_dir, client, task_size):
        return segment_locally(inputs, out_dir, *args, **kwargs)
    if task_size is not None and (not isinstance(task_size, int) or task_size < 1):
        raise ValueError(f"task_size must be an integer >= 1, got {task_size!r}")
    signature = inspect.signature(segment_locally)
    run = signature.bind(inputs, out_dir, *args, **kwargs)
    run.apply_defaults()
    # A setting of the pipeline that the shares would silently drop, unless left at its default.
    unknown = sorted(name for name in set(run.arguments) - _HANDLED if run.arguments[name] != signature.parameters[name].default)
    if unknown:
        raise TypeError(f"segment_files: {', '.join(unknown)} not supported with a client or URLs yet")
    return _segment_in_shares(run.arguments, client, task_size)


#: The arguments of :func:`iem.pipeline.segment_files` that a run in shares honours.
_HANDLED = frozenset(
    {"inputs", "out_dir", "config", "size", "device", "outputs", "overwrite", "batch_size", "progress", "model",
     "refine", "upsample", "max_pixels", "on_failure", "write_summary"}
)


def _segment_in_shares(run: Dict[str, Any], client: Any, task_size: Optional[int]) -> RunSummary:
    """The run of :func:`segment_files` (its arguments in ``run``) in shares of images."""
    started = time.perf_counter()
    config = resolve_config(run["config"], IEMConfig.best)  # the default of iem.pipeline.segment_files
    outputs = check_settings(config, run["outputs"], run["size"], run["batch_size"], run["upsample"])
    # A local folder that cannot be written is the same error as on one machine (exit status 1).
    out = local_form(run["out_dir"])
    out = check_output_location(out) if is_url(out) else str(check_output_folder(out))
    executor = _SerialExecutor() if client is None else _DaskExecutor(client)
    model = None if run["model"] is None else os.fspath(run["model"])
    options = {name: run[name] for name in ("size", "device", "overwrite", "batch_size", "refine", "upsample", "max_pixels")}
    settings = ShareSettings(config=config, outputs=outputs, model=model, started=time.time(), **options)
    summary = RunSummary(out_dir=out)
    # Each worker resolves "auto" on its own hardware; the record says so instead of guessing.
    import torch

    summary.settings = _settings(
        config, settings.size, settings.device, torch.device("cuda" if settings.device == "cuda" else "cpu"),
        outputs, settings.overwrite, settings.batch_size, model, settings.refine, settings.upsample,
        settings.max_pixels,
    )
    summary.settings.update({key: "chosen by each worker" for key in ("device_used", "cpu_loop") if key in summary.settings})
    inputs = run["inputs"]
    total = sum(1 for _ in iter_sources(inputs, exclude=out))
    share_size = task_size or auto_task_size(total, executor.threads)
    summary.settings.update(
        {"cluster": None if client is None else str(client.scheduler.address), "task_size": share_size}
    )
    bar = tqdm(
        total=total, unit="img", desc="iem segment", disable=not run["progress"], file=sys.stderr, dynamic_ncols=True
    )
    log = _Report(out, summary, bar, run["on_failure"])
    interrupted: Optional[KeyboardInterrupt] = None
    try:
        shares = _shares(iter_sources(inputs, exclude=out), share_size, log)
        for share, result, error in executor.run(shares, out, settings):
            if error is not None:
                for name, _ in share:
                    log.failed(name, _task_failure(error))
                continue
            with log.lock:
                summary.segmented += result.segmented
                summary.skipped += result.skipped
                bar.update(result.segmented + result.skipped)
            for name, reason in result.failures:
                log.failed(name, reason)
    except KeyboardInterrupt as err:  # Ctrl-C or a signal: the client's tasks are cancelled
        interrupted = err
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    summary.interrupted = interrupted is not None
    log.close()
    for name, text in [(FAILURES_LOG, log.remote_text), (SUMMARY_JSON, lambda: _json(summary, run["write_summary"]))]:
        try:
            content = text()
            if content:
                write_bytes(join(out, name), content.encode("utf-8"))
        except OSError as err:
            summary.problems.append(f"{join(out, name)}: cannot write ({err.strerror or err})")
    if interrupted is not None:
        raise RunInterrupted(summary) from interrupted
    return summary


def _json(summary: RunSummary, wanted: bool) -> str:
    return json.dumps(summary.to_dict(), indent=2) + "\n" if wanted else ""


def chunk_runner(client: Any, config: IEMConfig, device: str = "auto") -> Callable[[Iterable[Any]], Iterator[Any]]:
    """IEM on a Dask cluster for :func:`iem.segnet.pseudo.iem_pseudo_labels` (``iem train --cluster``).

    Returns:
        A function taking ``(B, 3, S, S)`` chunks and yielding their :class:`iem.IEMResult`
        in order; a bounded number of chunks is on the cluster at any time.
    """
    from iem.api import segment_batch

    ahead = IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))

    def run(chunks: Iterable[Any]) -> Iterator[Any]:
        waiting: "collections.deque[Any]" = collections.deque()
        for chunk in chunks:
            waiting.append(client.submit(segment_batch, chunk, config, device, pure=False))
            if len(waiting) >= ahead:
                yield _take(waiting.popleft())
        while waiting:
            yield _take(waiting.popleft())

    return run


def _take(future: Any) -> Any:
    result = future.result()
    future.release()
    return result


def _task_failure(err: BaseException) -> str:
    """The one-line reason given to each image of a task that failed as a whole."""
    name = type(err).__name__
    if name == "KilledWorker":
        return "its task was lost with every worker that ran it (KilledWorker)"
    if isinstance(err, StorageError):
        return str(err)
    return f"task failed ({_reason(err)})"


__all__ = [
    "ClusterError",
    "ShareResult",
    "ShareSettings",
    "auto_task_size",
    "chunk_runner",
    "connect",
    "segment_files",
    "segment_share",
]
