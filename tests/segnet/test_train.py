"""Training on pseudo-labels: the loss goes down, checkpoints resume exactly, mismatches are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iem.segnet.checkpoint import read_checkpoint
from iem.segnet.train import CheckpointMismatch, TrainSettings, train_segnet

from tests.segnet.synthetic import blobs

#: A recipe small enough for seconds on a CPU: 12 images of 32 px, batches of 4.
FAST = TrainSettings(epochs=2, batch_size=4, min_steps_per_epoch=1, learning_rate=1e-2, seed=3)


@pytest.fixture(scope="module")
def data():
    return blobs(12, size=32, seed=1)


def _weights(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_short_run_lowers_the_loss(data, tmp_path: Path) -> None:
    images, labels = data
    result = train_segnet(images, labels, tmp_path / "m.pt", FAST.replace(epochs=4), device="cpu")
    assert len(result.losses) == 4
    assert result.losses[-1] < 0.6 * result.losses[0]
    assert not result.model.training
    # what it learnt is the disks: most pixels right on the training images
    with torch.no_grad():
        pred = result.model(images) > 0
    assert (pred == labels).float().mean() > 0.8


def test_resuming_gives_the_uninterrupted_run(data, tmp_path: Path) -> None:
    images, labels = data
    straight = train_segnet(images, labels, tmp_path / "a.pt", FAST, device="cpu")
    first = train_segnet(images, labels, tmp_path / "b.pt", FAST.replace(epochs=1), device="cpu")
    assert read_checkpoint(tmp_path / "b.pt")["epoch"] == 1
    resumed = train_segnet(images, labels, tmp_path / "b.pt", FAST, device="cpu")
    assert resumed.start_epoch == 1 and len(first.losses) == 1
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    a, b = _weights(straight.model), _weights(resumed.model)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_a_finished_run_is_not_retrained(data, tmp_path: Path) -> None:
    images, labels = data
    done = train_segnet(images, labels, tmp_path / "m.pt", FAST.replace(epochs=1), device="cpu")
    stamp = (tmp_path / "m.pt").stat().st_mtime_ns
    again = train_segnet(images, labels, tmp_path / "m.pt", FAST.replace(epochs=1), device="cpu")
    assert again.start_epoch == 1 and again.losses == done.losses
    assert (tmp_path / "m.pt").stat().st_mtime_ns == stamp
    state = read_checkpoint(tmp_path / "m.pt")
    assert state["complete"] and state["epoch"] == 1


def test_other_data_or_settings_are_refused_unless_starting_afresh(data, tmp_path: Path) -> None:
    images, labels = data
    path = tmp_path / "m.pt"
    train_segnet(images, labels, path, FAST.replace(epochs=1), device="cpu")
    with pytest.raises(CheckpointMismatch):
        train_segnet(images, ~labels, path, FAST.replace(epochs=1), device="cpu")
    with pytest.raises(CheckpointMismatch):
        train_segnet(images, labels, path, FAST.replace(epochs=1, learning_rate=1e-3), device="cpu")
    fresh = train_segnet(images, ~labels, path, FAST.replace(epochs=1), device="cpu", resume=False)
    assert fresh.start_epoch == 0
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_small_collections_get_a_smaller_batch() -> None:
    settings = TrainSettings()
    assert settings.effective_batch_size(182) == 12  # 16 steps of <= 12 images
    assert settings.effective_batch_size(8000) == 128  # the paper's batch at the paper's scale
    assert settings.replace(min_steps_per_epoch=1).effective_batch_size(182) == 128


@pytest.mark.parametrize(
    "kwargs", [{"epochs": -1}, {"batch_size": 0}, {"learning_rate": 0.0}, {"top_k": 0}, {"top_fraction": 2.0}]
)
def test_invalid_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TrainSettings(**kwargs)


def test_top_k_replaces_the_default_fraction() -> None:
    settings = TrainSettings(top_k=100)
    assert settings.top_k == 100 and settings.top_fraction is None


def test_shapes_are_checked(data, tmp_path: Path) -> None:
    images, labels = data
    with pytest.raises(ValueError):
        train_segnet(images[:, :2], labels, tmp_path / "m.pt", FAST, device="cpu")
    with pytest.raises(ValueError):
        train_segnet(images, labels[:5], tmp_path / "m.pt", FAST, device="cpu")
