"""The summary of several phase-2 runs: baselines, gains, halves, seeds and the +2 target."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import pytest
from click.testing import CliRunner

from iem import IEMConfig
from iem.bench.report import write_per_image_csv, write_results_json
from iem.bench.runner import BenchResult, ImageScores, MethodResult
from iem.segnet.checkpoint import read_checkpoint, save_checkpoint
from iem.segnet.summary import (
    SummaryError,
    gains,
    main,
    preset_of,
    read_run,
    seed_groups,
    spread,
    summarize,
    target_met,
)
from iem.segnet.train import TrainSettings

NAMES = ["image_0001", "image_0002", "image_0003", "image_0004"]


def _rows(iou: Sequence[float], strict: Optional[Sequence[float]] = None) -> list:
    strict = iou if strict is None else strict
    return [ImageScores(name, 0.9, a, 0.8, 0.9, b, 0.8) for name, a, b in zip(NAMES, iou, strict)]


def _write_run(
    folder: Path,
    methods: Dict[str, list],
    preset: str = "paper",
    seed: int = 0,
    epochs: int = 1,
    dataset: str = "flowers17",
    overrides: Optional[Dict[str, Any]] = None,
) -> Path:
    folder.mkdir(parents=True)
    config = IEMConfig.preset(preset, **(overrides or {})).to_dict()
    state = {
        "settings": TrainSettings(epochs=epochs, seed=seed, schedule="onecycle").to_dict(),
        "epoch": epochs,
        "epoch_seconds": [{"wall": 60.0 * (seed + 1), "cpu": 30.0}] * epochs,
        "meta": {"iem_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}},
    }
    save_checkpoint(folder / "model.pt", state)
    results = [MethodResult(name, "", rows=rows) for name, rows in methods.items()]
    write_per_image_csv(results, folder / "per_image.csv")
    write_results_json(BenchResult(dataset, "paper", results=results), folder / "results.json")
    return folder


@pytest.fixture()
def runs(tmp_path: Path) -> Dict[str, Path]:
    paper = _rows([0.6, 0.7, 0.8, 0.5], [0.6, 0.7, 0.8, 0.3])  # means 0.65 / 0.60
    return {
        # +7.5 IoU, +2.5 strict over IEM: target met
        "p0": _write_run(tmp_path / "p0", {
            "paper": paper,
            "segnet": _rows([0.7, 0.7, 0.9, 0.6], [0.7, 0.7, 0.7, 0.4]),
            "segnet+refine": _rows([0.6, 0.6, 0.6, 0.6]),
        }),
        # the same recipe with seed 1: +2.5 IoU but -7.5 strict: not met
        "p1": _write_run(tmp_path / "p1", {"segnet": _rows([0.7, 0.7, 0.8, 0.5], [0.6, 0.6, 0.6, 0.3])}, seed=1),
        # best labels, its own IEM row, no paper row
        "b0": _write_run(tmp_path / "b0", {
            "best": _rows([0.7, 0.7, 0.8, 0.7]),
            "segnet": _rows([0.9, 0.7, 0.8, 0.7]),
        }, preset="best", epochs=4),
    }


def test_the_preset_of_the_labels_is_read_from_the_checkpoint() -> None:
    assert preset_of(IEMConfig.paper().to_dict()) == "paper"
    assert preset_of(IEMConfig.best().to_dict()) == "best"
    # other settings: the nearest preset and what differs, so that label sources stay apart
    assert preset_of(IEMConfig.paper(iterations=3).to_dict()) == "paper, iterations=3"
    assert preset_of(IEMConfig.best(grabcut_reject_empty=False).to_dict()) == "best, grabcut_reject_empty=False"
    earlier = IEMConfig.paper(grabcut=True, grabcut_photo_size=384).to_dict()
    assert preset_of(earlier) == "paper, grabcut=True, grabcut_photo_size=384"
    older = {k: v for k, v in IEMConfig.paper().to_dict().items() if k != "grabcut_box_rule"}
    assert preset_of(older) == "paper"  # written before a field was added: its default applies
    assert preset_of({**IEMConfig.paper().to_dict(), "no_such_field": 1}) == "custom"


def test_a_run_folder_reads_back(runs: Dict[str, Path]) -> None:
    run = read_run(runs["b0"])
    assert run.labels == "best" and run.epochs_done == 4 and run.settings["seed"] == 0
    assert run.epoch_seconds == [{"wall": 60.0, "cpu": 30.0}] * 4
    assert list(run.results) == ["best", "segnet"] and run.dataset == "flowers17"
    assert [row.name for row in run.part("segnet", "odd").rows] == NAMES[1::2]


def test_gains_against_both_iem_rows_whole_and_halves(runs: Dict[str, Path]) -> None:
    p0, p1, b0 = (read_run(runs[k]) for k in ("p0", "p1", "b0"))
    every = [p0, p1, b0]
    assert gains(every, p0)["labels"] == pytest.approx((7.5, 2.5))
    # even half: images 1 and 3: IEM 0.7 / 0.7, network 0.8 / 0.7
    assert gains(every, p0, "even")["paper"] == pytest.approx((10.0, 0.0))
    # odd half: images 2 and 4: IEM 0.6 / 0.5, network 0.65 / 0.55
    assert gains(every, p0, "odd")["labels"] == pytest.approx((5.0, 5.0))
    # a run without the row takes it from a run scored on the same images
    assert gains(every, p1)["paper"] == pytest.approx((2.5, -7.5))
    # best labels: compared with best's IEM (0.725) and with paper's (0.65 / 0.60, from p0)
    assert gains(every, b0)["labels"] == pytest.approx((5.0, 5.0))
    assert gains(every, b0)["paper"] == pytest.approx((12.5, 17.5))


def test_the_target_needs_two_points_in_both_conventions(runs: Dict[str, Path]) -> None:
    every = [read_run(runs[k]) for k in ("p0", "p1", "b0")]
    assert [target_met(every, run) for run in every] == [True, False, True]


def test_a_missing_baseline_is_a_dash_not_a_number(runs: Dict[str, Path]) -> None:
    alone = read_run(runs["p1"])
    assert all(math.isnan(g) for g in gains([alone], alone)["paper"])
    assert "| p1 | `paper` | 1 | 1 | - | - | 67.5 / 52.5 | - | - | - | - | 120 / 30 |" in summarize([runs["p1"]])


def test_labels_of_an_earlier_preset_use_the_runs_own_iem_row_and_are_no_repeat(runs: Dict[str, Path], tmp_path: Path) -> None:
    """A run on labels of an earlier ``best`` (its IEM row scored under the name ``best``) is
    compared with that row, not with today's ``best``, and is not a seed of a run on today's."""
    older = _write_run(tmp_path / "b-older", {
        "best": _rows([0.6, 0.6, 0.6, 0.6]),
        "segnet": _rows([0.9, 0.7, 0.8, 0.7]),
    }, preset="best", epochs=4, overrides={"grabcut_reject_empty": False})
    every = [read_run(runs["b0"]), read_run(older)]
    assert every[1].labels == "best, grabcut_reject_empty=False"
    assert gains(every, every[1])["labels"] == pytest.approx((17.5, 17.5))  # 0.775 against its own 0.6
    assert [[run.name for run in group] for group in seed_groups(every)] == [["b0"], ["b-older"]]


def test_seeds_are_grouped_with_mean_range_and_deviation(runs: Dict[str, Path]) -> None:
    every = [read_run(runs[k]) for k in ("p0", "p1", "b0")]
    assert [[run.name for run in group] for group in seed_groups(every)] == [["p0", "p1"], ["b0"]]
    mean, low, high, sd = spread([72.5, 67.5])
    assert (mean, low, high) == (70.0, 67.5, 72.5) and sd == pytest.approx(math.sqrt(12.5))
    assert math.isnan(spread([1.0])[3])
    text = summarize([runs["p0"], runs["p1"], runs["b0"]])
    assert "| 0, 1 | 70.0 (67.5 to 72.5), 3.5 | 57.5 (52.5 to 62.5), 7.1 | +5.0 / -2.5 |" in text
    assert "| `best` | 4 |" in text and "| 0 | 77.5 (77.5 to 77.5), - |" in text
    assert "| onecycle lr 0.001, batch 128, fp32, top 0.8 by error |" in text


def test_a_run_ranked_by_agreement_is_another_recipe(runs: Dict[str, Path], tmp_path: Path) -> None:
    rows = _rows([0.6, 0.7, 0.8, 0.5])
    other = _write_run(tmp_path / "a1", {"paper": rows, "segnet": rows}, seed=1)
    state = read_checkpoint(other / "model.pt")
    state["settings"]["selection"] = "agreement"
    save_checkpoint(other / "model.pt", state)
    groups = seed_groups([read_run(runs["p0"]), read_run(other)])
    assert [[run.name for run in group] for group in groups] == [["p0"], ["a1"]]
    assert "top 0.8 by agreement" in summarize([runs["p0"], other])


def test_the_page_has_every_part_and_names_the_best_on_the_even_half(runs: Dict[str, Path]) -> None:
    text = summarize([runs["p0"], runs["b0"]])
    for title in ("All images:", "Even half (choices made here):", "Odd half (reported only):"):
        assert title in text
    assert "| p0 | `paper` | 1 | 0 | 65.0 / 60.0 | 65.0 / 60.0 | 72.5 / 62.5 | 60.0 / 60.0 | +7.5 / +2.5 | +7.5 / +2.5 | met |" in text
    assert "| b0 | `best` | 4 | 0 | 72.5 / 72.5 | 65.0 / 60.0 | 77.5 / 77.5 | - | +5.0 / +5.0 | +12.5 / +17.5 | met |" in text
    # even half (images 1 and 3): p0's network 80.0 IoU, b0's 85.0
    assert "| p0 | `paper` | 1 | 0 | 70.0 / 70.0 | 70.0 / 70.0 | 80.0 / 70.0 |" in text
    assert "Highest IEM+SegNet IoU on the even half: b0 (85.0 / 85.0)." in text


def test_the_command_writes_the_page_and_refuses_a_folder_that_is_no_run(runs: Dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "summary.md"
    result = CliRunner().invoke(main, [str(runs["p0"]), str(runs["b0"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, [str(runs["p0"]), str(empty)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "empty: not a finished experiment" in lines[0] and "no such checkpoint file" in lines[0]


def test_runs_on_different_labelled_sets_are_refused(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", {"segnet": _rows([0.5] * 4)})
    b = _write_run(tmp_path / "b", {"segnet": _rows([0.5] * 4)}, dataset="horses")
    with pytest.raises(SummaryError, match="different labelled sets"):
        summarize([a, b])
