"""``iem export``: ONNX and TorchScript files that reproduce the trained network."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from iem.cli import main
from iem.segnet import load_model
from iem.segnet.export import run_export
from iem.segnet.train import TrainSettings, train_segnet

from tests.io.special import block_device
from tests.segnet.synthetic import blobs


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels = blobs(4, size=32, seed=3)
    path = tmp_path_factory.mktemp("export") / "m.pt"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_segnet(images, labels, path, TrainSettings(epochs=1, batch_size=2, min_steps_per_epoch=1), device="cpu")
    finally:
        torch.set_num_threads(before)
    return path


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".ts")])
def test_export_reproduces_the_checkpoint(checkpoint: Path, tmp_path: Path, fmt: str, suffix: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / f"model{suffix}"
    result = CliRunner().invoke(main, ["export", str(checkpoint), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "max difference from PyTorch" in result.output
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = torch.sigmoid(load_model(checkpoint)(images))
    torch.testing.assert_close(run_export(out, fmt, images), expected, atol=1e-4, rtol=0)


def test_default_output_sits_beside_the_checkpoint(checkpoint: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(checkpoint), "--format", "torchscript", "-q"])
    assert result.exit_code == 0, result.output
    assert checkpoint.with_suffix(".ts").is_file()


def test_a_link_is_written_through_and_a_block_device_refused(checkpoint: Path, tmp_path: Path) -> None:
    real = tmp_path / "kept" / "model.ts"
    real.parent.mkdir()
    link = tmp_path / "model.ts"
    link.symlink_to(real)
    result = CliRunner().invoke(main, ["export", str(checkpoint), "--format", "torchscript", "--out", str(link), "-q"])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and real.stat().st_size > 0
    block = block_device(tmp_path / "disk")
    result = CliRunner().invoke(main, ["export", str(checkpoint), "--format", "torchscript", "--out", str(block)])
    assert result.exit_code == 1 and result.output.strip() == f"{block}: cannot write (is a block device, not a file iem may write)"
    assert stat.S_ISBLK(os.lstat(block).st_mode)


def test_bad_checkpoint_or_format_exit_2(tmp_path: Path, checkpoint: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    result = CliRunner().invoke(main, ["export", str(junk), "--format", "onnx"])
    assert result.exit_code == 2 and "junk.pt" in result.output and "Traceback" not in result.output
    assert CliRunner().invoke(main, ["export", str(checkpoint), "--format", "tflite"]).exit_code == 2
