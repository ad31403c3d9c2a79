"""The phase-2 methods join the benchmark registry and segment like the library functions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iem import IEMConfig, segment_batch
from iem.bench.methods import MethodContext, available_names, build_method
from iem.segnet.methods import SEGNET, SEGNET_REFINE
from iem.segnet.predict import load_model, predict
from iem.segnet.train import TrainSettings, train_segnet

from tests.segnet.synthetic import blobs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels = blobs(4, size=32, seed=4)
    path = tmp_path_factory.mktemp("methods") / "m.pt"
    train_segnet(images, labels, path, TrainSettings(epochs=1, batch_size=2, min_steps_per_epoch=1), device="cpu")
    return path


def test_methods_are_registered() -> None:
    assert SEGNET in available_names() and SEGNET_REFINE in available_names()


def test_segnet_method_thresholds_the_prediction(checkpoint: Path) -> None:
    method = build_method(SEGNET, MethodContext(device="cpu", model=checkpoint))
    images, _ = blobs(3, size=32, seed=8)
    masks = method.segment(images)
    assert masks.shape == (3, 32, 32) and masks.dtype == torch.bool
    assert torch.equal(masks, predict(load_model(checkpoint), images)[:, 0] > 0.5)


def test_refine_method_runs_iem_from_the_prediction(checkpoint: Path) -> None:
    context = MethodContext(device="cpu", model=checkpoint, config_overrides={"iterations": 5})
    method = build_method(SEGNET_REFINE, context)
    assert method.config == IEMConfig.paper(iterations=5)
    images, _ = blobs(2, size=32, seed=9)
    init = predict(load_model(checkpoint), images) > 0.5
    expected = segment_batch(images, IEMConfig.paper(iterations=5), device="cpu", init_masks=init).masks[:, 0]
    assert torch.equal(method.segment(images), expected)


@pytest.mark.parametrize("name", [SEGNET, SEGNET_REFINE])
def test_a_model_is_required(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--model"):
        build_method(name, MethodContext(device="cpu"))
    with pytest.raises(ValueError, match="no such checkpoint"):
        build_method(name, MethodContext(device="cpu", model=tmp_path / "missing.pt"))
