"""What the benchmark scripts share: data, timers, CPU-load readings, agreement, JSON output."""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from PIL import Image

from iem.imaging import center_crop, resize_shorter, to_tensor
from iem.io.write import write_text

REPO = Path(__file__).resolve().parents[1]
#: Where the scripts write their JSON by default.
RESULTS_DIR = REPO / "benchmarks" / "results"
#: The paper's working resolution (section 4.2).
SIZE = 128
#: Number of images of the paper's Flowers evaluation set (ReDO's ``trnid``).
PAPER_IMAGES = 1020
#: Data sets whose images build the benchmark batches, in this order.
DATASETS = ("weizmann_horse", "grabcut")
#: Environment variables that change how the CPU threads or the engine behave, recorded with every result.
RECORDED_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "IEM_NO_NUMBA", "IEM_NUMBA", "IEM_NO_MALLOPT")
#: Image file extensions found in those data sets.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def data_dir(explicit: Optional[str] = None) -> Path:
    """The folder holding ``weizmann_horse/`` and ``grabcut/``.

    Looked up in order: ``explicit``, ``$IEM_DATA``, ``<repo>/../shared/data``,
    ``<repo>/shared/data`` and ``<repo>/.bench_data`` (a copy carried to another machine).

    Raises:
        FileNotFoundError: none of them holds ``weizmann_horse/images``.
    """
    candidates = [explicit, os.environ.get("IEM_DATA"), REPO.parent / "shared" / "data", REPO / "shared" / "data", REPO / ".bench_data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "weizmann_horse" / "images").is_dir():
            return Path(candidate)
    raise FileNotFoundError(
        "no data folder with weizmann_horse/images: pass --data or set IEM_DATA "
        f"(looked in {[str(c) for c in candidates if c]})"
    )


def image_paths(root: Path, dataset: str) -> List[Path]:
    """The sorted image files of one data set."""
    folder = root / dataset / "images"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def paper_tensor(path: Path, size: int = SIZE) -> torch.Tensor:
    """One image under the paper protocol: nearest resize of the shorter side, center crop, [-1, 1]."""
    with Image.open(path) as image:
        picture = image.convert("RGB")
    return to_tensor(center_crop(resize_shorter(picture, size, Image.NEAREST), size))


def load_batch(paths: Sequence[Path], size: int = SIZE) -> torch.Tensor:
    """``(N, 3, size, size)`` float tensor of the paper-protocol images of ``paths``."""
    cache: Dict[Path, torch.Tensor] = {}
    tensors = []
    for path in paths:
        if path not in cache:
            cache[path] = paper_tensor(path, size)
        tensors.append(cache[path])
    return torch.stack(tensors)


def horse_batch(count: int, root: Path, size: int = SIZE) -> torch.Tensor:
    """The first ``count`` Weizmann Horse images (sorted by name) under the paper protocol."""
    paths = image_paths(root, "weizmann_horse")
    if count > len(paths):
        raise ValueError(f"asked for {count} horse images, only {len(paths)} exist")
    return load_batch(paths[:count], size)


def cycled_paths(count: int, root: Path) -> List[Path]:
    """``count`` image paths cycling through Weizmann Horse then GrabCut (sorted by name).

    Only 327 + 50 real images are available offline, so the 1,020 images of the paper's
    protocol repeat each of them two or three times (1,020 = 2 x 377 + 266).
    """
    pool = [path for name in DATASETS for path in image_paths(root, name)]
    return [pool[i % len(pool)] for i in range(count)]


def synthetic_batch(count: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """Uniform random images in [-1, 1], ``(count, 3, size, size)`` (memory benchmarks)."""
    generator = torch.Generator().manual_seed(seed)
    # In place, so that the peak memory of making the batch is the batch itself.
    return torch.rand((count, 3, size, size), generator=generator).mul_(2).sub_(1)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image IoU of two mask batches ``(B, 1, H, W)``; two empty masks agree fully (1.0)."""
    a, b = a.bool().flatten(1), b.bool().flatten(1)
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def mask_agreement(a: torch.Tensor, b: torch.Tensor) -> Dict[str, Any]:
    """Mean and minimum mask-to-mask IoU, identical masks and differing pixels."""
    iou = mask_iou(a, b)
    same = (a.bool() == b.bool()).flatten(1).all(1)
    return {
        "mean_iou": float(iou.mean()),
        "min_iou": float(iou.min()),
        "identical": int(same.sum()),
        "images": int(same.numel()),
        "differing_pixels": int((a.bool() != b.bool()).sum()),
    }


def format_agreement(agreement: Dict[str, Any]) -> str:
    return (
        f"mask IoU mean {agreement['mean_iou']:.4f} min {agreement['min_iou']:.4f}, "
        f"{agreement['identical']}/{agreement['images']} identical"
    )


def _cpu_times() -> Optional[Tuple[float, float]]:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where it is unavailable."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [float(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class Timing:
    """One timed run: wall-clock and process CPU seconds, and the machine's load meanwhile.

    ``machine_busy`` is the fraction of all CPUs busy during the run (every process), and
    ``others_busy`` the part of it not spent by this process: how noisy the machine was.
    """

    wall_s: float = 0.0
    cpu_s: float = 0.0
    machine_busy: Optional[float] = None
    others_busy: Optional[float] = None
    loadavg_1min: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@contextmanager
def timed() -> Iterator[Timing]:
    """Time the body: wall clock, this process's CPU time and the machine's CPU load."""
    timing = Timing()
    before = _cpu_times()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        timing.wall_s = time.perf_counter() - wall
        timing.cpu_s = time.process_time() - cpu
        after = _cpu_times()
        if before and after and after[1] > before[1]:
            busy = (after[0] - before[0]) / (after[1] - before[1])
            cores = os.cpu_count() or 1
            timing.machine_busy = busy
            timing.others_busy = max(0.0, busy - timing.cpu_s / max(timing.wall_s, 1e-9) / cores)
        if hasattr(os, "getloadavg"):
            timing.loadavg_1min = os.getloadavg()[0]


def run_timed(fn: Callable[[], Any]) -> Tuple[Any, Timing]:
    with timed() as timing:
        value = fn()
    return value, timing


def git_revision() -> Dict[str, Any]:
    """The checkout's commit and whether its code has uncommitted changes (None outside git).

    Results and docs do not count: writing them is what a benchmark run does.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=False, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results", ":(exclude)docs", ":(exclude)*.md"], cwd=REPO, check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _optional_version(module: str) -> Optional[str]:
    """Version of an optional package the engine can use, None when it is not installed."""
    try:
        return str(importlib.import_module(module).__version__)
    except ImportError:
        return None


def environment(threads: Optional[int] = None) -> Dict[str, Any]:
    """Versions, CPU and threads: what a row of docs/speed.md needs to be read."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "command": " ".join([Path(sys.executable).name, "-m", sys.modules["__main__"].__spec__.name if getattr(sys.modules["__main__"], "__spec__", None) else sys.argv[0]] + sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Thread settings change timings on a shared machine: record them with the numbers.
        "env": {name: os.environ.get(name) for name in RECORDED_ENV},
        "numba": _optional_version("numba"),
    }
    env.update(git_revision())
    return env


def write_json(data: Dict[str, Any], path: Path) -> Path:
    """Write ``data`` as indented JSON atomically (:func:`iem.io.write.write_text`)."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads (the speed of one run depends on it)."""
    if threads < 1:
        raise ValueError("threads must be >= 1")
    torch.set_num_threads(threads)


@dataclass
class Table:
    """A small fixed-width text table for the scripts' printed reports."""

    header: Sequence[str]
    rows: List[Sequence[Any]] = field(default_factory=list)

    def add(self, *row: Any) -> None:
        self.rows.append(row)

    def __str__(self) -> str:
        cells = [list(map(str, self.header))] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.header))]
        lines = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))) for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
