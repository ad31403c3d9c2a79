"""The image collection phase 2 learns from: file discovery, the paper protocol and a split.

Every image is brought to the paper's working size (section 4.2): shorter side resized to
128 px with nearest-neighbour interpolation, then a centered 128x128 crop, values in [-1, 1].
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

from iem.datasets.protocol import PAPER_SIZE, center_crop, image_to_tensor, resize_shorter_nearest
from iem.io import ImageReadError, InputProblem, iter_inputs, read_image

PathLike = Union[str, os.PathLike]

#: Working side of phase 2 (the paper's protocol, section 4.2).
PROTOCOL_SIZE = PAPER_SIZE


def collect_image_paths(inputs: Iterable[PathLike]) -> Tuple[List[Path], List[str]]:
    """Expand files, folders (recursive) and glob patterns into image paths, like ``iem segment``.

    The order is reproducible (:func:`iem.io.iter_inputs`: arguments in order, folders sorted);
    a file reached twice is kept once.

    Returns:
        ``(paths, problems)``: the images, and one line per argument that names nothing.
    """
    seen = set()
    paths: List[Path] = []
    problems: List[str] = []
    for item in iter_inputs(inputs):
        if isinstance(item, InputProblem):
            problems.append(f"{item.path}: {item.reason}")
            continue
        key = os.path.abspath(item.path)
        if key not in seen:
            seen.add(key)
            paths.append(item.path)
    return paths, problems


def protocol_tensor(image: Image.Image, size: int = PROTOCOL_SIZE) -> torch.Tensor:
    """One image as the paper's ``(3, size, size)`` tensor in [-1, 1] (nearest resize + crop).

    The same rules as the benchmark's paper protocol (:mod:`iem.datasets.protocol`), so that
    the network learns on exactly the pixels it is evaluated on.
    """
    return image_to_tensor(center_crop(resize_shorter_nearest(image, size), size))


@dataclass
class Collection:
    """Images loaded at the working size, with the files they came from.

    Attributes:
        images: ``(N, 3, size, size)`` float tensor in [-1, 1].
        paths: The ``N`` files that could be read, in input order.
        errors: One line per file that could not be read (naming the file and the reason).
    """

    images: torch.Tensor
    paths: List[Path]
    errors: List[str] = field(default_factory=list)


def load_collection(
    paths: Sequence[PathLike],
    size: int = PROTOCOL_SIZE,
    progress: Optional[Callable[[int], None]] = None,
) -> Collection:
    """Read every file with :func:`iem.io.read_image` and apply the paper protocol.

    Unreadable files are skipped and reported in ``Collection.errors``; the rest go on.

    Args:
        paths: Image files.
        size: Working side (128 in the paper).
        progress: Optional callable receiving 1 after each file.
    """
    tensors: List[torch.Tensor] = []
    kept: List[Path] = []
    errors: List[str] = []
    for path in paths:
        try:
            tensors.append(protocol_tensor(read_image(path), size))
            kept.append(Path(path))
        except ImageReadError as err:
            errors.append(str(err))
        if progress is not None:
            progress(1)
    images = torch.stack(tensors) if tensors else torch.empty(0, 3, size, size)
    return Collection(images=images, paths=kept, errors=errors)


def split_paths(paths: Sequence[PathLike], test_size: int, seed: int = 0) -> Tuple[List[Path], List[Path]]:
    """A fixed train/test split: sort by file name, shuffle with ``seed``, hold out ``test_size``.

    The split depends only on the file names, the count and the seed, so the same command
    gives the same split on any machine. Both parts are returned sorted by name.

    Returns:
        ``(train, test)`` lists of paths.
    """
    if not 0 <= test_size <= len(paths):
        raise ValueError(f"split_paths: test_size must be in [0, {len(paths)}], got {test_size}")
    ordered = sorted((Path(p) for p in paths), key=lambda p: (p.name, str(p)))
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    test = set(shuffled[:test_size])
    return [p for p in ordered if p not in test], [p for p in ordered if p in test]
