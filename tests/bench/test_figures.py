"""The figure grid: a PNG with one row per sampled image and the paper's columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import TINY_COUNT
from PIL import Image

from iem.bench.figures import CELL_INCHES, DPI, figure_columns, inpainting_image, render_grid
from iem.bench.methods import MethodContext, build_method
from iem.bench.runner import FigureSample, run_benchmark
from iem.bench.save import FIGURE_PNG, save_benchmark
from iem.datasets import open_dataset

pytest.importorskip("matplotlib")


def test_columns_follow_the_paper() -> None:
    assert figure_columns(["paper", "segnet"]) == ["input", "ground truth", "paper mask", "paper inpainting", "segnet mask"]
    with pytest.raises(ValueError):
        figure_columns([])


def test_inpainting_fills_each_region_from_the_other() -> None:
    image = -torch.ones(3, 64, 64)
    image[:, :, 32:] = 1.0
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[:, 32:] = True
    painted = inpainting_image(image, mask)
    assert painted.shape == (64, 64, 3) and painted.dtype == np.uint8
    # Far from the edge, the foreground (white) is predicted from the black background, and back.
    assert painted[32, 60].max() < 30 and painted[32, 3].min() > 225


def test_grid_written_by_a_benchmark(tiny_root: Path, tmp_path: Path) -> None:
    data = open_dataset(tiny_root)
    fast = MethodContext(device="cpu", config_overrides={"iterations": 3})
    methods = [build_method("released", fast), build_method("square")]
    bench = run_benchmark(data, methods, "tiny", figure_rows=3, figure_methods=["released", "square"], seed=2)
    out = tmp_path / "bench"
    written = save_benchmark(bench, out, figure_methods=["released", "square"])
    figure = out / FIGURE_PNG
    assert figure in written
    with Image.open(figure) as png:
        assert png.format == "PNG"
        # 5 columns (input, truth, mask, inpainting, second mask) x 3 rows of CELL_INCHES cells.
        assert png.size == (round(5 * CELL_INCHES * DPI), round(3 * CELL_INCHES * DPI))
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.std() > 20  # not a blank canvas
    assert "![samples](figure.png)" in (out / "results.md").read_text()
    assert len(bench.samples) == 3 < TINY_COUNT


def test_grid_needs_every_mask(tmp_path: Path) -> None:
    sample = FigureSample("x", torch.zeros(3, 16, 16), torch.zeros(16, 16, dtype=torch.bool), {"a": torch.zeros(16, 16, dtype=torch.bool)})
    with pytest.raises(ValueError, match="no mask for b"):
        render_grid([sample], ["a", "b"], tmp_path / "f.png")
    with pytest.raises(ValueError, match="at least one sample"):
        render_grid([], ["a"], tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()
