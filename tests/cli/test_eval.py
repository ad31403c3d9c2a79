"""``iem eval`` end to end on tiny masks whose scores are computed by hand.

Ground truth: the top-left 2 x 2 block of a 4 x 4 image. Prediction ``a`` is the top row:
IoU 2/6, DICE 4/8, accuracy 12/16 in both conventions. Prediction ``b`` is the complement of the
truth: 0 / 0 / 0 strictly, 1 / 1 / 1 with the paper's inverse-max rule. Means: inverse-max
87.50 / 66.67 / 75.00, strict 37.50 / 16.67 / 25.00 (acc / IoU / DICE, %).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from iem.cli import main


def _save(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


@pytest.fixture
def folders(tmp_path: Path) -> tuple:
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True
    top_row = np.zeros((4, 4), bool)
    top_row[0] = True
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    _save(pred / "a.png", top_row)
    _save(pred / "b.png", ~truth)
    _save(gt / "a.png", truth)
    _save(gt / "b.png", truth)
    return pred, gt


def _summary_row(output: str, label: str) -> list:
    line = next(line for line in output.splitlines() if line.startswith(label))
    return [float(v) for v in line[len(label) :].split()[-3:]]


def test_summary_and_csv(folders: tuple, tmp_path: Path) -> None:
    pred, gt = folders
    csv_path = tmp_path / "scores.csv"
    result = CliRunner().invoke(main, ["eval", str(pred), str(gt), "--csv", str(csv_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "images: 2" in result.output
    assert _summary_row(result.output, "inverse-max") == pytest.approx([87.5, 66.67, 75.0], abs=0.01)
    assert _summary_row(result.output, "strict") == pytest.approx([37.5, 16.67, 25.0], abs=0.01)
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["name"] for r in rows] == ["a", "b"]
    assert float(rows[0]["iou"]) == pytest.approx(1 / 3, abs=1e-6)
    assert float(rows[1]["strict_dice"]) == 0.0 and float(rows[1]["dice"]) == 1.0


def test_mismatches_one_line_each_exit_1(folders: tuple, tmp_path: Path) -> None:
    pred, gt = folders
    _save(pred / "extra.png", np.ones((4, 4), bool))
    _save(gt / "lonely.png", np.ones((4, 4), bool))
    result = CliRunner().invoke(main, ["eval", str(pred), str(gt), "--csv", str(tmp_path / "s.csv"), "-q"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any("extra.png: no ground truth" in e for e in errors) and any("lonely.png: no prediction" in e for e in errors)
    assert "Traceback" not in result.output
    assert "images: 2" in result.output  # the matched pairs are still scored


def test_resized_predictions_counted(folders: tuple, tmp_path: Path) -> None:
    pred, gt = folders
    top_row = np.zeros((4, 4), bool)
    top_row[0] = True
    _save(pred / "a.png", np.kron(top_row, np.ones((3, 3), bool)))  # 12 x 12
    result = CliRunner().invoke(main, ["eval", str(pred), str(gt), "--csv", str(tmp_path / "s.csv"), "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: 1 prediction(s) resized" in result.output
    assert _summary_row(result.output, "inverse-max") == pytest.approx([87.5, 66.67, 75.0], abs=0.01)


def test_nothing_to_score_and_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "p"), str(tmp_path / "g"), "--csv", str(tmp_path / "s.csv")])
    assert result.exit_code == 1 and "no prediction could be scored" in result.output
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "absent"), str(tmp_path / "g")])
    assert result.exit_code == 2


def test_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output and "iem eval masks/" in result.output
