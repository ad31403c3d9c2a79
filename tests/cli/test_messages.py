"""Messages that say what is wrong: eval pairs, train on bad files, bad checkpoints, typos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from iem.cli import main
from iem.pipeline import MIN_SIZE
from iem.segnet.checkpoint import CheckpointError, read_checkpoint, save_checkpoint


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def masks(tmp_path: Path) -> Path:
    folder = tmp_path / "masks"
    folder.mkdir()
    from PIL import Image

    Image.new("L", (8, 8), 255).save(folder / "a.png")
    return folder


def test_eval_of_a_folder_against_itself_is_refused(masks: Path):
    for gt in (str(masks), str(masks) + "/", str(masks / ".." / masks.name)):
        result = _invoke("eval", str(masks), gt, "-q")
        assert result.exit_code == 2
        assert "PRED and GT are the same folder" in result.output and "against itself" in result.output


def test_eval_of_a_file_against_a_folder_says_so(masks: Path):
    result = _invoke("eval", str(masks / "a.png"), str(masks.parent), "-q")
    assert result.exit_code == 2 and "PRED is a file and GT is a folder" in result.output
    result = _invoke("eval", str(masks), str(masks / "a.png"), "-q")
    assert result.exit_code == 2 and "PRED is a folder and GT is a file" in result.output


def test_train_on_only_bad_files_shows_each_reason(tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_text("not a photo")
    (bad / "b.png").write_bytes(b"")
    result = _invoke("train", str(bad), "--out", str(tmp_path / "m.pt"), "-q")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == "iem train: no readable image among the inputs"
    assert any(line.startswith(f"{bad / 'a.jpg'}: ") for line in lines[:-1])
    assert any(line.startswith(f"{bad / 'b.png'}: ") for line in lines[:-1])


class _Opaque:
    """Not plain data: a checkpoint holding it must not be unpickled."""


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "object"])
def test_a_bad_checkpoint_is_described_without_unsafe_advice(tmp_path: Path, kind: str):
    path = tmp_path / "model.pt"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        save_checkpoint(path, {"weights": torch.zeros(1000)})
        path.write_bytes(path.read_bytes()[:600])
    else:
        torch.save({"format": "iem-segnet", "x": _Opaque()}, path)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a")
    assert "weights_only" not in message and "\n" not in message
    expected = {"text": "another kind of file", "empty": "an empty file", "truncated": "damaged", "object": "could run code"}
    assert expected[kind] in message


@pytest.mark.parametrize("given", ["44,,78", "44,78,", ",44"])
def test_a_list_with_an_empty_item_is_refused(tmp_path: Path, given: str):
    result = _invoke("segment", str(tmp_path), "-o", str(tmp_path / "out"), "--init-sizes", given)
    assert result.exit_code == 2 and "comma-separated list of integers" in result.output


def test_json_with_stdin_is_refused(tmp_path: Path):
    result = _invoke("segment", "-", "--json")
    assert result.exit_code == 2 and "drop --json" in result.output


def test_an_output_folder_that_is_a_file(tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "in").mkdir()
    result = _invoke("segment", str(tmp_path / "in"), "-o", str(tmp_path / "afile"), "-q")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{tmp_path / 'afile'}: is a file, not a folder: give a folder for the outputs"


def test_working_sizes_too_small_for_sensible_masks_are_refused(tmp_path: Path):
    assert MIN_SIZE == 32
    result = _invoke("segment", str(tmp_path), "-o", str(tmp_path / "out"), "--size", "24")
    assert result.exit_code == 2 and "x>=32" in result.output
