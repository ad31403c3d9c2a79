"""The same file named twice is taken once: repeated names, folder plus file, links, relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from iem.io.walk import InputFile, iter_inputs


def _files(inputs):
    return [str(i.relative) for i in iter_inputs(inputs) if isinstance(i, InputFile)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for name in ["a.jpg", "b.jpg", "sub/c.jpg"]:
        (root / name).write_bytes(b"x")
    return root


def test_a_file_named_twice_is_taken_once(folder: Path):
    a = folder / "a.jpg"
    assert _files([a, a]) == ["a.jpg"]


def test_a_folder_and_a_file_inside_it(folder: Path):
    assert _files([folder, folder / "sub" / "c.jpg"]) == ["a.jpg", "b.jpg", "sub/c.jpg"]
    assert _files([folder / "b.jpg", folder]) == ["b.jpg", "a.jpg", "sub/c.jpg"]


def test_relative_and_dotted_paths_to_the_same_file(folder: Path, monkeypatch):
    monkeypatch.chdir(folder)
    assert _files(["a.jpg", str(folder / "a.jpg"), "sub/../a.jpg", "./a.jpg"]) == ["a.jpg"]


def test_a_symlink_to_a_named_file(folder: Path, tmp_path: Path):
    link = tmp_path / "link.jpg"
    try:
        link.symlink_to(folder / "a.jpg")
    except OSError:
        pytest.skip("symbolic links cannot be made here")
    assert _files([folder / "a.jpg", link]) == ["a.jpg"]


def test_distinct_files_with_the_same_name_are_all_kept(folder: Path, tmp_path: Path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"y")
    # Not duplicates: the pipeline reports their clash of outputs, the walk keeps both.
    assert _files([folder / "a.jpg", other / "a.jpg"]) == ["a.jpg", "a.jpg"]



def test_a_link_inside_the_folder_to_a_file_of_the_folder_is_the_same_file(folder: Path):
    try:
        (folder / "latest.jpg").symlink_to(folder / "b.jpg")
    except OSError:
        pytest.skip("symbolic links cannot be made here")
    assert _files([folder]) == ["a.jpg", "b.jpg", "sub/c.jpg"]
