"""Running methods over a dataset and scoring their masks against the ground truth.

Each method makes its own pass over the dataset, decoding images in batches (so memory stays
bounded); only the time spent inside the method is counted. Every image is scored with accuracy,
IoU and DICE in both conventions of :mod:`iem.metrics` (the paper's inverse-max and the strict
one), and the dataset figure is the mean over images (docs/reference.md, "Metrics").
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import torch
from tqdm import tqdm

from iem import metrics
from iem.bench.methods import Method, MethodError
from iem.config import IEMConfig
from iem.datasets.base import PairDataset, Sample, SampleError

#: Images handed to a method at once; IEM chunks further inside.
DEFAULT_BATCH_SIZE = 64

#: Score names of one image, in report order: the paper's convention, then the strict one.
SCORE_KEYS = ("acc", "iou", "dice", "strict_acc", "strict_iou", "strict_dice")

#: Conventions of :mod:`iem.metrics` -> prefix of the score names.
_CONVENTION_PREFIX = {"inverse_max": "", "strict": "strict_"}


@dataclass
class ImageScores:
    """Scores of one image, fractions in [0, 1]."""

    name: str
    acc: float
    iou: float
    dice: float
    strict_acc: float
    strict_iou: float
    strict_dice: float


@dataclass
class MethodResult:
    """One method's outcome on a dataset.

    Attributes:
        method: Row name.
        description: What the method is.
        seconds: Wall time spent inside the method (decoding and scoring excluded).
        rows: Per-image scores, in dataset order.
        failures: One line per image the method could not segment.
    """

    method: str
    description: str
    seconds: float = 0.0
    rows: List[ImageScores] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        """Number of images scored."""
        return len(self.rows)

    def mean(self, key: str) -> float:
        """Mean over images of one score (NaN when no image was scored)."""
        if not self.rows:
            return float("nan")
        return sum(getattr(row, key) for row in self.rows) / len(self.rows)

    def summary(self) -> Dict[str, object]:
        """The entry of ``results.json``: method, the six means, seconds, images."""
        entry: Dict[str, object] = {"method": self.method}
        entry.update({key: self.mean(key) for key in SCORE_KEYS})
        entry["seconds"] = self.seconds
        entry["images"] = self.images
        return entry


@dataclass
class FigureSample:
    """An image kept for the figure grid, with the masks of the figure methods."""

    name: str
    image: torch.Tensor
    truth: torch.Tensor
    masks: Dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class BenchResult:
    """Everything a benchmark produced.

    Attributes:
        dataset: Name of the dataset (its folder name).
        protocol: ``"paper"`` or ``"full"``.
        results: One entry per method, in run order.
        load_failures: One line per image that could not be decoded (skipped by every method).
        samples: Images kept for the figure, with their masks.
        configs: IEM settings of the methods that have them (method -> config), for figures.
    """

    dataset: str
    protocol: str
    results: List[MethodResult] = field(default_factory=list)
    load_failures: List[str] = field(default_factory=list)
    samples: List[FigureSample] = field(default_factory=list)
    configs: Dict[str, IEMConfig] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether some input could not be loaded or segmented."""
        return bool(self.load_failures) or any(r.failures for r in self.results)


def figure_indices(count: int, rows: int, seed: int) -> List[int]:
    """``rows`` distinct sample indices drawn with ``random.Random(seed)``, in dataset order."""
    rows = max(0, min(rows, count))
    return sorted(random.Random(seed).sample(range(count), rows))


