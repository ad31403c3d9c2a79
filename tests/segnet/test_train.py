"""Training on pseudo-labels: the loss goes down, checkpoints resume exactly, mismatches are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from iem.segnet import train as train_module
from iem.segnet.checkpoint import read_checkpoint
from iem.segnet.train import CheckpointMismatch, TrainSettings, data_fingerprint, mean_epoch_seconds, train_segnet

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


def test_every_epoch_is_timed_and_a_resumed_run_keeps_the_earlier_times(data, tmp_path: Path) -> None:
    images, labels = data
    first = train_segnet(images, labels, tmp_path / "m.pt", FAST.replace(epochs=1), device="cpu")
    assert len(first.epoch_seconds) == 1
    assert first.epoch_seconds[0]["wall"] > 0 and first.epoch_seconds[0]["cpu"] > 0
    resumed = train_segnet(images, labels, tmp_path / "m.pt", FAST, device="cpu")
    assert len(resumed.epoch_seconds) == 2 and resumed.epoch_seconds[0] == first.epoch_seconds[0]
    assert read_checkpoint(tmp_path / "m.pt")["epoch_seconds"] == resumed.epoch_seconds


def test_mean_epoch_seconds() -> None:
    assert mean_epoch_seconds([{"wall": 3.0, "cpu": 2.0}, {"wall": 5.0, "cpu": 1.0}]) == (4.0, 1.5)
    with pytest.raises(ValueError):
        mean_epoch_seconds([])


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
    "kwargs",
    [
        {"epochs": -1},
        {"batch_size": 0},
        {"learning_rate": 0.0},
        {"top_k": 0},
        {"top_fraction": 2.0},
        {"schedule": "cosine"},
        {"precision": "fp16"},
        {"selection": "score"},
    ],
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


def test_the_paper_rate_is_constant() -> None:
    settings = TrainSettings(learning_rate=2e-3)
    assert {settings.learning_rate_at(step, 100) for step in range(100)} == {2e-3}


def test_one_cycle_rises_to_the_peak_then_anneals() -> None:
    peak, total = 4e-3, 100
    settings = TrainSettings(learning_rate=peak, schedule="onecycle")
    rates = [settings.learning_rate_at(step, total) for step in range(total)]
    # by hand: peak / 25 at the start, the peak after 30 % of the steps, peak / 25e4 at the last
    assert rates[0] == pytest.approx(peak / 25)
    assert rates[30] == pytest.approx(peak) and max(rates) == pytest.approx(peak)
    assert rates[-1] == pytest.approx(peak / 25e4)
    # halfway through the warm-up and the decay, the cosine is at the middle of its range
    assert rates[15] == pytest.approx((peak + peak / 25) / 2)
    assert rates[30 + 69 // 2] == pytest.approx((peak + peak / 25e4) / 2, rel=0.05)
    assert all(a <= b for a, b in zip(rates[:30], rates[1:31]))
    assert all(a >= b for a, b in zip(rates[30:], rates[31:]))


def test_one_cycle_in_bf16_learns_and_resumes_exactly(data, tmp_path: Path, monkeypatch) -> None:
    images, labels = data
    fast = FAST.replace(epochs=4, schedule="onecycle", precision="bf16")
    straight = train_segnet(images, labels, tmp_path / "a.pt", fast, device="cpu")
    assert straight.losses[-1] < 0.7 * straight.losses[0]
    assert read_checkpoint(tmp_path / "a.pt")["settings"]["schedule"] == "onecycle"
    # interrupted during the third epoch, then resumed: the same batches and rates as straight
    real_epoch, calls = train_module._run_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(args[-2])  # the epoch's learning rates
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_segnet(images, labels, tmp_path / "b.pt", fast, device="cpu")
    monkeypatch.setattr(train_module, "_run_epoch", real_epoch)
    assert read_checkpoint(tmp_path / "b.pt")["epoch"] == 2
    resumed = train_segnet(images, labels, tmp_path / "b.pt", fast, device="cpu")
    assert resumed.start_epoch == 2
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    assert calls[0][0] == pytest.approx(fast.learning_rate / 25)  # the first step warms up
    # the epochs fix a one-cycle schedule: a longer run is another run, not a continuation
    with pytest.raises(CheckpointMismatch):
        train_segnet(images, labels, tmp_path / "a.pt", fast.replace(epochs=5), device="cpu")


def test_the_paper_recipe_keeps_the_fingerprint_of_older_checkpoints(data) -> None:
    images, labels = data
    settings = FAST
    old = {k: v for k, v in settings.to_dict().items() if k not in ("epochs", "schedule", "precision", "selection")}
    digest = hashlib.sha256()
    for tensor in (images, labels):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(json.dumps(old, sort_keys=True).encode())
    assert data_fingerprint(images, labels, settings) == digest.hexdigest()
    assert data_fingerprint(images, labels, settings.replace(precision="bf16")) != digest.hexdigest()
    assert data_fingerprint(images, labels, settings.replace(selection="agreement")) != digest.hexdigest()
