"""Every command writes through symbolic links, into devices and FIFOs, and refuses folders and
block devices with one line: nothing that is not a regular file is ever replaced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from iem.cli import main
from iem.datasets import write_shapes_dataset

from tests.io.samples import synthetic_photo
from tests.io.special import block_device, null_device
from tests.segnet.synthetic import write_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFUSED = "is a block device, not a file iem may write"


def _link(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def _one_line_refusal(result, path: Path) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if REFUSED in line]
    assert len(lines) == 1 and str(path) in lines[0]


@pytest.fixture
def masks(tmp_path: Path) -> tuple:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for folder in (pred, gt):
        folder.mkdir()
        Image.fromarray(np.eye(4, dtype=np.uint8) * 255).save(folder / "a.png")
    return pred, gt


def test_eval_csv(masks: tuple, tmp_path: Path) -> None:
    pred, gt = masks
    link = _link(tmp_path / "scores.csv", tmp_path / "kept" / "real.csv")
    assert CliRunner().invoke(main, ["eval", str(pred), str(gt), "--csv", str(link), "-q"]).exit_code == 0
    assert link.is_symlink() and (tmp_path / "kept" / "real.csv").read_text().startswith("name,")
    null = null_device(tmp_path / "null")
    assert CliRunner().invoke(main, ["eval", str(pred), str(gt), "--csv", str(null), "-q"]).exit_code == 0
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    block = block_device(tmp_path / "disk")
    _one_line_refusal(CliRunner().invoke(main, ["eval", str(pred), str(gt), "--csv", str(block), "-q"]), block)
    assert stat.S_ISBLK(os.lstat(block).st_mode)


def test_bench_outputs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_shapes_dataset(data, count=1, size=(32, 32), seed=1)
    out = tmp_path / "out"
    link = _link(out / "results.json", tmp_path / "kept" / "results.json")
    args = ["bench", str(data), "--out", str(out), "--methods", "square", "--figure-rows", "0", "-q"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert link.is_symlink() and '"square"' in (tmp_path / "kept" / "results.json").read_text()
    (out / "results.md").unlink()
    block = block_device(out / "results.md")
    _one_line_refusal(CliRunner().invoke(main, args), block)
    assert stat.S_ISBLK(os.lstat(block).st_mode)


def test_train_refuses_a_device_before_any_work(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 1, size=(32, 32))
    block = block_device(tmp_path / "disk")
    result = CliRunner().invoke(main, ["train", str(tmp_path / "imgs"), "--out", str(block), "--device", "cpu", "-q"])
    _one_line_refusal(result, block)
    assert stat.S_ISBLK(os.lstat(block).st_mode)


def test_segment_outputs(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b", "c"):
        synthetic_photo(40, 32, seed=ord(name))[0].save(photos / f"{name}.png")
    out = tmp_path / "out"
    link = _link(out / "a.mask.png", tmp_path / "kept" / "a.png")
    null = null_device(out / "b.mask.png")
    block = block_device(out / "c.mask.png")
    result = CliRunner().invoke(
        main, ["segment", str(photos), "-o", str(out), "--overwrite", "--iterations", "2", "--device", "cpu", "-q"]
    )
    assert link.is_symlink() and stat.S_ISCHR(os.lstat(null).st_mode) and stat.S_ISBLK(os.lstat(block).st_mode)
    with Image.open(tmp_path / "kept" / "a.png") as mask:
        assert mask.size == (40, 32)
    _one_line_refusal(result, block)
