"""Sample photos shipped with iem, for the quick start and for trying settings.

Three CC0 photos from scikit-image's sample data (sources and licences in ``LICENSE.md`` beside
them): ``coffee`` (a cup on a saucer, a real-world scene), ``retina`` (a round fundus photo on
black) and ``cell`` (a grayscale microscope image)::

    from iem.data import sample_paths
    from iem import segment_files
    segment_files(sample_paths(), "out/", outputs=("mask", "cutout", "overlay"))
"""

from __future__ import annotations

from pathlib import Path
from typing import List

#: Names of the sample photos (``<name>.jpg`` in this folder).
SAMPLES = ("coffee", "retina", "cell")


def sample_folder() -> Path:
    """The folder holding the sample photos."""
    return Path(__file__).resolve().parent


def sample_path(name: str) -> Path:
    """Path of one sample photo by name (one of :data:`SAMPLES`)."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose one of {SAMPLES}")
    return sample_folder() / f"{name}.jpg"


def sample_paths() -> List[Path]:
    """Paths of all sample photos, in :data:`SAMPLES` order."""
    return [sample_path(name) for name in SAMPLES]
