"""Render processes (``segment_files(render_processes=N)``): the same files as the writer threads,
used once they are up, a broken pool taken over by the threads, errors that cross intact."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path, PurePath
from typing import Dict, Iterator, List

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import iem.pipeline as pipeline
from iem import IEMConfig
from iem.cli import main
from iem.distributed import segment_files as segment_anywhere
from iem.io.outputs import output_paths
from iem.io.read import ImageReadError
from iem.io.walk import InputFile
from iem.io.write import StaleTemporaries
from iem.pipeline import count_render_processes, segment_files
from tests.io.samples import synthetic_photo

FAST = IEMConfig.paper(iterations=10)
KINDS = ("mask", "cutout", "overlay", "inpaint")


def _result(folder: Path, index: int, data: bytes = b"") -> pipeline._Result:
    """A photo's result as the engine hands it to the writers: a soft mask at 32 px, outputs under ``folder``."""
    photo, truth = synthetic_photo(120, 90, seed=index)
    if not data:
        buffer = io.BytesIO()
        photo.save(buffer, format="PNG")
        data = buffer.getvalue()
    soft = np.asarray(Image.fromarray(truth).resize((43, 32)), dtype=np.float32)
    inpainted = np.full((32, 43, 3), 90 + index, dtype=np.uint8)
    item = InputFile(folder / f"p{index}.png", PurePath(f"p{index}.png"))
    job = pipeline._Job(item, output_paths(folder, item.relative, KINDS), data, np.zeros((32, 43, 3), np.uint8))
    return pipeline._Result(job, soft, inpainted)


def _files(folder: Path) -> Dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


class _Counting(ProcessPoolExecutor):
    """A pool that notes the name of each function it is given."""

    submitted: List[str] = []

    def submit(self, fn, /, *args, **kwargs):
        self.submitted.append(fn.__name__)
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def counting(monkeypatch) -> List[str]:
    submitted: List[str] = []
    monkeypatch.setattr(_Counting, "submitted", submitted)
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", _Counting)
    monkeypatch.setattr(pipeline, "RENDER_PROCESSES_AFTER", 1)
    return submitted


def _threads_render(folder: Path, indices) -> Dict[str, bytes]:
    renderer = pipeline._Renderer(0, "guided", None, FAST)
    for index in indices:
        renderer.write(_result(folder, index), StaleTemporaries(), f"p{index}.png")
    return _files(folder)


def test_processes_start_after_the_mark_and_render_once_up_the_same_files(tmp_path: Path, counting) -> None:
    renderer = pipeline._Renderer(2, "guided", None, FAST)
    try:
        renderer.write(_result(tmp_path / "p", 0), StaleTemporaries(), "p0.png")
        assert counting == []  # the first image: no processes yet
        renderer.write(_result(tmp_path / "p", 1), StaleTemporaries(), "p1.png")
        assert counting == ["int", "int"]  # past the mark: started, one task each, not waited for
        wait(renderer._started, timeout=120)
        renderer.write(_result(tmp_path / "p", 2), StaleTemporaries(), "p2.png")
        assert counting == ["int", "int", "_render"]
    finally:
        renderer.close(wait=True)
    assert _files(tmp_path / "p") == _threads_render(tmp_path / "t", range(3))


@contextlib.contextmanager
def _processes_up(folder: Path) -> Iterator[pipeline._Renderer]:
    """A renderer with one process, up: two photos written (the second starts it), then waited for."""
    renderer = pipeline._Renderer(1, "guided", None, FAST)
    try:
        for index in range(2):
            renderer.write(_result(folder, index), StaleTemporaries(), f"p{index}.png")
        wait(renderer._started, timeout=120)
        yield renderer
    finally:
        renderer.close(wait=True)