def iter_batches(
    dataset: PairDataset, batch_size: int, on_failure: Callable[[str], None]
) -> Iterator[Tuple[List[int], List[Sample]]]:
    """Decode ``dataset`` into batches of equally sized samples (with their indices).

    A batch ends early when the image size changes (full-resolution protocol). Samples that
    fail to decode are passed to ``on_failure`` as one-line messages and skipped.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    indices: List[int] = []
    batch: List[Sample] = []
    for index, record in enumerate(dataset.records):
        try:
            sample = dataset.load(record)
        except SampleError as err:
            on_failure(str(err))
            continue
        if batch and (sample.image.shape != batch[0].image.shape or len(batch) == batch_size):
            yield indices, batch
            indices, batch = [], []
        indices.append(index)
        batch.append(sample)
    if batch:
        yield indices, batch


def score_batch(names: Sequence[str], masks: torch.Tensor, truths: torch.Tensor) -> List[ImageScores]:
    """Per-image scores of predicted masks (B, H, W) against ground truth (B, H, W), both conventions."""
    values: Dict[str, torch.Tensor] = {}
    for convention, prefix in _CONVENTION_PREFIX.items():
        for key, tensor in metrics.binary_scores(masks, truths, convention=convention).items():
            values[prefix + key] = tensor
    return [
        ImageScores(name, **{key: float(values[key][i]) for key in SCORE_KEYS}) for i, name in enumerate(names)
    ]


def _segment_checked(method: Method, images: torch.Tensor) -> torch.Tensor:
    masks = method.segment(images)
    b, _, h, w = images.shape
    if tuple(masks.shape) != (b, h, w):
        raise MethodError(f"{method.name} returned masks of shape {tuple(masks.shape)}, expected {(b, h, w)}")
    return masks.to(torch.bool).cpu()


def run_method(
    method: Method,
    dataset: PairDataset,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep: Optional[Set[int]] = None,
    kept: Optional[Dict[int, FigureSample]] = None,
    progress: bool = False,
    on_load_failure: Optional[Callable[[str], None]] = None,
) -> MethodResult:
    """Run one method over the dataset and score it.

    Args:
        method: The method.
        dataset: Images and ground truth.
        batch_size: Images per call of ``method.segment``.
        keep: Dataset indices of the figure's images.
        kept: Figure samples by dataset index, created on first sight of an image of ``keep``;
            this method's masks of those images are added to them.
        progress: Show a tqdm bar on stderr.
        on_load_failure: Receives a one-line message for each image that cannot be decoded.

    A batch the method fails on (:class:`MethodError`) is retried one image at a time, so one
    bad image costs only itself; each failure becomes a line of ``result.failures``.
    """
    result = MethodResult(method.name, method.description)
    keep = keep or set()
    kept = kept if kept is not None else {}
    bar = tqdm(total=len(dataset), desc=method.name, unit="img", disable=not progress, leave=False)
    with bar:
        for indices, samples in iter_batches(dataset, batch_size, on_load_failure or (lambda message: None)):
            groups = [(indices, samples)]
            while groups:
                group_indices, group = groups.pop(0)
                images = torch.stack([s.image for s in group])
                start = time.perf_counter()
                try:
                    masks = _segment_checked(method, images)
                except MethodError as err:
                    result.seconds += time.perf_counter() - start
                    if len(group) > 1:
                        groups = [([i], [s]) for i, s in zip(group_indices, group)] + groups
                    else:
                        result.failures.append(f"{group[0].name}: {method.name}: {err}")
                        bar.update(1)
                    continue
                result.seconds += time.perf_counter() - start
                truths = torch.stack([s.mask for s in group])
                result.rows.extend(score_batch([s.name for s in group], masks, truths))
                for index, sample, mask in zip(group_indices, group, masks):
                    if index in keep:
                        entry = kept.setdefault(index, FigureSample(sample.name, sample.image, sample.mask))
                        entry.masks[method.name] = mask
                bar.update(len(group))
    return result


def run_benchmark(
    dataset: PairDataset,
    methods: Sequence[Method],
    dataset_name: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    figure_rows: int = 0,
    figure_methods: Sequence[str] = (),
    seed: int = 0,
    progress: bool = False,
    on_result: Optional[Callable[[BenchResult], None]] = None,
) -> BenchResult:
    """Run every method over ``dataset``.

    Args:
        dataset: Images and ground truth under a protocol.
        methods: Built methods (:func:`iem.bench.methods.build_method`), run in order.
        dataset_name: Name written in reports.
        batch_size: Images per call of a method.
        figure_rows: How many randomly drawn images (seeded by ``seed``) to keep for the figure.
        figure_methods: Methods whose masks the figure shows (names among ``methods``).
        seed: Seed of the figure's draw.
        progress: Show tqdm bars on stderr.
        on_result: Called with the partial result after each method (e.g. to save it).
    """
    bench = BenchResult(dataset_name, dataset.protocol)
    failures_seen: Set[str] = set()

    def load_failure(message: str) -> None:
        if message not in failures_seen:
            failures_seen.add(message)
            bench.load_failures.append(message)

    chosen = figure_indices(len(dataset), figure_rows, seed)
    kept: Dict[int, FigureSample] = {}
    shown = set(figure_methods)
    for method in methods:
        if method.config is not None:
            bench.configs[method.name] = method.config
        result = run_method(
            method,
            dataset,
            batch_size=batch_size,
            keep=set(chosen) if method.name in shown else set(),
            kept=kept,
            progress=progress,
            on_load_failure=load_failure,
        )
        bench.results.append(result)
        if on_result is not None:
            on_result(bench)
    bench.samples = [kept[i] for i in chosen if i in kept]
    return bench
