"""Local paths and fsspec URLs behind one interface (iem.io.storage), on fsspec's in-memory
filesystem: listing like the local walk, atomic writes, resume checks, one-line errors."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from iem.io.read import ImageReadError
from iem.io.walk import InputProblem
from iem.io import storage

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def memory():
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    for key in ["b/photos/a.jpg", "b/photos/z.png", "b/photos/sub/c.PNG", "b/photos/.hidden/d.png",
                "b/photos/notes.txt", "b/photos/out/old.mask.png", "b/photos/sub/.e.png"]:
        fs.pipe_file(key, b"x")
    yield fs
    fs.store.clear()


def test_urls_and_local_forms() -> None:
    assert storage.is_url("s3://bucket/x") and storage.is_url("memory://x") and storage.is_url("gs://b")
    assert not storage.is_url("file:///tmp/x") and not storage.is_url("/tmp/x") and not storage.is_url("c:x")
    assert storage.local_form("file:///tmp/x") == "/tmp/x"
    assert storage.join("s3://b/out", "sub", "m.png") == "s3://b/out/sub/m.png"
    suffixes = {"mask": ".mask.png", "cutout": ".cutout.png"}
    assert storage.output_locations("s3://b/out", PurePosixPath("a/b.jpg"), suffixes) == {
        "mask": "s3://b/out/a/b.mask.png",
        "cutout": "s3://b/out/a/b.cutout.png",
    }
    assert storage.output_locations("/o", PurePosixPath("b.jpg"), {"mask": ".mask.png"}) == {"mask": "/o/b.mask.png"}


def test_a_prefix_is_walked_like_a_folder(memory) -> None:
    found = list(storage.iter_sources(["memory://b/photos"], exclude="memory://b/photos/out"))
    # sorted, recursive, image extensions only (any case), hidden names and the output skipped
    # (named as fsspec writes its URLs: the memory filesystem's keys start at its root, "/")
    assert [(s.name, s.relative.as_posix()) for s in found] == [
        ("memory:///b/photos/a.jpg", "a.jpg"),
        ("memory:///b/photos/sub/c.PNG", "sub/c.PNG"),
        ("memory:///b/photos/z.png", "z.png"),
    ]


def test_objects_globs_and_problems(memory) -> None:
    [one] = storage.iter_sources(["memory://b/photos/notes.txt"])
    assert one == storage.Source("memory://b/photos/notes.txt", PurePosixPath("notes.txt"))  # named, so taken
    globbed = list(storage.iter_sources(["memory://b/photos/**/*.png"]))
    assert sorted(s.relative.as_posix() for s in globbed) == ["out/old.mask.png", "z.png"]
    [problem] = storage.iter_sources(["memory://b/nothing"])
    assert problem == InputProblem("memory://b/nothing", "no such file or folder")
    [problem] = storage.iter_sources(["memory://b/photos/*.gif"])
    assert problem.reason == "no file matches this pattern"


def test_local_arguments_use_the_local_walk(tmp_path: Path) -> None:
    (tmp_path / "in" / "s").mkdir(parents=True)
    (tmp_path / "in" / "s" / "a.png").write_bytes(b"x")
    [found] = storage.iter_sources([f"file://{tmp_path / 'in'}"])
    assert found == storage.Source(str(tmp_path / "in" / "s" / "a.png"), PurePosixPath("s/a.png"))


def test_writes_are_whole_and_leave_no_temporaries(memory) -> None:
    storage.write_bytes("memory://b/out/sub/m.png", b"mask")
    assert memory.cat_file("b/out/sub/m.png") == b"mask"
    assert [k for k in memory.find("b/out") if k.endswith(storage.TEMP_SUFFIX)] == []
    locations = {"mask": "memory://b/out/sub/m.png", "cutout": "memory://b/out/sub/m.cutout.png"}
    assert storage.missing(locations) == {"cutout": "memory://b/out/sub/m.cutout.png"}
    assert storage.read_text("memory://b/out/none.log") == ""


def test_a_failed_write_leaves_nothing(memory, monkeypatch) -> None:
    def broken_move(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(type(memory), "mv", broken_move)
    with pytest.raises(OSError, match="memory://b/out/m.png: cannot write"):
        storage.write_bytes("memory://b/out/m.png", b"mask")
    assert not memory.exists("b/out") or memory.find("b/out") == []


def test_reading_a_missing_object_is_one_line(memory) -> None:
    assert storage.read_bytes("memory://b/photos/a.jpg") == b"x"
    with pytest.raises(ImageReadError) as info:
        storage.read_bytes("memory://b/photos/gone.jpg")
    assert str(info.value) == "memory://b/photos/gone.jpg: no such file"


def test_an_unknown_scheme_is_a_storage_error() -> None:
    with pytest.raises(storage.StorageError, match=r"^nosuch://x/y: "):
        list(storage.iter_sources(["nosuch://x/y"]))
