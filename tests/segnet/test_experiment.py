"""The phase-2 experiment: split, train without labels, score IEM / SegNet / SegNet+refine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from iem import IEMConfig, segment_batch
from iem.datasets import write_shapes_dataset
from iem.segnet.checkpoint import read_checkpoint
from iem.segnet.data import load_collection
from iem.segnet.experiment import (
    HALVES, experiment_markdown, half_results, run_collection_experiment, run_experiment, score_model,
)
from iem.segnet.summary import read_run
from iem.segnet.train import TrainSettings
from tests.conftest import require_shared

METHODS = ["paper", "segnet", "segnet+refine"]
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "iem" / "data"


@pytest.mark.parametrize("transductive, preset", [(False, "paper"), (True, "released")])
def test_experiment_on_synthetic_pairs(tmp_path: Path, transductive: bool, preset: str) -> None:
    root = tmp_path / "shapes"
    write_shapes_dataset(root, count=6, size=(48, 64), seed=1)
    settings = TrainSettings(epochs=1, min_steps_per_epoch=2)
    result = run_experiment(
        root, tmp_path / "out", test_size=2, settings=settings, iem_config=IEMConfig.preset(preset, iterations=3),
        device="cpu", transductive=transductive, iem_name=preset,
    )
    methods = [preset, "segnet", "segnet+refine"]  # IEM's row named after its preset
    assert [r.method for r in result.bench.results] == methods
    assert all(r.images == 2 for r in result.bench.results)
    split = json.loads((tmp_path / "out" / "split.json").read_text())
    assert len(split["train"]) == 4 and len(split["test"]) == 2 and not set(split["train"]) & set(split["test"])
    assert len(result.train_names) == (6 if transductive else 4)
    assert result.pseudo["all"]["images"] == len(result.train_names)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["method"] for r in data["results"]] == methods
    text = experiment_markdown(result, "cmd")
    assert "| segnet+refine |" in text and ("transductive" in text) == transductive


@pytest.mark.slow
def test_experiment_on_weizmann_horse_subset(tmp_path: Path) -> None:
    """End to end on real photographs: 24 Weizmann horses, 8 held out, short IEM and training."""
    horse = require_shared("weizmann_horse")
    root = tmp_path / "horse"
    for sub, suffix in (("images", ".jpg"), ("masks", ".png")):
        (root / sub).mkdir(parents=True)
        for i in range(1, 25):
            shutil.copy(horse / sub / f"horse{i:03d}{suffix}", root / sub)
    result = run_experiment(
        root, tmp_path / "out", test_size=8, settings=TrainSettings(epochs=5),
        iem_config=IEMConfig.paper(iterations=60), device="cpu",
    )
    scores = {r.method: r.mean("iou") for r in result.bench.results}
    assert set(scores) == set(METHODS) and all(r.images == 8 for r in result.bench.results)
    # every method finds something of the horses: well above an empty mask's IoU of 0
    assert min(scores.values()) > 0.25, scores
    assert result.pipeline.train.losses[-1] < result.pipeline.train.losses[0]


def test_collection_experiment_trains_on_one_folder_and_scores_another(tmp_path: Path) -> None:
    collection, labelled = tmp_path / "unlabelled", tmp_path / "labelled"
    write_shapes_dataset(collection, count=6, size=(48, 64), seed=2)
    write_shapes_dataset(labelled, count=5, size=(48, 64), seed=3)
    settings = TrainSettings(epochs=1, min_steps_per_epoch=2, schedule="onecycle", precision="bf16")
    result = run_collection_experiment(
        labelled, collection / "images", tmp_path / "out", settings,
        IEMConfig.paper(iterations=3), device="cpu", iem_name="paper",
    )
    assert [r.method for r in result.bench.results] == METHODS
    assert all(r.images == 5 for r in result.bench.results)
    assert len(result.train_names) == 6 and len(result.pipeline.selected) == pytest.approx(0.8 * 6, abs=1)
    # the halves partition the images: even indices first, then odd
    even, odd = (half_results(result.bench, half) for half in HALVES)
    for whole, a, b in zip(result.bench.results, even, odd):
        assert [r.name for r in a.rows] == [r.name for r in whole.rows[0::2]]
        assert [r.name for r in b.rows] == [r.name for r in whole.rows[1::2]]
        assert a.seconds + b.seconds == pytest.approx(whole.seconds)
    text = experiment_markdown(result, "cmd")
    assert "Even half (choices made here)" in text and "Odd half (reported only)" in text
    assert "Time per epoch (mean of 1): " in text
    assert (tmp_path / "out" / "model.iem.npz").is_file()
    # the folder is what the summary of several runs reads
    run = read_run(tmp_path / "out")
    assert run.labels == "paper, iterations=3" and run.epochs_done == 1 and run.settings == settings.to_dict()
    for whole in result.bench.results:
        assert run.results[whole.method].mean("iou") == pytest.approx(whole.mean("iou"), abs=1e-6)
    # a network trained elsewhere is scored by the same half of the experiment
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "out" / "model.pt", elsewhere / "model.pt")
    bench = score_model(labelled, elsewhere, IEMConfig.paper(iterations=3), device="cpu")
    assert [r.method for r in bench.results] == METHODS
    again = read_run(elsewhere)
    for whole in result.bench.results:
        assert again.results[whole.method].mean("strict_iou") == pytest.approx(whole.mean("strict_iou"), abs=1e-6)


def test_collection_experiment_with_best_labels_uses_best_at_the_working_size(tmp_path: Path) -> None:
    """``--preset best``: the pseudo-labels are ``segment_batch`` with today's ``IEMConfig.best()`` on
    the 128 px tensors (the 44 px square, GrabCut from its mask and from the box, the energy rule;
    the photo pass has no photo here) and the IEM row is named after them. Few iterations keep it
    short; the summary's naming of the full preset is tested in test_summary.py."""
    labelled = tmp_path / "labelled"
    write_shapes_dataset(labelled, count=2, size=(48, 64), seed=5)
    best = IEMConfig.best(iterations=5)
    settings = TrainSettings(epochs=1, min_steps_per_epoch=2, precision="bf16")
    # the package's sample photos: real edges, where GrabCut's settings change the masks
    result = run_collection_experiment(labelled, SAMPLES, tmp_path / "out", settings, best, device="cpu", iem_name="best")
    assert [r.method for r in result.bench.results] == ["best", "segnet", "segnet+refine"]
    images = load_collection(result.pipeline.paths).images
    expected = segment_batch(images, config=best, device="cpu")
    assert torch.equal(result.pipeline.labels.masks, expected.masks)
    torch.testing.assert_close(result.pipeline.labels.scores, expected.scores.double())
    # the labels are best's, not the paper's IEM alone (what a dropped GrabCut or preset would give)
    assert not torch.equal(result.pipeline.labels.masks, segment_batch(images, config=IEMConfig.paper(iterations=5), device="cpu").masks)


def test_command_names_the_iem_row_after_its_preset(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from iem.segnet.experiment import main

    root = tmp_path / "shapes"
    write_shapes_dataset(root, count=4, size=(32, 40), seed=4)
    args = [str(root), "--out", str(tmp_path / "out"), "--test-size", "2", "--preset", "released"]
    done = CliRunner().invoke(main, args + ["--epochs", "1", "--min-steps", "1", "--select", "agreement", "--device", "cpu", "-q"])
    assert done.exit_code == 0, done.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["method"] for r in data["results"]] == ["released", "segnet", "segnet+refine"]
    assert read_checkpoint(tmp_path / "out" / "model.pt")["settings"]["selection"] == "agreement"
