"""The dataset interface shared by every layout: a lazy, indexable list of (image, mask) files.

A dataset holds only file names; each sample is decoded when it is asked for, so iterating over
thousands of images keeps memory bounded. Samples are ``(name, image, mask)`` named tuples: the
image is a float tensor (3, H, W) in [-1, 1] and the mask a bool tensor (H, W), both shaped by the
chosen protocol (:mod:`iem.datasets.protocol`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from iem.datasets.protocol import PROTOCOLS, apply_protocol
from iem.io import ImageReadError, read_image

PathLike = Union[str, os.PathLike]

#: File suffixes read as images when a layout scans folders.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class DatasetError(Exception):
    """A dataset folder does not have the expected layout; ``str(err)`` is one line naming the path."""


class SampleError(Exception):
    """One sample could not be loaded; ``str(err)`` is one line naming the file and the reason."""


class Sample(NamedTuple):
    """One evaluation item: unpacks as ``name, image, mask``."""

    name: str
    image: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class Record:
    """Where one sample's files are: ``name`` identifies it in reports (a relative path stem)."""

    name: str
    image_path: Path
    mask_path: Path


MaskReader = Callable[[PathLike], np.ndarray]


class PairDataset:
    """A sequence of (image, ground truth) file pairs decoded on demand.

    Args:
        records: The pairs, in evaluation order.
        read_mask: Turns a ground-truth file into a boolean (H, W) array (the layout's rule).
        protocol: ``"paper"`` or ``"full"`` (see :func:`iem.datasets.protocol.apply_protocol`).
        layout: Name of the layout, for reports.
        root: The dataset folder, for reports.
        problems: One-line messages about files found while scanning that cannot form a pair
            (an image without ground truth, for instance); the dataset skips them.
    """

    def __init__(
        self,
        records: Sequence[Record],
        read_mask: MaskReader,
        protocol: str = "paper",
        layout: str = "folder",
        root: Optional[PathLike] = None,
        problems: Sequence[str] = (),
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        self.records: List[Record] = list(records)
        self.read_mask = read_mask
        self.protocol = protocol
        self.layout = layout
        self.root = Path(root) if root is not None else None
        self.problems: List[str] = list(problems)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        """Decode sample ``index``; raises :class:`SampleError` when one of its files is bad."""
        return self.load(self.records[index])

    def __iter__(self) -> Iterator[Sample]:
        """Decode the samples one at a time; a bad file raises :class:`SampleError`."""
        for record in self.records:
            yield self.load(record)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(layout={self.layout!r}, root={str(self.root)!r}, images={len(self)}, protocol={self.protocol!r})"

    @property
    def names(self) -> List[str]:
        """Sample names in order."""
        return [record.name for record in self.records]

    def load(self, record: Record) -> Sample:
        """Decode one record under this dataset's protocol."""
        try:
            image = read_image(record.image_path)
            mask = self.read_mask(record.mask_path)
            tensor, mask_tensor = apply_protocol(image, mask, self.protocol)
        except ImageReadError as err:
            raise SampleError(str(err)) from None
        except ValueError as err:
            raise SampleError(f"{record.image_path}: {err}") from None
        return Sample(record.name, tensor, mask_tensor)

    def subset(self, indices: Sequence[int]) -> "PairDataset":
        """A dataset over some of this one's records, in the given order (e.g. the first N)."""
        return PairDataset(
            [self.records[i] for i in indices],
            self.read_mask,
            protocol=self.protocol,
            layout=self.layout,
            root=self.root,
            problems=self.problems,
        )


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise :class:`DatasetError` naming it."""
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise :class:`DatasetError` naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    return path