def test_a_broken_pool_leaves_the_rendering_to_the_threads(tmp_path: Path, counting) -> None:
    with _processes_up(tmp_path / "p") as renderer:
        for process in list(renderer._pool._processes.values()):
            os.kill(process.pid, signal.SIGKILL)
            process.join(30)
        renderer.write(_result(tmp_path / "p", 2), StaleTemporaries(), "p2.png")
        renderer.write(_result(tmp_path / "p", 3), StaleTemporaries(), "p3.png")
        assert counting.count("_render") <= 1  # the fourth photo did not try the broken pool
    assert _files(tmp_path / "p") == _threads_render(tmp_path / "t", range(4))


def test_a_writer_still_at_work_after_the_pool_closed_renders_in_its_thread(tmp_path: Path, counting) -> None:
    with _processes_up(tmp_path / "p") as renderer:
        renderer.close(wait=True)  # as after an interrupt whose wind-down ran out of time
        renderer.write(_result(tmp_path / "p", 2), StaleTemporaries(), "p2.png")
    assert "_render" not in counting
    assert _files(tmp_path / "p") == _threads_render(tmp_path / "t", range(3))


def test_a_bad_photo_fails_in_a_process_with_its_name_and_reason_once(tmp_path: Path, counting) -> None:
    with _processes_up(tmp_path) as renderer, pytest.raises(ImageReadError) as raised:
        renderer.write(_result(tmp_path, 2, data=b"not an image"), StaleTemporaries(), "junk.png")
    assert counting[-1] == "_render"
    assert raised.value.name == "junk.png" and "junk.png" not in raised.value.reason
    assert str(raised.value).startswith("junk.png: ") and str(raised.value).count("junk.png") == 1


def test_a_run_with_render_processes_writes_what_a_run_with_threads_writes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "RENDER_PROCESSES_AFTER", 2)
    for i, (w, h) in enumerate([(160, 120), (120, 160), (100, 100), (200, 100), (90, 120)]):
        (tmp_path / "in").mkdir(exist_ok=True)
        synthetic_photo(w, h, seed=i)[0].save(tmp_path / "in" / f"p{i}.png")
    (tmp_path / "in" / "junk.png").write_text("not an image")
    runs = {}
    for processes in (0, 2):
        out = tmp_path / f"out{processes}"
        summary = segment_files(tmp_path / "in", out, FAST, size=32, outputs=KINDS, progress=False, render_processes=processes)
        assert (summary.segmented, summary.failed) == (5, 1)
        assert summary.settings["render_processes"] == processes
        runs[processes] = ({k: v for k, v in _files(out).items() if k.endswith((".png", ".jpg"))}, summary.failures)
    assert runs[2] == runs[0] and len(runs[0][0]) == 5 * len(KINDS)


def test_how_many_render_processes_pay(monkeypatch) -> None:
    assert count_render_processes(torch.device("cpu")) == 0  # the compiled loop keeps the cores busy
    for cpus, expected in [(1, 0), (2, 0), (3, 1), (16, 14), (64, 16)]:
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)
        assert count_render_processes(torch.device("cuda")) == expected


def test_render_processes_are_checked_and_kept_to_a_run_on_this_machine(tmp_path: Path) -> None:
    synthetic_photo(64, 48)[0].save(tmp_path / "p.png")
    with pytest.raises(ValueError, match="render_processes"):
        segment_files(tmp_path / "p.png", tmp_path / "out", FAST, size=32, progress=False, render_processes=-1)
    with pytest.raises(TypeError, match="render_processes not supported"):
        segment_anywhere(tmp_path / "p.png", tmp_path / "o2", FAST, size=32, progress=False, task_size=1, render_processes=2)
    # Left at its default, the setting does not stand in the way of a run in shares.
    assert segment_anywhere(tmp_path / "p.png", tmp_path / "o3", FAST, size=32, progress=False, task_size=1).segmented == 1
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "p.png"), "-o", str(tmp_path / "o4"),
                                       "--render-processes", "2", "--cluster", "local:1"])
    assert result.exit_code == 2 and "--render-processes is for a run on this machine" in result.output
