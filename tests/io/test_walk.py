"""Finding inputs: files, folders (recursive, sorted, lazy), globs, and problems."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import pytest

from iem.io import walk
from iem.io.walk import InputFile, InputProblem, image_extensions, iter_inputs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for name in ["b.jpg", "a.PNG", "notes.txt", ".hidden.jpg", "sub/c.jpeg", "sub/deep/d.webp", ".cache/e.jpg", "z/f.gif"]:
        _touch(root / name)
    return root


def _relatives(items) -> list:
    return [str(i.relative) if isinstance(i, InputFile) else ("PROBLEM", i.path, i.reason) for i in items]


def test_folder_is_walked_sorted_recursive_images_only(tree: Path) -> None:
    assert _relatives(iter_inputs([tree])) == ["a.PNG", "b.jpg", "sub/c.jpeg", "sub/deep/d.webp", "z/f.gif"]


def test_explicit_file_is_taken_whatever_its_extension(tree: Path) -> None:
    items = list(iter_inputs([tree / "notes.txt", tree / "sub" / "c.jpeg"]))
    assert items == [
        InputFile(tree / "notes.txt", PurePath("notes.txt")),
        InputFile(tree / "sub" / "c.jpeg", PurePath("c.jpeg")),
    ]


def test_missing_file_is_yielded_to_be_reported_by_the_reader(tmp_path: Path) -> None:
    assert list(iter_inputs([tmp_path / "nope.jpg"])) == [InputFile(tmp_path / "nope.jpg", PurePath("nope.jpg"))]


def test_glob_patterns_mirror_below_their_fixed_part(tree: Path) -> None:
    assert _relatives(iter_inputs([str(tree / "**" / "*.jp*g")])) == ["b.jpg", "sub/c.jpeg"]
    assert _relatives(iter_inputs([str(tree / "*" / "*.jpeg")])) == ["sub/c.jpeg"]
    # A trailing ** is the whole folder below; hidden names are not matched by wildcards.
    assert _relatives(iter_inputs([str(tree / "**")])) == _relatives(iter_inputs([tree]))
    assert _relatives(iter_inputs([str(tree / "s*")])) == ["sub/c.jpeg", "sub/deep/d.webp"]


def test_nothing_found_is_a_problem(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    items = list(iter_inputs([str(tree / "*.tiff"), tmp_path / "empty"]))
    assert [type(i) for i in items] == [InputProblem, InputProblem]
    assert "no file matches" in items[0].reason and "no image files" in items[1].reason


def test_output_folder_inside_the_input_is_not_walked(tree: Path) -> None:
    out = tree / "masks"
    _touch(out / "b.mask.png")
    assert "masks/b.mask.png" not in _relatives(iter_inputs([tree], exclude=out))
    assert "masks/b.mask.png" in _relatives(iter_inputs([tree]))


def test_output_folder_given_as_an_input_is_walked_without_its_outputs(tree: Path) -> None:
    tags = (".mask.png", ".overlay.jpg")
    _touch(tree / "b.mask.png")
    _touch(tree / "sub" / "c.overlay.jpg")
    _touch(tree / "sub" / "c.cutout.png")  # not a tag in this call: taken
    expected = ["a.PNG", "b.jpg", "sub/c.cutout.png", "sub/c.jpeg", "sub/deep/d.webp", "z/f.gif"]
    for out in (tree, tree / "sub" / "..", Path(os.path.relpath(tree))):
        assert _relatives(iter_inputs([tree], exclude=out, output_suffixes=tags)) == expected
    assert _relatives(iter_inputs([str(tree / "**")], exclude=tree, output_suffixes=tags)) == expected
    globbed = _relatives(iter_inputs([str(tree / "*" / "*.*")], exclude=tree, output_suffixes=tags))
    assert globbed == ["sub/c.cutout.png", "sub/c.jpeg", "z/f.gif"]
    # Outside the output folder a tagged name is an ordinary input.
    assert "b.mask.png" in _relatives(iter_inputs([tree], exclude=tree / "z", output_suffixes=tags))


def test_links_to_files_are_followed_links_to_folders_are_not(tree: Path, tmp_path: Path) -> None:
    os.symlink(_touch(tmp_path / "outside.jpg"), tree / "link.jpg")
    os.symlink(tree / "sub", tree / "loop")
    os.symlink(tmp_path / "nowhere.jpg", tree / "broken.jpg")
    names = _relatives(iter_inputs([tree]))
    assert "link.jpg" in names and "broken.jpg" in names
    assert not any(str(n).startswith("loop/") for n in names)


def test_walk_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        _touch(tmp_path / f"f{i}" / "x.jpg")
    listed = []
    real_scandir = os.scandir

    def counting_scandir(path):
        listed.append(Path(path).name)
        return real_scandir(path)

    monkeypatch.setattr(walk.os, "scandir", counting_scandir)
    items = iter_inputs([tmp_path])
    assert listed == []
    first = next(items)
    assert first.relative == PurePath("f0/x.jpg")
    assert "f2" not in listed  # later folders are listed only when the walk reaches them


def test_image_extensions_cover_common_formats() -> None:
    assert {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"} <= image_extensions()
    assert ".txt" not in image_extensions()
