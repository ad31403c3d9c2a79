"""Loading a trained network, predicting probabilities, and refining its masks with IEM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from iem import IEMConfig, metrics, segment_batch
from iem.segnet.checkpoint import CheckpointError, save_checkpoint
from iem.segnet.model import SegNet
from iem.segnet.predict import load_model, predict, refine
from iem.segnet.train import TrainSettings, train_segnet

from tests.segnet.synthetic import blobs


class FixedMask(nn.Module):
    """A stand-in network whose logits say "foreground" exactly on a given mask."""

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("masks", masks.float())
        self.anchor = nn.Parameter(torch.zeros(()))  # gives predict() a device to read

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.masks[: images.shape[0]] * 2 - 1) * 10 + self.anchor


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    images, labels = blobs(8, size=32, seed=2)
    path = tmp_path_factory.mktemp("model") / "m.pt"
    settings = TrainSettings(epochs=1, batch_size=4, min_steps_per_epoch=1)
    result = train_segnet(images, labels, path, settings, device="cpu")
    return path, result.model, images


def test_load_model_rebuilds_the_trained_network(trained) -> None:
    path, model, images = trained
    loaded = load_model(path)
    assert isinstance(loaded, SegNet) and not loaded.training
    assert next(loaded.parameters()).device.type == "cpu"
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model.cpu()(images))


def test_predict_returns_probabilities_per_pixel(trained) -> None:
    _, model, images = trained
    probs = predict(model, images)
    assert probs.shape == (8, 1, 32, 32) and probs.dtype == torch.float32
    assert probs.min() >= 0 and probs.max() <= 1
    # chunking does not change the answer
    torch.testing.assert_close(predict(model, images, batch_size=3), probs)


def test_predict_accepts_any_size(trained) -> None:
    _, model, _ = trained
    images = torch.rand(2, 3, 40, 56) * 2 - 1
    assert predict(model, images).shape == (2, 1, 40, 56)
    assert predict(model, images[:0]).shape == (0, 1, 40, 56)


@pytest.mark.parametrize("bad", [torch.zeros(2, 1, 32, 32), torch.zeros(3, 32, 32)])
def test_predict_refuses_non_rgb_batches(trained, bad: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        predict(trained[1], bad)


def test_bad_checkpoints_raise_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_model(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an IEM SegNet checkpoint"):
        load_model(foreign)
    damaged = tmp_path / "damaged.pt"
    save_checkpoint(damaged, {"hparams": SegNet(image_size=32).hparams(), "model": {"stem.1.weight": torch.zeros(1)}})
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(damaged)


def test_refine_starts_iem_from_the_thresholded_prediction() -> None:
    images, truth = blobs(2, size=32, seed=5)
    start = torch.zeros_like(truth)
    start[:, :, 10:22, 10:22] = True
    config = IEMConfig.paper(iterations=10)
    refined = refine(FixedMask(start), images, config, device="cpu")
    expected = segment_batch(images, config, device="cpu", init_masks=start)
    assert torch.equal(refined.masks, expected.masks)
    assert torch.equal(refined.scores, expected.scores)


def test_refine_moves_a_rough_mask_towards_the_object() -> None:
    images, truth = blobs(3, size=48, seed=6)
    # a rough prediction: the true disk shifted by 5 px
    rough = torch.roll(truth, shifts=(5, 5), dims=(-2, -1))
    refined = refine(FixedMask(rough), images, IEMConfig.paper(iterations=40), device="cpu")
    before = metrics.mean_scores(rough, truth, convention="strict")["iou"]
    after = metrics.mean_scores(refined.masks, truth, convention="strict")["iou"]
    assert after > before + 0.1
