"""Several phase-2 runs side by side: pseudo-label source, epochs, seeds, halves, both IEM baselines.

Each run is an output folder of ``python -m iem.segnet.experiment ROOT --train-on COLLECTION``
(``model.pt``, ``per_image.csv``, ``results.json``). The summary reads what the runs wrote (no
computation is repeated) and reports, on the whole labelled set and on its two halves (the even
half where choices are made, the odd half only reported; :data:`iem.segnet.experiment.HALVES`):

- each run: the IEM that made its pseudo-labels (the preset recorded in its checkpoint), IEM
  with the paper's settings, the network and the refined network, IoU in both conventions, and
  the network's gain over each IEM;
- each recipe that was run with several seeds: the mean, range and standard deviation of the
  network's IoU over the seeds;
- whether the paper's claim holds for a run: the network at least
  :data:`TARGET_POINTS` IoU points above the IEM of its labels, in both conventions.

An IEM row does not depend on the training, so a run that did not score one (e.g. the `paper`
row of a run trained on `best` labels) takes it from another run scored on the same images.

Run::

    python -m iem.segnet.summary runs/flowers-paper runs/flowers-paper-e4 runs/flowers-best --out summary.md
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import click

from iem.bench.report import PER_IMAGE_CSV, RESULTS_JSON, read_per_image_csv, read_results_json
from iem.bench.runner import BenchResult, MethodResult
from iem.config import PRESETS, IEMConfig
from iem.io.write import write_text
from iem.segnet.checkpoint import CheckpointError, read_checkpoint
from iem.segnet.experiment import HALVES, MODEL_FILE, half_results
from iem.segnet.train import mean_epoch_seconds

PathLike = Union[str, os.PathLike]

#: The paper's gain of IEM+SegNet over IEM on Flowers is 2.1 IoU points (Table 1); the target
#: asks for at least this many points in both conventions.
TARGET_POINTS = 2.0
#: The method rows of an experiment besides IEM's.
SEGNET, REFINED = "segnet", "segnet+refine"
#: IEM's baseline with the paper's settings, compared with every run whatever its labels.
PAPER = "paper"
#: Parts of the labelled set: the whole, then the halves.
PARTS = ("all",) + HALVES
_PART_TITLES = {
    "all": "All images",
    HALVES[0]: f"{HALVES[0].capitalize()} half (choices made here)",
    HALVES[1]: f"{HALVES[1].capitalize()} half (reported only)",
}
#: Score names of the two conventions: the paper's inverse-max IoU and the strict one.
IOU_KEYS = ("iou", "strict_iou")


class SummaryError(click.ClickException):
    """A run folder cannot be summarised; the message names the file and the reason."""


@dataclass
class Run:
    """What one experiment folder holds.

    Attributes:
        folder: The output folder.
        labels: Preset of the IEM that made the pseudo-labels (:func:`preset_of`).
        settings: The training recipe (``TrainSettings.to_dict()``).
        epochs_done: Epochs the checkpoint finished.
        epoch_seconds: Wall and CPU seconds of each timed epoch (``TrainResult.epoch_seconds``).
        results: Per-image scores by method, in the order the experiment ran them.
        dataset: Name of the labelled set.
    """

    folder: Path
    labels: str
    settings: Dict[str, Any]
    epochs_done: int
    epoch_seconds: List[Dict[str, float]]
    results: Dict[str, MethodResult]
    dataset: str

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def recipe(self) -> Tuple[Tuple[str, Any], ...]:
        """Everything that defines the run but the seed (runs differing only there are repeats)."""
        return (("labels", self.labels),) + tuple(sorted((k, v) for k, v in self.settings.items() if k != "seed"))

    def part(self, method: str, part: str) -> Optional[MethodResult]:
        """One method's scores on ``part`` of the images; None when the run has no such row."""
        return _on_part(self.results.get(method), self, part)


def preset_of(iem_config: Mapping[str, Any]) -> str:
    """The preset whose settings are ``iem_config`` (as stored in a checkpoint), else the preset
    with the fewest differing fields followed by them (``"best, grabcut_reject_empty=False"``):
    labels made by a preset of an earlier version stay apart from today's preset and from each
    other, so that their runs are not taken for repeats. ``"custom"`` for unreadable settings.

    A field added to :class:`IEMConfig` after the checkpoint was written takes its default, which
    leaves the paper's method unchanged, so a run of ``paper`` keeps its preset's name.
    """
    try:
        config = IEMConfig.from_dict(iem_config).to_dict()
    except (TypeError, ValueError):
        return "custom"
    differences = {}
    for name in PRESETS:
        preset = IEMConfig.preset(name).to_dict()
        differences[name] = [f"{key}={value}" for key, value in config.items() if preset[key] != value]
    nearest = min(PRESETS, key=lambda name: len(differences[name]))  # ties: the first in PRESETS
    return ", ".join([nearest, *differences[nearest]])


