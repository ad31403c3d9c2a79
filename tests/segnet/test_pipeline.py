"""Files -> IEM masks -> selection -> network, end to end on tiny synthetic files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iem import IEMConfig
from iem.segnet import NothingToTrain, TrainSettings, load_model, predict, train_from_files
from iem.segnet.checkpoint import read_checkpoint

from tests.segnet.synthetic import write_images

CONFIG = IEMConfig.paper(iterations=3)
SETTINGS = TrainSettings(epochs=1, top_k=3, min_steps_per_epoch=2)


def test_train_from_files_end_to_end(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", 5, size=(40, 48))
    bad = tmp_path / "imgs" / "bad.png"
    bad.write_bytes(b"")
    out = tmp_path / "run" / "model.pt"
    report = train_from_files(paths + [bad], out, SETTINGS, CONFIG, device="cpu")
    assert report.paths == paths and len(report.errors) == 1 and "bad.png" in report.errors[0]
    assert report.labels.masks.shape == (5, 1, 128, 128)
    # the three highest inpainting errors, best first
    assert report.selected.tolist() == torch.argsort(report.labels.scores, descending=True)[:3].tolist()
    assert report.cache == tmp_path / "run" / "model.iem.npz" and report.cache.is_file()
    assert report.train.batch_size == 2 and len(report.train.losses) == 1

    state = read_checkpoint(out)
    assert state["complete"] and state["meta"]["collection_size"] == 5
    assert state["meta"]["files"] == [str(paths[i]) for i in report.selected.tolist()]
    assert state["meta"]["iem_config"]["iterations"] == 3
    model = load_model(out)
    assert predict(model, torch.zeros(1, 3, 128, 128)).shape == (1, 1, 128, 128)


def test_nothing_readable_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(NothingToTrain):
        train_from_files([bad], tmp_path / "m.pt", SETTINGS, CONFIG, device="cpu")
