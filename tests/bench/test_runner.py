"""The benchmark runner: scoring, batching, timing, failures, figure samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import TINY_COUNT
from masks_by_hand import COMPLEMENT, MEAN_SCORES, TOP_ROW, TRUTH

from iem.bench.methods import Method, MethodContext, MethodError, build_method
from iem.bench.runner import figure_indices, iter_batches, run_benchmark, score_batch
from iem.datasets import open_dataset, write_shapes_dataset

FAST = MethodContext(device="cpu", config_overrides={"iterations": 3})


def test_score_batch_by_hand() -> None:
    masks = torch.from_numpy(np.stack([TOP_ROW, COMPLEMENT]))
    truths = torch.from_numpy(np.stack([TRUTH, TRUTH]))
    rows = score_batch(["a", "b"], masks, truths)
    assert [r.name for r in rows] == ["a", "b"]
    for key, value in MEAN_SCORES.items():
        assert (getattr(rows[0], key) + getattr(rows[1], key)) / 2 == pytest.approx(value)


def test_benchmark_on_tiny_dataset(tiny_root: Path) -> None:
    data = open_dataset(tiny_root)
    methods = [build_method(name, FAST) for name in ("released", "square", "all")]
    bench = run_benchmark(data, methods, "tiny", batch_size=3, figure_rows=2, figure_methods=["released"], seed=1)
    assert [r.method for r in bench.results] == ["released", "square", "all"]
    assert all(r.images == TINY_COUNT and r.seconds >= 0 for r in bench.results)
    assert not bench.failed
    # All-foreground: strict IoU is the foreground fraction, strict accuracy too.
    fractions = [float(s.mask.float().mean()) for s in data]
    everything = bench.results[2]
    assert everything.mean("strict_iou") == pytest.approx(np.mean(fractions))
    assert everything.mean("strict_acc") == pytest.approx(np.mean(fractions))
    assert everything.mean("acc") == pytest.approx(np.mean([max(f, 1 - f) for f in fractions]))
    # IEM beats doing nothing on an easy synthetic set, even after 3 iterations.
    assert bench.results[0].mean("iou") > everything.mean("iou")
    assert [s.name for s in bench.samples] == [data.names[i] for i in figure_indices(TINY_COUNT, 2, 1)]
    assert all(set(s.masks) == {"released"} for s in bench.samples)
    assert bench.configs["released"].iterations == 3


class FailsOn(Method):
    """Fails on any batch holding a given image; returns all-background otherwise."""

    name = "fragile"
    description = "fails on one image"

    def __init__(self, poison: torch.Tensor) -> None:
        self.poison = poison

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        if any(torch.equal(image, self.poison) for image in images):
            raise MethodError("cannot do this one")
        return torch.zeros(images.shape[0], *images.shape[2:], dtype=torch.bool)


def test_failing_image_costs_only_itself(tiny_root: Path) -> None:
    data = open_dataset(tiny_root)
    poisoned = data[2]
    bench = run_benchmark(data, [FailsOn(poisoned.image)], "tiny", batch_size=4)
    result = bench.results[0]
    assert result.images == TINY_COUNT - 1
    assert result.failures == [f"{poisoned.name}: fragile: cannot do this one"]
    assert bench.failed


def test_wrong_mask_shape_is_a_failure(tiny_root: Path) -> None:
    class Wrong(Method):
        name = "wrong"
        description = "returns (B, 1, H, W)"

        def segment(self, images: torch.Tensor) -> torch.Tensor:
            return torch.zeros(images.shape[0], 1, *images.shape[2:], dtype=torch.bool)

    result = run_benchmark(open_dataset(tiny_root), [Wrong()], "tiny").results[0]
    assert result.images == 0 and len(result.failures) == TINY_COUNT
    assert "shape" in result.failures[0]
    assert np.isnan(result.mean("iou"))


def test_unreadable_image_reported_once(tiny_root: Path) -> None:
    (tiny_root / "images" / "shape_001.png").write_bytes(b"garbage")
    data = open_dataset(tiny_root)
    bench = run_benchmark(data, [build_method("square"), build_method("all")], "tiny")
    assert len(bench.load_failures) == 1 and "shape_001.png" in bench.load_failures[0]
    assert all(r.images == TINY_COUNT - 1 for r in bench.results)


def test_batches_split_on_size_change(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path / "d", count=3, size=(32, 48), seed=0)
    write_shapes_dataset(tmp_path / "e", count=2, size=(40, 40), seed=1)
    for index, name in enumerate(["shape_000", "shape_001"]):
        for kind, suffix in (("images", ".png"), ("masks", ".png")):
            (tmp_path / "e" / kind / f"{name}{suffix}").rename(tmp_path / "d" / kind / f"z{index}{suffix}")
    data = open_dataset(tmp_path / "d", protocol="full")
    batches = list(iter_batches(data, batch_size=2, on_failure=lambda message: None))
    assert [indices for indices, _ in batches] == [[0, 1], [2], [3, 4]]
    assert [tuple(s.image.shape) for _, batch in batches for s in batch[:1]] == [(3, 32, 48)] * 2 + [(3, 40, 40)]
    bench = run_benchmark(data, [build_method("released", FAST)], "mixed", batch_size=2)
    assert bench.results[0].images == 5


def test_figure_indices_seeded_and_bounded() -> None:
    assert figure_indices(10, 4, 0) == figure_indices(10, 4, 0)
    assert figure_indices(10, 4, 0) != figure_indices(10, 4, 1)
    assert figure_indices(3, 8, 0) == [0, 1, 2]
    assert figure_indices(5, 0, 0) == []