def read_run(folder: PathLike) -> Run:
    """Read an experiment's output folder.

    Raises:
        SummaryError: a file is missing or unreadable, or the checkpoint lacks the IEM settings.
    """
    folder = Path(folder)
    try:
        state = read_checkpoint(folder / MODEL_FILE)
        results = read_per_image_csv(folder / PER_IMAGE_CSV)
        dataset = str(read_results_json(folder / RESULTS_JSON)["dataset"])
    except (CheckpointError, OSError, ValueError, KeyError, TypeError) as err:
        raise SummaryError(f"{folder}: not a finished experiment ({err})") from None
    iem_config = state.get("meta", {}).get("iem_config")
    if not isinstance(iem_config, dict) or not isinstance(state.get("settings"), dict):
        raise SummaryError(f"{folder / MODEL_FILE}: the checkpoint records no IEM settings or recipe")
    return Run(
        folder, preset_of(iem_config), dict(state["settings"]), int(state.get("epoch", 0)),
        [dict(x) for x in state.get("epoch_seconds", [])], {r.method: r for r in results}, dataset,
    )


def _names(result: MethodResult) -> List[str]:
    return [row.name for row in result.rows]


def baseline(runs: Sequence[Run], run: Run, method: str) -> Optional[MethodResult]:
    """IEM's row ``method`` for ``run``: its own, else the first other run's scored on the same images."""
    own = run.results.get(method)
    if own is not None:
        return own
    images = _names(next(iter(run.results.values())))
    for other in runs:
        found = other.results.get(method)
        if found is not None and _names(found) == images:
            return found
    return None


def labels_baseline(runs: Sequence[Run], run: Run) -> Optional[MethodResult]:
    """IEM of ``run``'s pseudo-labels: its row named after them, else the run's only IEM row (the
    experiment scores the IEM that made the labels, under the preset's name of its day), else
    another run's row of that name scored on the same images."""
    own = [result for method, result in run.results.items() if method not in (SEGNET, REFINED)]
    if run.labels not in run.results and len(own) == 1:
        return own[0]
    return baseline(runs, run, run.labels)


def _on_part(result: Optional[MethodResult], run: Run, part: str) -> Optional[MethodResult]:
    if result is None or part == "all":
        return result
    return half_results(BenchResult(run.dataset, "paper", results=[result]), part)[0]


def _points(result: Optional[MethodResult], key: str) -> float:
    return 100 * result.mean(key) if result is not None and result.rows else math.nan


def _pair(values: Sequence[float], signed: bool = False) -> str:
    if any(math.isnan(v) for v in values):
        return "-"
    return " / ".join(f"{v:+.1f}" if signed else f"{v:.1f}" for v in values)


def gains(runs: Sequence[Run], run: Run, part: str = "all") -> Dict[str, Tuple[float, float]]:
    """The network's IoU minus IEM's (labels' preset, and ``paper``), in points, both conventions."""
    segnet = run.part(SEGNET, part)
    out = {}
    for which, reference in (("labels", labels_baseline(runs, run)), (PAPER, baseline(runs, run, PAPER))):
        reference = _on_part(reference, run, part)
        out[which] = tuple(_points(segnet, k) - _points(reference, k) for k in IOU_KEYS)
    return out


def target_met(runs: Sequence[Run], run: Run) -> bool:
    """Whether the network is :data:`TARGET_POINTS` above the IEM of its labels in both conventions
    (False when that IEM was not scored)."""
    return all(g >= TARGET_POINTS for g in gains(runs, run)["labels"])


def _recipe_text(settings: Mapping[str, Any]) -> str:
    return (
        f"{settings.get('schedule')} lr {settings.get('learning_rate')}, batch {settings.get('batch_size')}, "
        f"{settings.get('precision')}, top {settings.get('top_k') or settings.get('top_fraction')}"
        f" by {settings.get('selection', 'error')}"
    )


