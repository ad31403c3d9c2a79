"""Report files: results.json's exact shape, the Markdown table, the per-image CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from iem.bench.report import (
    markdown_report,
    per_image_csv,
    read_per_image_csv,
    read_results_json,
    write_per_image_csv,
    write_results_json,
)
from iem.bench.runner import BenchResult, ImageScores, MethodResult

RESULT_KEYS = ["method", "acc", "iou", "dice", "strict_acc", "strict_iou", "strict_dice", "seconds", "images"]


def _bench() -> BenchResult:
    rows = [ImageScores("a", 0.75, 1 / 3, 0.5, 0.75, 1 / 3, 0.5), ImageScores("b", 1.0, 1.0, 1.0, 0.0, 0.0, 0.0)]
    result = MethodResult("paper", "IEM, the paper's defaults", seconds=2.0, rows=rows)
    empty = MethodResult("broken", "fails", failures=["a: broken: no"])
    return BenchResult("tiny", "paper", results=[result, empty], load_failures=["x.png: corrupt"])


def test_results_json_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.json"
    write_results_json(_bench(), path)
    data = read_results_json(path)
    assert list(data) == ["dataset", "protocol", "results"]
    assert data["dataset"] == "tiny" and data["protocol"] == "paper"
    first = data["results"][0]
    assert list(first) == RESULT_KEYS
    assert first["acc"] == pytest.approx(0.875) and first["strict_iou"] == pytest.approx(1 / 6)
    assert first["seconds"] == 2.0 and first["images"] == 2
    assert data["results"][1]["images"] == 0
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary left behind


def test_method_without_scores_gives_null_not_nan(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results_json(_bench(), path)

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["results"][1]["iou"] is None and data["results"][1]["images"] == 0


def test_markdown_table() -> None:
    text = markdown_report(_bench(), command="iem bench tiny --out x", figure="figure.png")
    assert "| paper | 87.5 | 66.7 | 75.0 | 37.5 | 16.7 | 25.0 | 2.0 | 1 |" in text
    assert "| broken | - | - | - | - | - | - | 0.0 | - |" in text
    assert "iem bench tiny --out x" in text and "![samples](figure.png)" in text
    assert "- x.png: corrupt" in text and "- a: broken: no" in text


def test_per_image_csv() -> None:
    rows = list(csv.reader(io.StringIO(per_image_csv(_bench().results))))
    assert rows[0] == ["method", "name", "acc", "iou", "dice", "strict_acc", "strict_iou", "strict_dice"]
    assert rows[1][:2] == ["paper", "a"] and float(rows[1][3]) == pytest.approx(1 / 3, abs=1e-6)
    assert len(rows) == 3


def test_per_image_csv_reads_back_method_by_method(tmp_path: Path) -> None:
    bench = _bench()
    second = MethodResult("segnet", "", rows=[ImageScores("a", 0.5, 0.25, 0.4, 0.5, 0.25, 0.4)])
    path = tmp_path / "per_image.csv"
    write_per_image_csv([bench.results[0], second], path)
    back = read_per_image_csv(path)
    assert [r.method for r in back] == ["paper", "segnet"]
    assert [row.name for row in back[0].rows] == ["a", "b"]
    # six digits are written: the means agree to that
    assert back[0].mean("iou") == pytest.approx(2 / 3, abs=1e-6) and back[0].mean("strict_acc") == pytest.approx(0.375)
    assert back[1].rows[0].dice == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("method,name,iou\n", "not a per-image score file"),
        ("method,name,acc,iou,dice,strict_acc,strict_iou,strict_dice\npaper,a,1,1\n", "line 2: 4 fields, not 8"),
        ("method,name,acc,iou,dice,strict_acc,strict_iou,strict_dice\npaper,a,1,x,1,1,1,1\n", "line 2: could not convert"),
    ],
)
def test_a_malformed_per_image_csv_is_one_message_naming_the_file(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"scores.csv.*{reason}"):
        read_per_image_csv(path)
