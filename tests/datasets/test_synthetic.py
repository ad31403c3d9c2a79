"""The synthetic shapes dataset: reproducible, in the folder-pair layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from iem.datasets import open_dataset, write_shapes_dataset


def test_writes_a_folder_pair_dataset(tmp_path: Path) -> None:
    names = write_shapes_dataset(tmp_path / "a", count=3, size=(40, 56), seed=3)
    data = open_dataset(tmp_path / "a", protocol="full")
    assert data.names == names
    for _, image, mask in data:
        assert image.shape == (3, 40, 56)
        assert 0.05 < float(mask.float().mean()) < 0.5


def test_same_seed_same_files(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path / "a", count=2, seed=5)
    write_shapes_dataset(tmp_path / "b", count=2, seed=5)
    for relative in ("images/shape_001.png", "masks/shape_001.png"):
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_shapes_dataset(tmp_path, count=0)
    with pytest.raises(ValueError):
        write_shapes_dataset(tmp_path, image_format="gif")