def _run_table(runs: Sequence[Run], part: str) -> List[str]:
    lines = [
        "| run | labels | epochs | seed | IEM (labels) | IEM `paper` | IEM+SegNet | IEM+SegNet+refine "
        "| SegNet - IEM (labels) | SegNet - IEM `paper` |" + (" target | s per epoch (wall / CPU) |" if part == "all" else ""),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---|---:|" if part == "all" else ""),
    ]
    for run in runs:
        cells = [
            _pair([_points(_on_part(labels_baseline(runs, run), run, part), k) for k in IOU_KEYS]),
            _pair([_points(_on_part(baseline(runs, run, PAPER), run, part), k) for k in IOU_KEYS]),
            _pair([_points(run.part(SEGNET, part), k) for k in IOU_KEYS]),
            _pair([_points(run.part(REFINED, part), k) for k in IOU_KEYS]),
        ]
        gain = gains(runs, run, part)
        cells += [_pair(gain["labels"], signed=True), _pair(gain[PAPER], signed=True)]
        if part == "all":
            known = not any(math.isnan(g) for g in gains(runs, run)["labels"])
            cells.append(("met" if target_met(runs, run) else "not met") if known else "-")
            cells.append("{:.0f} / {:.0f}".format(*mean_epoch_seconds(run.epoch_seconds)) if run.epoch_seconds else "-")
        lines.append(
            f"| {run.name} | `{run.labels}` | {run.epochs_done} | {run.settings.get('seed')} | " + " | ".join(cells) + " |"
        )
    return lines


def seed_groups(runs: Sequence[Run]) -> List[List[Run]]:
    """Runs that differ only in their seed, grouped, in the order of their first run."""
    groups: Dict[Tuple[Tuple[str, Any], ...], List[Run]] = {}
    for run in runs:
        groups.setdefault(run.recipe, []).append(run)
    return list(groups.values())


def spread(values: Sequence[float]) -> Tuple[float, float, float, float]:
    """Mean, smallest, largest and sample standard deviation (NaN for fewer than two values)."""
    deviation = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), min(values), max(values), deviation


def _seed_table(runs: Sequence[Run]) -> List[str]:
    lines = [
        "| labels | epochs | recipe | seeds | IEM+SegNet IoU: mean (range), sd | strict IoU: mean (range), sd "
        "| SegNet - IEM (labels): mean |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for group in seed_groups(runs):
        first = group[0]
        cells = []
        for key in IOU_KEYS:
            values = [_points(run.part(SEGNET, "all"), key) for run in group]
            mean, low, high, deviation = spread(values)
            sd = "-" if math.isnan(deviation) else f"{deviation:.1f}"
            cells.append(f"{mean:.1f} ({low:.1f} to {high:.1f}), {sd}")
        mean_gain = [statistics.fmean(gains(runs, run)["labels"][i] for run in group) for i in range(len(IOU_KEYS))]
        seeds = ", ".join(str(run.settings.get("seed")) for run in group)
        lines.append(
            f"| `{first.labels}` | {first.settings.get('epochs')} | {_recipe_text(first.settings)} | {seeds} | "
            + " | ".join(cells) + f" | {_pair(mean_gain, signed=True)} |"
        )
    return lines


def summary_markdown(runs: Sequence[Run]) -> str:
    """The summary page: a table per part of the images, the seeds' spread, the best on the even half."""
    lines = [
        f"Phase-2 runs scored on {runs[0].dataset}: IoU in % (the paper's inverse-max convention / strict), "
        "mean over images; gains in points. `labels`: the IEM preset that made the pseudo-labels; "
        f"target: IEM+SegNet at least {TARGET_POINTS:g} points above that IEM in both conventions.",
        "",
    ]
    for part in PARTS:
        lines += [f"{_PART_TITLES[part]}:", "", *_run_table(runs, part), ""]
    lines += ["Seeds (all images; runs that differ only in their seed):", "", *_seed_table(runs), ""]
    scored = [run for run in runs if run.part(SEGNET, HALVES[0]) is not None]
    if scored:
        best = max(scored, key=lambda run: _points(run.part(SEGNET, HALVES[0]), "iou"))
        lines.append(
            f"Highest IEM+SegNet IoU on the {HALVES[0]} half: {best.name} "
            f"({_pair([_points(best.part(SEGNET, HALVES[0]), k) for k in IOU_KEYS])})."
        )
    return "\n".join(lines) + "\n"


def summarize(folders: Sequence[PathLike]) -> str:
    """Read the runs and return :func:`summary_markdown`.

    Raises:
        SummaryError: a folder is not a finished experiment, or the runs were scored on
            different labelled sets.
    """
    runs = [read_run(folder) for folder in folders]
    datasets = sorted({run.dataset for run in runs})
    if len(datasets) > 1:
        raise SummaryError(f"the runs were scored on different labelled sets ({', '.join(datasets)})")
    return summary_markdown(runs)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the page here.")
def main(runs: Tuple[Path, ...], out: Optional[Path]) -> None:
    """Phase-2 experiment folders side by side: labels, epochs, seeds, halves, IEM baselines.

    \b
    Examples:
      python -m iem.segnet.summary runs/flowers-paper runs/flowers-paper-e4
      python -m iem.segnet.summary runs/flowers-* --out runs/summary.md
    """
    text = summarize(runs)
    if out is not None:
        write_text(out, text)
    click.echo(text, nl=False)


if __name__ == "__main__":
    main()
