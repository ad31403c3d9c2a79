"""Phase 2 end to end: image files -> IEM masks -> the best of them -> a trained network.

This is what ``iem train`` runs (paper section 3.3 and 4.2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from iem import IEMConfig
from iem.api import resolve_config
from iem.io.write import write_plan
from iem.segnet.data import PROTOCOL_SIZE, load_collection
from iem.segnet.pseudo import (
    ChunkRunner,
    PseudoLabels,
    cached_per_image,
    default_cache_path,
    iem_pseudo_labels,
)
from iem.segnet.select import box_agreement, select_top
from iem.segnet.train import TrainResult, TrainSettings, train_segnet

PathLike = Union[str, os.PathLike]


@dataclass
class PipelineReport:
    """What :func:`train_from_files` did.

    Attributes:
        train: The training outcome (model, losses, batch size).
        paths: Files that were read, in order.
        errors: One line per file that could not be read.
        selected: Indices (into ``paths``) of the pseudo-labels, best first.
        labels: IEM's masks and scores for every file read.
        cache: The ``.npz`` holding IEM's masks, or None when caching was off.
    """

    train: TrainResult
    paths: List[Path]
    errors: List[str]
    selected: torch.Tensor
    labels: PseudoLabels
    cache: Optional[Path] = None


class NothingToTrain(ValueError):
    """No image could be read, or IEM gave no usable mask; ``errors`` holds one line per file
    that could not be read, naming it and the reason."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


