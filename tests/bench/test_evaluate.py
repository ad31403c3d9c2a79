"""Scoring mask folders (the library behind ``iem eval``) against hand-computed values."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from masks_by_hand import COMPLEMENT, MEAN_SCORES, TOP_ROW, TRUTH
from PIL import Image

from iem.bench.evaluate import eval_csv, evaluate_masks, match_masks


def _save(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


@pytest.fixture
def folders(tmp_path: Path) -> tuple:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    _save(pred / "a.png", TOP_ROW)
    _save(pred / "sub" / "b.png", COMPLEMENT)
    _save(gt / "a.bmp", TRUTH)
    _save(gt / "sub" / "b.png", TRUTH)
    return pred, gt


def test_scores_by_hand(folders: tuple) -> None:
    report = evaluate_masks(*folders)
    assert report.problems == [] and report.resized == []
    assert [row.name for row in report.rows] == ["a", "sub/b"]
    for key, value in MEAN_SCORES.items():
        assert report.mean(key) == pytest.approx(value), key
    row = report.rows[0]
    assert (row.acc, row.iou, row.dice) == pytest.approx((0.75, 1 / 3, 0.5))


def test_prediction_resized_to_ground_truth(folders: tuple) -> None:
    pred, gt = folders
    big = np.kron(TOP_ROW, np.ones((2, 2), bool))  # the same mask at 8 x 8
    _save(pred / "a.png", big)
    report = evaluate_masks(pred, gt)
    assert report.resized == ["a"]
    assert report.mean("iou") == pytest.approx(MEAN_SCORES["iou"])
    rows = list(csv.DictReader(io.StringIO(eval_csv(report))))
    assert [r["resized"] for r in rows] == ["1", "0"]
    assert float(rows[0]["iou"]) == pytest.approx(1 / 3, abs=1e-6)


def test_unmatched_and_unreadable_files(folders: tuple) -> None:
    pred, gt = folders
    _save(pred / "extra.png", TRUTH)
    _save(gt / "missing.png", TRUTH)
    (pred / "sub" / "b.png").write_bytes(b"broken")
    report = evaluate_masks(pred, gt)
    assert [row.name for row in report.rows] == ["a"]
    assert len(report.problems) == 3
    joined = "\n".join(report.problems)
    assert "extra.png: no ground truth" in joined and "missing.png: no prediction" in joined and "b.png" in joined


def test_two_files_and_missing_folders(folders: tuple, tmp_path: Path) -> None:
    pred, gt = folders
    pairs, problems = match_masks(pred / "a.png", gt / "a.bmp")
    assert pairs == [("a", pred / "a.png", gt / "a.bmp")] and problems == []
    assert evaluate_masks(pred / "a.png", gt / "a.bmp").mean("iou") == pytest.approx(1 / 3)
    pairs, problems = match_masks(tmp_path / "nowhere", gt)
    assert pairs == [] and "nowhere: prediction folder not found" in problems[0]


def test_segment_output_folder(tmp_path: Path) -> None:
    pred, gt = tmp_path / "out", tmp_path / "gt"
    _save(pred / "a.mask.png", TOP_ROW)
    _save(pred / "a.inpaint.png", TRUTH)  # another output of iem segment: not a prediction
    _save(gt / "a.png", TRUTH)
    report = evaluate_masks(pred, gt)
    assert report.problems == [] and [row.name for row in report.rows] == ["a"]
    assert report.rows[0].iou == pytest.approx(1 / 3)
