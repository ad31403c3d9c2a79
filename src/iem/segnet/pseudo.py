"""Phase-1 masks of a collection, computed once: the raw material of the pseudo-labels.

IEM over a few hundred images takes minutes on a CPU, so the masks and their inpainting errors
are cached in an ``.npz`` file keyed by the file list (names, sizes, modification times), the
IEM settings and the working size. The cache grows chunk by chunk, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from iem import IEMConfig, IEMResult, segment_batch
from iem.api import resolve_config
from iem.io import atomic_write

PathLike = Union[str, os.PathLike]

#: Images handed to :func:`iem.segment_batch` between two cache writes.
DEFAULT_CACHE_CHUNK = 32
#: Bumped when the cache layout or what the key covers changes.
CACHE_VERSION = 1

#: Runs IEM on ``(B, 3, S, S)`` chunks, yielding one :class:`iem.IEMResult` per chunk, in order.
ChunkRunner = Callable[[Iterable[torch.Tensor]], Iterator[IEMResult]]


@dataclass
class PseudoLabels:
    """IEM's masks over a collection.

    Attributes:
        masks: ``(N, 1, H, W)`` bool foreground masks.
        scores: ``(N,)`` float64 final inpainting errors (``IEMResult.scores``).
        key: The collection's :func:`collection_key` they were computed under (what
            :func:`cached_per_image` keys arrays derived from them by).
    """

    masks: torch.Tensor
    scores: torch.Tensor
    key: str


def collection_key(paths: Sequence[PathLike], config: IEMConfig, size: int) -> str:
    """A hex digest identifying the files (path, size, mtime), the IEM settings and the size."""
    files = []
    for p in paths:
        p = Path(p)
        try:
            stat = p.stat()
            files.append([os.path.abspath(p), stat.st_size, stat.st_mtime_ns])
        except OSError:
            files.append([os.path.abspath(p), None, None])
    payload = {"version": CACHE_VERSION, "files": files, "config": config.to_dict(), "size": int(size)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()


def default_cache_path(checkpoint: PathLike) -> Path:
    """Where :func:`iem_pseudo_labels` caches the masks for a checkpoint: ``<stem>.iem.npz`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".iem.npz")


def _read_cache(path: Path, key: str, n: int, side: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Masks, scores and how many images are done, from a cache whose key matches; else empty."""
    empty = (np.zeros((n, side, side), dtype=bool), np.full(n, np.nan), 0)
    if not path.is_file():
        return empty
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return empty
            done = int(data["done"])
            masks = np.unpackbits(data["masks"], count=n * side * side).reshape(n, side, side).astype(bool)
            scores = data["scores"].astype(np.float64)
    except (OSError, KeyError, ValueError):
        # A damaged or foreign cache is recomputed rather than trusted.
        return empty
    if scores.shape != (n,) or not 0 <= done <= n:
        return empty
    return masks, scores, done


def _write_cache(path: Path, key: str, masks: np.ndarray, scores: np.ndarray, done: int) -> None:
    def write(handle) -> None:
        np.savez(handle, key=np.array(key), done=np.array(done), masks=np.packbits(masks.reshape(-1)), scores=scores)

    atomic_write(path, write)


def cached_per_image(path: Optional[PathLike], key: str, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """A per-image array derived from IEM's masks, kept in their cache beside them.

    The array is read from the cache when the cache holds the collection's masks under ``key``
    (see :func:`collection_key`) and an array ``name`` with one value per image; otherwise it
    is computed and added to the cache. Whatever ``compute`` derives from the masks and the
    images must be fixed by ``key``: the masks' cache drops the array whenever it is rewritten.

    Args:
        path: The masks' ``.npz`` cache (:func:`iem_pseudo_labels`), or None: just compute.
        key: The collection's :func:`collection_key` (:attr:`PseudoLabels.key`).
        name: The array's name in the cache.
        compute: Gives the ``(N,)`` array when it is not cached.

    Returns:
        ``(N,)`` float64.
    """
    if path is None:
        return np.asarray(compute(), dtype=np.float64)
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except (OSError, ValueError):
        stored = {}
    n = int(stored["scores"].shape[0]) if "scores" in stored else -1
    complete = str(stored.get("key", "")) == key and int(stored.get("done", -1)) == n
    if complete and name in stored and stored[name].shape == (n,):
        return stored[name].astype(np.float64)
    values = np.asarray(compute(), dtype=np.float64)
    if complete and values.shape == (n,):
        atomic_write(path, lambda handle: np.savez(handle, **{**stored, name: values}))
    return values


def iem_pseudo_labels(
    images: torch.Tensor,
    paths: Sequence[PathLike],
    config: Optional[IEMConfig] = None,
    cache_path: Optional[PathLike] = None,
    device: str = "auto",
    chunk: int = DEFAULT_CACHE_CHUNK,
    progress: Optional[Callable[[int], None]] = None,
    segment_chunks: Optional[ChunkRunner] = None,
) -> PseudoLabels:
    """Run IEM (phase 1) over a collection, reusing and extending a cache when given.

    Args:
        images: ``(N, 3, S, S)`` float in [-1, 1], already at the working size.
        paths: The ``N`` files the images came from (they key the cache).
        config: IEM settings; the paper's by default.
        cache_path: ``.npz`` file to read and update; ``None`` disables caching.
        device: Where IEM runs (``"auto"``: CUDA when present).
        chunk: Images per :func:`iem.segment_batch` call between cache writes.
        progress: Optional callable receiving the number of images finished after each chunk
            (cached images are reported at once).
        segment_chunks: runs IEM on the chunks, yielding their results in order (e.g. on a
            Dask cluster: :func:`iem.distributed.chunk_runner`); by default
            :func:`iem.segment_batch` here, one chunk after the other.

    Returns:
        :class:`PseudoLabels` for all ``N`` images.
    """
    config = resolve_config(config)
    n, side = images.shape[0], images.shape[-1]
    if len(paths) != n:
        raise ValueError(f"iem_pseudo_labels: {len(paths)} paths for {n} images")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2] != side:
        raise ValueError(f"iem_pseudo_labels: expected (N, 3, S, S) images, got {tuple(images.shape)}")
    key = collection_key(paths, config, side)
    cache = Path(cache_path) if cache_path is not None else None
    if cache is not None:
        masks, scores, done = _read_cache(cache, key, n, side)
    else:
        masks, scores, done = np.zeros((n, side, side), dtype=bool), np.full(n, np.nan), 0
    if progress is not None and done:
        progress(done)
    step = max(1, int(chunk))
    spans = [(start, min(n, start + step)) for start in range(done, n, step)]
    run = segment_chunks or (lambda chunks: (segment_batch(c, config=config, device=device) for c in chunks))
    # Results arrive in order, so the cache always holds a finished prefix of the collection.
    for (start, stop), result in zip(spans, run(images[a:b] for a, b in spans)):
        masks[start:stop] = result.masks[:, 0].numpy()
        scores[start:stop] = result.scores.double().numpy()
        if cache is not None:
            _write_cache(cache, key, masks, scores, stop)
        if progress is not None:
            progress(stop - start)
    return PseudoLabels(masks=torch.from_numpy(masks).unsqueeze(1), scores=torch.from_numpy(scores), key=key)
