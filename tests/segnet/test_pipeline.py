"""Files -> IEM masks -> selection -> network, end to end on tiny synthetic files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iem import IEMConfig, IEMResult
from iem.segnet import NothingToTrain, TrainSettings, load_model, predict, train_from_files
from iem.segnet import pipeline
from iem.segnet.data import load_collection
from iem.segnet.pipeline import select_labels, train_on_labels
from iem.segnet.train import data_fingerprint
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


def test_agreement_keeps_the_masks_grabcut_from_the_box_reproduces(tmp_path: Path, monkeypatch) -> None:
    # Four copies of one scene (a bright square, rows and columns 32..95, on a dark ground). IEM
    # is replaced by a runner giving the square itself to images 0 and 1 and only its top half,
    # with higher inpainting errors, to images 2 and 3: the paper's ranking keeps the halves,
    # the agreement with GrabCut from the box keeps the squares.
    folder = tmp_path / "imgs"
    folder.mkdir()
    scene = np.full((128, 128, 3), (40, 110, 30), dtype=np.uint8)
    scene[32:96, 32:96] = (240, 30, 40)
    paths = []
    for i in range(4):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(scene).save(paths[-1])
    masks = torch.zeros(4, 1, 128, 128, dtype=torch.bool)
    masks[:2, :, 32:96, 32:96] = True
    masks[2:, :, 32:64, 32:96] = True
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0])

    def fake_iem(chunks):
        for chunk in chunks:
            assert chunk.shape[0] == 4
            yield IEMResult(masks=masks, scores=scores, init=torch.zeros(4, dtype=torch.long), iterations=torch.ones(4, dtype=torch.long))

    settings = SETTINGS.replace(top_k=2)
    paper = train_from_files(paths, tmp_path / "error.pt", settings, CONFIG, device="cpu", segment_chunks=fake_iem)
    assert paper.selected.tolist() == [3, 2]
    agreed = train_from_files(
        paths, tmp_path / "agreement.pt", settings.replace(selection="agreement"), CONFIG, device="cpu", segment_chunks=fake_iem
    )
    assert agreed.selected.tolist() == [0, 1]
    meta = read_checkpoint(tmp_path / "agreement.pt")["meta"]
    assert meta["agreement"] == pytest.approx([1.0, 1.0])
    assert meta["scores"] == [1.0, 2.0]
    assert "agreement" not in read_checkpoint(tmp_path / "error.pt")["meta"]
    # a second training on the same masks reads the agreement from their cache
    monkeypatch.setattr(pipeline, "box_agreement", None)
    again = train_from_files(
        paths, tmp_path / "agreement.pt", settings.replace(selection="agreement", seed=1), CONFIG, device="cpu",
        segment_chunks=fake_iem, resume=False,
    )
    assert again.selected.tolist() == [0, 1]


def test_labels_made_elsewhere_train_as_the_pipeline_does(tmp_path: Path) -> None:
    """Selecting and training apart (a GPU machine given the labels) gives the pipeline's own
    checkpoint: the same labels kept, the same record and the same weights. Only the kept
    images are read: the others may be missing (NaN) on that machine."""
    paths = write_images(tmp_path / "imgs", 5, size=(40, 48))
    report = train_from_files(paths, tmp_path / "here" / "model.pt", SETTINGS, CONFIG, device="cpu")
    selected = select_labels(report.labels, SETTINGS)
    assert selected.tolist() == report.selected.tolist()
    images = load_collection(paths).images
    # the network learnt each kept image with its own mask, best first
    assert read_checkpoint(tmp_path / "here" / "model.pt")["fingerprint"] == data_fingerprint(
        images[selected], report.labels.masks[selected], SETTINGS
    )
    dropped = torch.ones(5, dtype=torch.bool)
    dropped[selected] = False
    images[dropped] = float("nan")
    train_on_labels(images, paths, report.labels, selected, tmp_path / "there" / "model.pt", SETTINGS, CONFIG, device="cpu")
    here, there = read_checkpoint(tmp_path / "here" / "model.pt"), read_checkpoint(tmp_path / "there" / "model.pt")
    assert there["fingerprint"] == here["fingerprint"] and there["meta"] == here["meta"]
    assert all(torch.equal(there["model"][k], here["model"][k]) for k in here["model"])


def test_ranking_by_agreement_needs_the_agreement(tmp_path: Path) -> None:
    labels = pipeline.PseudoLabels(
        masks=torch.zeros(3, 1, 8, 8, dtype=torch.bool).index_fill_(2, torch.tensor([2, 3]), True),
        scores=torch.tensor([3.0, 1.0, float("nan")], dtype=torch.float64),
        key="k",
    )
    by_agreement = SETTINGS.replace(selection="agreement", top_k=2)
    with pytest.raises(ValueError, match="agreement"):
        select_labels(labels, by_agreement)
    # the agreement ranks, and the image IEM failed on is never kept whatever its agreement
    assert select_labels(labels, by_agreement, torch.tensor([0.1, 0.9, 1.0])).tolist() == [1, 0]
    assert select_labels(labels, SETTINGS.replace(top_k=2)).tolist() == [0, 1]
