"""``segment_files`` against odd inputs and a failing disk: duplicates, forged names, full disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from iem import IEMConfig
from iem.pipeline import FAILURES_LOG, SUMMARY_JSON, segment_files
from tests.io.samples import synthetic_photo

FAST = IEMConfig.paper(iterations=5)
SIZE = 24


def _run(inputs, out: Path, **kwargs):
    return segment_files(inputs, out, FAST, size=SIZE, device="cpu", progress=False, **kwargs)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "a.jpg"
    path.parent.mkdir()
    synthetic_photo(48, 40)[0].save(path)
    return path


def test_the_same_file_twice_is_segmented_once_without_a_clash(tmp_path: Path, photo: Path, monkeypatch):
    monkeypatch.chdir(photo.parent)
    summary = _run([photo, photo, photo.parent, "a.jpg", "./a.jpg"], tmp_path / "out")
    assert (summary.segmented, summary.failed, summary.total) == (1, 0, 1)
    assert not (tmp_path / "out" / FAILURES_LOG).exists()


def test_names_with_newlines_cannot_forge_lines_in_the_log(tmp_path: Path, photo: Path):
    forged = photo.parent / "x\n2026-01-01T00:00:00Z\tforged.jpg: planted.jpg"
    forged.write_bytes(b"not an image")
    undecodable = Path(os.fsdecode(os.fsencode(str(photo.parent)) + b"/bad\xff\x1b[2J.jpg"))
    undecodable.write_bytes(b"not an image either")
    shown = []
    summary = _run([photo.parent], tmp_path / "out", on_failure=lambda f: shown.append(f.line()))
    assert summary.failed == 2
    log = (tmp_path / "out" / FAILURES_LOG).read_text(encoding="utf-8").splitlines()
    assert len(log) == 2  # one line per failure, no planted one
    assert not any(line.startswith("2026-01-01") for line in log)
    assert all(line.isprintable() for line in shown)
    assert [line.split("\t", 1)[1] for line in log] == shown
    assert any("'" + str(photo.parent) + "/x\\n2026" in line for line in shown)
