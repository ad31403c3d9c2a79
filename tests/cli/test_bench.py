"""``iem bench`` end to end on a tiny synthetic dataset with 3 IEM iterations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from iem.cli import main
from iem.datasets import write_shapes_dataset

RESULT_KEYS = ["method", "acc", "iou", "dice", "strict_acc", "strict_iou", "strict_dice", "seconds", "images"]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    write_shapes_dataset(root, count=3, size=(40, 56), seed=7)
    return root


def _run(*args: str) -> object:
    return CliRunner().invoke(main, ["bench", *args, "--quiet", "--device", "cpu"])


def test_full_run_writes_every_output(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(str(tiny), "--out", str(out), "--methods", "paper,released,grabcut,square,all",
                  "--ablations", "--variants", "--iterations", "3", "--figure-rows", "2")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["dataset"] == "tiny" and data["protocol"] == "paper"
    methods = [r["method"] for r in data["results"]]
    assert methods == [
        "paper", "released", "grabcut", "square", "all",
        "paper+no_regularizer", "paper+no_smoothing", "paper+no_boundary",
        "paper+l1_size", "paper+l2_size", "paper+l1_marginal", "paper+l2_marginal",
    ]
    for entry in data["results"]:
        assert list(entry) == RESULT_KEYS
        assert entry["images"] == 3 and 0.0 <= entry["iou"] <= 1.0 and entry["strict_iou"] <= entry["iou"] + 1e-12
    markdown = (out / "results.md").read_text()
    assert "| paper+l2_size |" in markdown and "strict IoU" in markdown and "images/s" in markdown
    assert "--iterations 3" in markdown and "--ablations" in markdown
    with Image.open(out / "figure.png") as png:
        assert png.format == "PNG"
    assert (out / "per_image.csv").read_text().count("\n") == 1 + 3 * len(methods)


def test_full_protocol_and_config_override(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(str(tiny), "-o", str(out), "-m", "released", "--protocol", "full",
                  "--iterations", "2", "--set", "sigma=2.5", "--set", "kernel_size=7", "--figure-rows", "0", "--limit", "2")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["protocol"] == "full" and data["results"][0]["images"] == 2
    assert not (out / "figure.png").exists()
    assert "sigma=2.5" in (out / "results.md").read_text()


def test_unreadable_image_exit_1(tiny: Path, tmp_path: Path) -> None:
    (tiny / "images" / "shape_002.png").write_bytes(b"not an image")
    result = _run(str(tiny), "-o", str(tmp_path / "o"), "-m", "square", "--figure-rows", "1")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "shape_002.png" in errors[0]
    assert json.loads((tmp_path / "o" / "results.json").read_text())["results"][0]["images"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "paper+bogus"], "unknown change"),
        (["-m", "nothing"], "unknown method"),
        (["--set", "sigmaa=1"], "unknown IEM setting"),
        (["--set", "iterations=-4"], "iterations"),
        (["--set", "smoothing=nope"], "smoothing: 'nope' is not true or false"),
        (["--set", "init_sizes=44,,78"], "not a comma-separated list of integers"),
        (["--set", "iterations=True"], "iterations: 'True' is not an integer"),
        (["--split", "val"], "no 'val' split"),
        (["--figure-methods", "paper+no_smoothing"], "not among the methods"),
    ],
)
def test_usage_errors_exit_2(tiny: Path, tmp_path: Path, args: list, message: str) -> None:
    result = _run(str(tiny), "-o", str(tmp_path / "o"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unusable_device_is_one_usage_error(tiny: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", str(tiny), "-o", str(tmp_path / "o"), "--device", "tpu"])
    assert result.exit_code == 2
    if not torch.cuda.is_available():
        result = CliRunner().invoke(main, ["bench", str(tiny), "-o", str(tmp_path / "o"), "--device", "cuda", "-q"])
        assert result.exit_code == 2 and result.output.count("error:") == 1 and "CUDA" in result.output


def test_unknown_layout_and_missing_out(tmp_path: Path) -> None:
    result = _run(str(tmp_path), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and "unknown dataset layout" in result.output
    result = _run(str(tmp_path))
    assert result.exit_code == 2 and "--out" in result.output


def test_list_methods_and_help() -> None:
    result = CliRunner().invoke(main, ["bench", "--list-methods"])
    assert result.exit_code == 0
    for name in ("paper", "released", "grabcut", "square", "all", "paper+no_boundary", "paper+l2_marginal"):
        assert name in result.output
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output


def test_default_figure_methods() -> None:
    from iem.bench.methods import Method, build_method
    from iem.cli.bench import default_figure_methods

    class Refined(Method):
        name = "paper+net"
        in_figure = True

    methods = [build_method("grabcut"), build_method("released"), build_method("paper"), Refined()]
    assert default_figure_methods(methods) == ["released", "paper+net"]
    assert default_figure_methods([build_method("square")]) == ["square"]