def train_from_files(
    paths: Sequence[PathLike],
    out: PathLike,
    settings: Optional[TrainSettings] = None,
    iem_config: Optional[IEMConfig] = None,
    device: str = "auto",
    resume: bool = True,
    cache: bool = True,
    progress: bool = False,
    segment_chunks: Optional[ChunkRunner] = None,
) -> PipelineReport:
    """Train a segmentation network on a collection without any label (section 3.3).

    1. read every image and bring it to 128x128 with the paper protocol;
    2. run IEM on all of them (cached in ``<out stem>.iem.npz``, resumable);
    3. keep the masks ranked first (``settings.top_k`` or ``settings.top_fraction``), by
       inpainting error or, with ``settings.selection == "agreement"``, by their IoU with
       GrabCut from the box (cached beside the masks); empty and full masks are dropped;
    4. train :class:`~iem.segnet.model.SegNet` on them (checkpointed in ``out``, resumable).

    Args:
        paths: Image files (unreadable ones are reported in the result and skipped).
        out: Checkpoint to write.
        settings: Training recipe (:class:`TrainSettings` defaults).
        iem_config: Phase-1 settings (the paper's by default).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        resume: Continue an interrupted or shorter run found in ``out``.
        cache: Read and write the IEM mask cache.
        progress: Show tqdm bars.
        segment_chunks: where IEM runs (see :func:`~iem.segnet.pseudo.iem_pseudo_labels`), e.g.
            on a Dask cluster with :func:`iem.distributed.chunk_runner`.

    Raises:
        NothingToTrain: no readable image, or no usable pseudo-label.
        CheckpointMismatch: ``out`` holds a run on other data or settings (with ``resume``).
        iem.io.write.NotAFileError: ``out`` is a folder, a block device or a socket.
    """
    settings = settings or TrainSettings()
    iem_config = resolve_config(iem_config)
    out = Path(out)
    write_plan(out)  # a folder or device given as ``out`` is refused before any work is done

    with tqdm(total=len(paths), desc="read", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        collection = load_collection(paths, PROTOCOL_SIZE, progress=bar.update)
    if not collection.paths:
        raise NothingToTrain("no readable image among the inputs", collection.errors)

    cache_path = default_cache_path(out) if cache else None
    with tqdm(total=len(collection.paths), desc="IEM", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        labels = iem_pseudo_labels(
            collection.images, collection.paths, iem_config, cache_path, device, progress=bar.update,
            segment_chunks=segment_chunks,
        )

    agreement = None
    if settings.selection == "agreement":

        def agree() -> np.ndarray:
            with tqdm(
                total=len(collection.paths), desc="agreement", unit="img", disable=not progress, dynamic_ncols=True
            ) as bar:
                return box_agreement(
                    collection.images, labels.masks, iem_config.grabcut_iterations, iem_config.grabcut_border, bar.update
                ).numpy()

        # The masks' key covers the files and the IEM settings, GrabCut's among them.
        agreement = torch.from_numpy(cached_per_image(cache_path, labels.key, "agreement", agree))
    selected = select_labels(labels, settings, agreement)
    result = train_on_labels(
        collection.images, collection.paths, labels, selected, out, settings, iem_config, agreement, device, resume, progress
    )
    return PipelineReport(
        train=result,
        paths=collection.paths,
        errors=collection.errors,
        selected=selected,
        labels=labels,
        cache=cache_path,
    )


def select_labels(
    labels: PseudoLabels, settings: TrainSettings, agreement: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Step 3 of :func:`train_from_files`: the pseudo-labels the network learns from, best first.

    Ranked by ``settings.selection`` (final inpainting error, or ``agreement``), the first
    ``settings.top_k`` or ``settings.top_fraction`` kept (:func:`~iem.segnet.select.select_top`).

    Args:
        labels: IEM's masks and final inpainting errors of a collection.
        settings: The recipe.
        agreement: ``(N,)`` IoU of each mask with GrabCut from the box
            (:func:`~iem.segnet.select.box_agreement`); needed when ranking by agreement.

    Raises:
        NothingToTrain: no usable pseudo-label.
        ValueError: ranking by agreement without ``agreement``.
    """
    ranking = labels.scores
    if settings.selection == "agreement":
        if agreement is None:
            raise ValueError("select_labels: ranking by agreement needs the agreement of every mask")
        # An image IEM failed on keeps its non-finite score, so it is never selected.
        ranking = torch.where(torch.isfinite(labels.scores), torch.as_tensor(agreement, dtype=torch.float64), labels.scores)
    selected = select_top(ranking, settings.top_k, settings.top_fraction, masks=labels.masks)
    if selected.numel() == 0:
        raise NothingToTrain("IEM produced no usable mask (all empty, full or failed)")
    return selected


def train_on_labels(
    images: torch.Tensor,
    paths: Sequence[PathLike],
    labels: PseudoLabels,
    selected: torch.Tensor,
    out: PathLike,
    settings: TrainSettings,
    iem_config: IEMConfig,
    agreement: Optional[torch.Tensor] = None,
    device: str = "auto",
    resume: bool = True,
    progress: bool = False,
) -> TrainResult:
    """Step 4 of :func:`train_from_files`: train on the selected labels, recording them.

    Split out so that labels made elsewhere (another machine, a cluster) train exactly as the
    pipeline's own do, with the same record in the checkpoint.

    Args:
        images: ``(N, 3, S, S)`` float in [-1, 1], the collection at the working size (only
            the ``selected`` ones are read).
        paths: The ``N`` files (the selected ones' names are recorded in the checkpoint).
        labels: IEM's masks and final inpainting errors of the ``N`` images.
        selected: Indices from :func:`select_labels`.
        out: Checkpoint to write.
        settings: Training recipe.
        iem_config: The IEM settings that made ``labels`` (recorded in the checkpoint).
        agreement: The ranking by agreement, recorded when ``settings.selection`` uses it.
        device, resume, progress: as :func:`train_from_files`.
    """
    meta = {
        "files": [str(paths[i]) for i in selected.tolist()],
        "scores": [float(labels.scores[i]) for i in selected.tolist()],
        "collection_size": len(paths),
        "iem_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in iem_config.to_dict().items()},
    }
    if settings.selection == "agreement" and agreement is not None:
        meta["agreement"] = [float(agreement[i]) for i in selected.tolist()]
    return train_segnet(
        images[selected], labels.masks[selected], out, settings, device=device, resume=resume, progress=progress, meta=meta
    )
