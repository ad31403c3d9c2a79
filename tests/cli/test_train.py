"""``iem train`` end to end on tiny synthetic files (3 IEM iterations, one epoch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from iem.cli import main
from iem.datasets import write_shapes_dataset
from iem.segnet import load_model
from iem.segnet.checkpoint import read_checkpoint

from tests.segnet.synthetic import write_images

FAST = ["--iterations", "3", "--epochs", "1", "--device", "cpu", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    write_images(tmp_path / "imgs", 4, size=(40, 48))
    return tmp_path / "imgs"


def _train(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def test_trains_resumes_and_extends(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    result = _train(str(images), "--out", str(out), "--top-k", "3", *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.iem.npz").is_file()
    state = read_checkpoint(out)
    assert state["epoch"] == 1 and len(state["meta"]["files"]) == 3
    assert state["meta"]["iem_config"]["iterations"] == 3

    again = CliRunner().invoke(main, ["train", str(images), "--out", str(out), "--top-k", "3", *FAST[:-1]])
    assert again.exit_code == 0, again.output
    assert "resumed after epoch 1" in again.output

    longer = _train(str(images), "--out", str(out), "--top-k", "3", *FAST[:3], "2", *FAST[4:])
    assert longer.exit_code == 0, longer.output
    assert read_checkpoint(out)["epoch"] == 2
    assert load_model(out).image_size == 128


def test_unreadable_inputs_are_reported_and_exit_1(images: Path, tmp_path: Path) -> None:
    (images / "broken.png").write_bytes(b"\x89PNG broken")
    result = _train(str(images), "--out", str(tmp_path / "m.pt"), *FAST)
    assert result.exit_code == 1
    assert "broken.png" in result.output and "Traceback" not in result.output
    assert (tmp_path / "m.pt").is_file()  # the other images were used


def test_another_collection_needs_fresh(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert _train(str(images), "--out", str(out), *FAST).exit_code == 0
    other = write_images(tmp_path / "other", 3, size=(40, 48), seed=5)
    refused = _train(str(other[0].parent), "--out", str(out), *FAST)
    assert refused.exit_code == 2 and "--fresh" in refused.output
    assert _train(str(other[0].parent), "--out", str(out), "--fresh", *FAST).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--top-k", "2", "--top-fraction", "0.5"],
        ["--top-fraction", "0"],
        ["--epochs", "-1"],
        ["--iterations", "-3"],
        ["--schedule", "cosine"],
        ["--precision", "fp16"],
        ["--select", "score"],
    ],
)
def test_usage_errors_exit_2(images: Path, tmp_path: Path, args: list) -> None:
    result = _train(str(images), "--out", str(tmp_path / "m.pt"), *FAST, *args)
    assert result.exit_code == 2, result.output


def test_the_cpu_options_reach_the_checkpoint(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    result = _train(
        str(images), "--out", str(out), "--top-k", "3", "--schedule", "onecycle", "--precision", "bf16",
        "--select", "agreement", *FAST,
    )
    assert result.exit_code == 0, result.output
    state = read_checkpoint(out)
    settings = state["settings"]
    assert settings["schedule"] == "onecycle" and settings["precision"] == "bf16"
    assert settings["selection"] == "agreement" and len(state["meta"]["agreement"]) == 3


def test_no_image_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _train(str(tmp_path / "empty"), "--out", str(tmp_path / "m.pt"), *FAST)
    assert result.exit_code == 2


def test_segment_uses_the_trained_model(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert _train(str(images), "--out", str(out), *FAST).exit_code == 0
    for extra in ([], ["--refine"]):
        masks = tmp_path / ("masks" + "".join(extra))
        result = CliRunner().invoke(
            main, ["segment", str(images), "-o", str(masks), "--model", str(out), "--iterations", "3", "--device", "cpu", "-q", *extra]
        )
        assert result.exit_code == 0, result.output
        assert len(list(masks.rglob("*.mask.png"))) == 4


def test_bench_scores_the_trained_model(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert _train(str(images), "--out", str(out), *FAST).exit_code == 0
    data = tmp_path / "pairs"
    write_shapes_dataset(data, count=2, size=(40, 48), seed=3)
    result = CliRunner().invoke(
        main,
        ["bench", str(data), "--methods", "segnet,segnet+refine", "--model", str(out), "--iterations", "3",
         "--figure-rows", "1", "--figure-methods", "segnet", "--out", str(tmp_path / "bench"), "--device", "cpu", "-q"],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "bench" / "results.json").read_text())["results"]
    assert [r["method"] for r in rows] == ["segnet", "segnet+refine"] and all(r["images"] == 2 for r in rows)
