"""The networks shipped with the package: loaded by name, refused by unknown name, useful on flowers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from iem import metrics
from iem.cli import main
from iem.datasets.folder import open_folder_pair
from iem.segnet import CheckpointError, SegNet, load_model, predict
from iem.segnet.checkpoint import read_checkpoint, save_checkpoint, slim_checkpoint
from iem.bench.runner import SCORE_KEYS
from iem.segnet.predict import THRESHOLD
from iem.segnet.shipped import MODELS_DIR, UnknownModelName, is_bare_name, resolve_model, shipped_models
from tests.conftest import require_shared

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "iem" / "data"
#: Flowers-17 images of the quick accuracy check: every 53rd, 16 images across the classes.
FLOWER_STRIDE = 53


def test_the_flowers_network_is_shipped_and_loads_by_name() -> None:
    assert "flowers" in shipped_models()
    model = load_model("flowers")
    assert isinstance(model, SegNet) and not model.training
    path = MODELS_DIR / "flowers.pt"
    assert resolve_model("flowers") == path
    # shipped without optimiser state: about the size of the weights (275 k float32)
    assert path.stat().st_size < 1_400_000
    assert "optimizer" not in read_checkpoint(path)
    assert (MODELS_DIR / "flowers.md").is_file()


@pytest.mark.parametrize(
    ("spec", "bare"),
    [("flowers", True), ("my-net_2", True), ("flowers.pt", False), ("./flowers", False), ("a/b", False), (Path("flowers"), False)],
)
def test_only_a_string_without_folder_or_suffix_is_a_name(spec, bare: bool) -> None:
    assert is_bare_name(spec) is bare


def test_an_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(UnknownModelName, match=r"nosuch: no shipped model of that name \(shipped: .*flowers.*\)"):
        load_model("nosuch")
    assert issubclass(UnknownModelName, CheckpointError)


def test_a_path_still_loads_a_users_checkpoint(tmp_path: Path, tiny_model: SegNet) -> None:
    # a file called like a shipped model is reached through its path
    target = tmp_path / "flowers"
    save_checkpoint(target, {"hparams": tiny_model.hparams(), "model": tiny_model.state_dict()})
    loaded = load_model(str(target))
    for name, value in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)


def test_a_slim_copy_keeps_the_network_and_drops_the_rest(tmp_path: Path, tiny_model: SegNet) -> None:
    full = {
        "hparams": tiny_model.hparams(),
        "model": tiny_model.state_dict(),
        "optimizer": {"state": {}, "param_groups": []},
        "meta": {"files": ["a.jpg"], "scores": [1.0], "collection_size": 1},
        "epoch": 1,
    }
    save_checkpoint(tmp_path / "full.pt", full)
    slim = slim_checkpoint(tmp_path / "full.pt", tmp_path / "slim.pt", command="cmd")
    assert "optimizer" not in slim and slim["meta"] == {"collection_size": 1, "command": "cmd"}
    assert load_model(tmp_path / "slim.pt").hparams() == tiny_model.hparams()


def test_segment_with_the_shipped_network_end_to_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["segment", str(SAMPLES), "-o", str(tmp_path), "--model", "flowers", "-q"])
    assert result.exit_code == 0, result.output
    photos = sorted(SAMPLES.glob("*.jpg"))
    for photo in photos:
        with Image.open(tmp_path / f"{photo.stem}.mask.png") as mask, Image.open(photo) as original:
            assert mask.size == original.size
            assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


def test_segment_with_an_unknown_name_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["segment", str(SAMPLES), "-o", str(tmp_path), "--model", "nosuch"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if "nosuch" in line]
    assert len(lines) == 1 and "shipped: flowers" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_the_shipped_network_beats_a_centered_square_on_flowers() -> None:
    """On 16 Flowers-17 images (never used for training), well above the trivial guess."""
    dataset = open_folder_pair(require_shared("flowers17"), protocol="paper")
    samples = [dataset[i] for i in range(0, len(dataset), FLOWER_STRIDE)]
    images = torch.stack([s.image for s in samples])
    truths = torch.stack([s.mask for s in samples]).reshape(len(samples), 1, *images.shape[-2:])
    masks = predict(load_model("flowers"), images) > THRESHOLD
    square = torch.zeros_like(truths)
    side = images.shape[-1]
    lo, hi = side // 4, side - side // 4  # the centered square of half the side
    square[..., lo:hi, lo:hi] = True
    ours = metrics.mean_scores(masks, truths)["iou"]
    trivial = metrics.mean_scores(square, truths)["iou"]
    assert ours > trivial + 0.1, (ours, trivial)


def test_the_model_card_states_the_scores_stored_with_the_network() -> None:
    """The card's score table is the one the experiment stored in the shipped file (``--ship``)."""
    meta = read_checkpoint(MODELS_DIR / "flowers.pt")["meta"]
    card = (MODELS_DIR / "flowers.md").read_text(encoding="utf-8")
    assert meta["scored_on"] == "flowers17" and "no human label was used" in card.lower()
    rows = [line.strip() for line in card.splitlines() if line.strip().startswith("| ") and "---" not in line]
    stated = [[float(cell) for cell in row.rsplit("|", 7)[1:-1]] for row in rows[1:]]  # six scores after the header
    stored = [[100 * scores[key] for key in SCORE_KEYS] for scores in meta["scores"].values()]
    # the file keeps four digits, the card one decimal of the exact mean: they agree within both roundings
    assert stated == [pytest.approx(row, abs=0.05 + 0.005) for row in stored], (stated, stored)
    assert {"segnet", "segnet+refine"} <= set(meta["scores"])
