"""The collection: the paper protocol, unreadable files, and a reproducible train/test split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from iem.datasets.protocol import apply_protocol
from iem.segnet.data import collect_image_paths, load_collection, split_paths

from tests.segnet.synthetic import write_images


def test_images_follow_the_paper_protocol(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 2, size=(40, 48))
    collection = load_collection(paths)
    assert collection.images.shape == (2, 3, 128, 128)
    with Image.open(paths[0]) as im:
        expected, _ = apply_protocol(im.convert("RGB"), torch.zeros(40, 48, dtype=torch.bool).numpy())
    torch.testing.assert_close(collection.images[0], expected)


def test_unreadable_files_are_reported_and_skipped(tmp_path: Path) -> None:
    good = write_images(tmp_path, 2)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    seen: list = []
    collection = load_collection([good[0], bad, good[1]], progress=seen.append)
    assert collection.paths == [good[0], good[1]]
    assert len(collection.errors) == 1 and "broken.jpg" in collection.errors[0]
    assert sum(seen) == 3


def test_collect_walks_folders_and_reports_empty_patterns(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "a", 3)
    found, problems = collect_image_paths([tmp_path / "a", paths[0], str(tmp_path / "none*.png")])
    assert found == paths  # the repeated file is kept once
    assert len(problems) == 1 and "none*.png" in problems[0]


def test_split_is_reproducible_disjoint_and_sorted() -> None:
    names = [Path(f"d/horse{i:03d}.jpg") for i in range(1, 328)]
    train, test = split_paths(list(reversed(names)), 100, seed=0)
    assert len(train) == 227 and len(test) == 100
    assert not set(train) & set(test) and set(train) | set(test) == set(names)
    assert train == sorted(train) and test == sorted(test)
    assert split_paths(names, 100, seed=0) == (train, test)  # the input order does not matter
    assert split_paths(names, 100, seed=1)[1] != test


def test_split_size_is_checked() -> None:
    with pytest.raises(ValueError):
        split_paths([Path("a.jpg")], 2)
