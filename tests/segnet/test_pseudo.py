"""IEM's masks over a collection: computed once, cached by files + settings, resumed chunk by chunk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import iem.segnet.pseudo as pseudo
from iem import IEMConfig, segment_batch
from iem.segnet.pseudo import default_cache_path, iem_pseudo_labels

from tests.segnet.synthetic import blobs, write_images

CONFIG = IEMConfig.paper(iterations=4, init_sizes=(16,))


@pytest.fixture
def collection(tmp_path: Path):
    paths = write_images(tmp_path / "imgs", 5, size=(32, 32))
    images, _ = blobs(5, size=32)
    return images, paths


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """Counts the images IEM is run on."""
    seen: list = []

    def counting(images, *args, **kwargs):
        seen.append(images.shape[0])
        return segment_batch(images, *args, **kwargs)

    monkeypatch.setattr(pseudo, "segment_batch", counting)
    return seen


def test_masks_match_iem_and_are_cached(collection, calls: list, tmp_path: Path) -> None:
    images, paths = collection
    cache = tmp_path / "cache.npz"
    first = iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu", chunk=2)
    assert calls == [2, 2, 1]
    direct = segment_batch(images, CONFIG, device="cpu")
    assert torch.equal(first.masks, direct.masks)
    torch.testing.assert_close(first.scores, direct.scores.double())
    calls.clear()
    second = iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu", chunk=2)
    assert calls == []
    assert torch.equal(second.masks, first.masks) and torch.equal(second.scores, first.scores)


def test_other_settings_or_changed_files_recompute(collection, calls: list, tmp_path: Path) -> None:
    images, paths = collection
    cache = tmp_path / "cache.npz"
    iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu")
    calls.clear()
    iem_pseudo_labels(images, paths, CONFIG.replace(iterations=3), cache, device="cpu")
    assert sum(calls) == 5
    calls.clear()
    os.utime(paths[0], ns=(1, 1))  # the file changed on disk
    iem_pseudo_labels(images, paths, CONFIG.replace(iterations=3), cache, device="cpu")
    assert sum(calls) == 5


def test_an_interrupted_run_resumes_after_the_last_chunk(collection, calls: list, tmp_path: Path, monkeypatch) -> None:
    images, paths = collection
    cache = tmp_path / "cache.npz"
    original = pseudo.segment_batch

    def failing(batch, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(pseudo, "segment_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu", chunk=2)
    with np.load(cache) as data:
        assert int(data["done"]) == 4
    calls.clear()
    monkeypatch.setattr(pseudo, "segment_batch", original)
    done: list = []
    result = iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu", chunk=2, progress=done.append)
    assert done == [4, 1]
    assert torch.equal(result.masks, segment_batch(images, CONFIG, device="cpu").masks)


def test_a_damaged_cache_is_recomputed(collection, tmp_path: Path) -> None:
    images, paths = collection
    cache = tmp_path / "cache.npz"
    cache.write_bytes(b"garbage")
    result = iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu")
    assert result.masks.shape == (5, 1, 32, 32) and torch.isfinite(result.scores).all()


def test_paths_must_match_images(collection) -> None:
    images, paths = collection
    with pytest.raises(ValueError):
        iem_pseudo_labels(images, paths[:3], CONFIG, None, device="cpu")


def test_default_cache_sits_beside_the_checkpoint(tmp_path: Path) -> None:
    assert default_cache_path(tmp_path / "horse.pt") == tmp_path / "horse.iem.npz"


def test_a_per_image_array_is_kept_with_the_masks_it_was_derived_from(collection, calls: list, tmp_path: Path) -> None:
    images, paths = collection
    cache = tmp_path / "cache.npz"
    computed = []

    def compute() -> np.ndarray:
        computed.append(1)
        return np.arange(5.0)

    key = pseudo.collection_key(paths, CONFIG, 32)
    # no masks cached yet: computed, but not stored in a cache of nothing
    assert pseudo.cached_per_image(cache, key, "extra", compute).tolist() == [0, 1, 2, 3, 4]
    assert not cache.exists() and len(computed) == 1
    labels = iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu")
    assert labels.key == key
    pseudo.cached_per_image(cache, key, "extra", compute)
    assert pseudo.cached_per_image(cache, key, "extra", compute).tolist() == [0, 1, 2, 3, 4]
    assert len(computed) == 2
    # the masks are still read from the cache as they were
    calls.clear()
    again = iem_pseudo_labels(images, paths, CONFIG, cache, device="cpu")
    assert calls == [] and torch.equal(again.masks, labels.masks)
    # another key (other settings or files) does not see it
    other = pseudo.collection_key(paths, CONFIG.replace(iterations=3), 32)
    pseudo.cached_per_image(cache, other, "extra", compute)
    assert len(computed) == 3
    # the masks recomputed under other settings drop it
    iem_pseudo_labels(images, paths, CONFIG.replace(iterations=3), cache, device="cpu")
    with np.load(cache) as data:
        assert "extra" not in data.files
    # without a cache it is just computed
    assert pseudo.cached_per_image(None, key, "extra", compute).shape == (5,) and len(computed) == 4
