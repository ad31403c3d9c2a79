"""End-to-end: IEM on the real data beside the repository gives the recorded scores, exactly.

Default suite: both presets on GrabCut-50 and on a fixed subset of the Weizmann horses (every
sixth image, 55 of 327) must give the IoU and strict IoU recorded in ``RECORDED`` to within
``TOLERANCE`` = 0.05 IoU points: closer than any misreading of the paper we know of moves
them (``test_the_check_rejects_misreadings_of_the_paper``). ``RECORDED`` was produced by this
module itself, ``PYTHONPATH=src python -m tests.test_reproduction``; rerun it only when a
change of results is intended, and say why in the commit.

``-m slow`` adds the full Weizmann Horse-327 set against the full-set figures of README.md.
How these relate to the authors' released code (docs/results.md): 51.8 (49.2) released and
54.0 (50.3) paper preset on GrabCut-50, 51.8 (51.0) and 53.6 (52.5) on Weizmann Horse-327.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

import iem
from iem.config import IEMConfig
from iem.imaging import center_crop, resize_shorter, to_tensor
from iem.io import read_image
from tests.conftest import require_shared

SIZE = 128
#: Largest accepted difference, in IoU points (% units).
TOLERANCE = 0.05
#: The evaluated sets: a folder of ../shared/data and the images taken from it (sorted by name).
SUBSETS = {"grabcut": ("grabcut", slice(None)), "horse_55": ("weizmann_horse", slice(0, None, 6))}
#: (set, preset) -> (IoU, strict IoU) in %, from ``python -m tests.test_reproduction``.
RECORDED: Dict[Tuple[str, str], Tuple[float, float]] = {
    ("grabcut", "released"): (51.8366, 49.2384),
    ("grabcut", "paper"): (54.1220, 50.4017),
    ("horse_55", "released"): (51.3410, 50.0394),
    ("horse_55", "paper"): (53.0003, 51.6398),
}
#: Full Weizmann Horse-327, as README.md reports it (two decimals).
FULL_HORSE = {"released": (51.77, 50.99), "paper": (53.58, 52.54)}


def load_protocol(folder: Path, subset: slice = slice(None)):
    """The paper protocol: shorter side to 128 px (nearest), 128 x 128 centre crop, masks likewise."""
    images, masks = [], []
    for path in sorted((folder / "images").iterdir())[subset]:
        images.append(to_tensor(center_crop(resize_shorter(read_image(path), SIZE, Image.NEAREST), SIZE)))
        gt = Image.open(folder / "masks" / f"{path.stem}.png").convert("L")
        masks.append(torch.from_numpy(np.asarray(center_crop(resize_shorter(gt, SIZE, Image.NEAREST), SIZE)) > 127))
    return torch.stack(images), torch.stack(masks)


@lru_cache(maxsize=None)
def subset_data(name: str):
    folder, subset = SUBSETS[name]
    return load_protocol(require_shared(folder), subset)


def scores(images: torch.Tensor, truth: torch.Tensor, config: IEMConfig) -> Tuple[float, float]:
    """(IoU, strict IoU) in %."""
    masks = iem.segment_batch(images, config, device="cpu").masks
    return tuple(100 * iem.metrics.mean_scores(masks, truth, c)["iou"] for c in ("inverse_max", "strict"))


def matches(got: Tuple[float, float], expected: Tuple[float, float]) -> bool:
    return all(abs(g - e) <= TOLERANCE for g, e in zip(got, expected))


@pytest.mark.parametrize("subset, preset", sorted(RECORDED))
def test_preset_gives_the_recorded_scores(subset: str, preset: str) -> None:
    got = scores(*subset_data(subset), IEMConfig.preset(preset))
    assert matches(got, RECORDED[subset, preset]), (got, RECORDED[subset, preset])


#: Plausible misreadings of the paper, each run with the released preset on GrabCut-50.
MISREADINGS = [
    {"lambda_": 0.002},  # the paper's lambda / 2 read the other way
    {"iterations": 100},
    {"smoothing_rule": "paper"},  # the prose's rule instead of the code's
]


@pytest.mark.parametrize("misreading", MISREADINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_the_check_rejects_misreadings_of_the_paper(misreading) -> None:
    got = scores(*subset_data("grabcut"), IEMConfig.released(**misreading))
    assert not matches(got, RECORDED["grabcut", "released"]), got


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(FULL_HORSE))
def test_preset_on_all_of_weizmann_horse(preset: str) -> None:
    images, truth = load_protocol(require_shared("weizmann_horse"))
    got = scores(images, truth, IEMConfig.preset(preset))
    assert matches(got, FULL_HORSE[preset]), got


if __name__ == "__main__":
    for key in sorted(RECORDED):
        iou, strict_iou = scores(*subset_data(key[0]), IEMConfig.preset(key[1]))
        print(f"    {key!r}: ({iou:.4f}, {strict_iou:.4f}),")
    # What the misreadings give (docs/testing.md quotes them): printed as comments, not recorded.
    for misreading in MISREADINGS:
        iou, strict_iou = scores(*subset_data("grabcut"), IEMConfig.released(**misreading))
        print(f"    # released on GrabCut-50 with {misreading}: ({iou:.2f}, {strict_iou:.2f})")
