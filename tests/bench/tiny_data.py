"""The tiny synthetic dataset of the bench tests: a few 48 x 64 images."""

from __future__ import annotations

from pathlib import Path

from iem.datasets import write_shapes_dataset

#: Images in the tiny dataset, and their size (height, width).
TINY_COUNT = 4
TINY_SIZE = (48, 64)


def build_tiny(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    write_shapes_dataset(root, count=TINY_COUNT, size=TINY_SIZE, seed=11)
    return root
