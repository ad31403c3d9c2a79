"""Exports compute what the PyTorch network computes (onnxruntime for ONNX)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iem.segnet.export import ExportError, export_model, run_export
from iem.segnet.model import SegNet


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(tiny_model: SegNet, fmt: str, tmp_path: Path) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / f"model.{fmt}"
    error = export_model(tiny_model, out, fmt)
    assert error < 1e-4
    # an independent comparison, on another batch size than the one traced
    images = torch.rand(5, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = torch.sigmoid(tiny_model(images))
    got = run_export(out, fmt, images)
    assert got.shape == (5, 1, 32, 32)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_exported_onnx_model_is_valid(tiny_model: SegNet, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    export_model(tiny_model, out, "onnx", check=False)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["probabilities"]


def test_unknown_format_is_refused(tiny_model: SegNet, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        export_model(tiny_model, tmp_path / "m.bin", "tflite")


def test_a_diverging_export_is_reported(tiny_model: SegNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iem.segnet.export as export

    monkeypatch.setattr(export, "run_export", lambda path, fmt, images: torch.zeros(images.shape[0], 1, 32, 32))
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_model(tiny_model, tmp_path / "m.ts", "torchscript")


def test_the_original_model_is_untouched(tiny_model: SegNet, tmp_path: Path) -> None:
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.train()
    export_model(tiny_model, tmp_path / "m.ts", "torchscript")
    assert tiny_model.training
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k])
