"""``iem segment`` end to end: in-process (CliRunner) and as a real ``python -m iem`` process.

The input folder holds every kind of file a photo collection can (tests/io/samples.py): good
ones must give outputs of the right size and orientation, each bad one exactly one line naming
it, and the run exit status 1, with no traceback.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageOps

from iem.cli import main
from iem.cli.segment import option_name
from iem.config import IEMConfig
from iem.io.render import mask_png
from iem.pipeline import FAILURES_LOG, SETTINGS_RECORD, SUMMARY_JSON
from tests.io.samples import ZOO_MAX_PIXELS, make_zoo, synthetic_photo

REPO = Path(__file__).resolve().parents[2]
FAST = ["--size", "32", "--iterations", "5"]


def _run_subprocess(args: List[str], stdin: bytes = b"", timeout: float = 120) -> Tuple[int, bytes, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "iem", "segment", *args], input=stdin, capture_output=True, timeout=timeout, env=env
    )
    return proc.returncode, proc.stdout, proc.stderr.decode()


def _run_runner(args: List[str]) -> Tuple[int, bytes, str]:
    result = CliRunner().invoke(main, ["segment", *args], catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.mark.parametrize("driver", [_run_runner, _run_subprocess], ids=["clirunner", "subprocess"])
def test_every_input_kind(tmp_path: Path, driver) -> None:
    zoo = tmp_path / "in"
    expected = make_zoo(zoo)
    (tmp_path / "dir.jpg").mkdir()  # a folder where a file was named: nothing to read
    extra = [str(tmp_path / "dir.jpg"), str(tmp_path / "missing.png")]
    out = tmp_path / "out"
    args = [str(zoo), *extra, "-o", str(out), *FAST, "--max-pixels", str(ZOO_MAX_PIXELS), "--outputs", "mask,cutout"]
    code, _, stderr = driver(args)

    assert code == 1, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith(str(tmp_path))]
    bad = {name: want for name, want in expected.items() if want.error}
    assert len(lines) == len(bad) + len(extra), stderr
    for name, want in bad.items():
        [line] = [line for line in lines if line.startswith(f"{zoo / name}: ")]
        assert want.error in line, line
    assert any(line.startswith(f"{tmp_path / 'dir.jpg'}: no image files") for line in lines)
    assert any(line == f"{tmp_path / 'missing.png'}: no such file" for line in lines)
    logged = (out / FAILURES_LOG).read_text().splitlines()
    assert sorted(entry.split("\t", 1)[1] for entry in logged) == sorted(lines)

    for name, want in expected.items():
        stem = Path(name).with_suffix("")
        mask_path = out / f"{stem}.mask.png"
        if want.error:
            assert not mask_path.exists(), name
            continue
        mask = Image.open(mask_path)
        assert mask.mode == "L" and mask.size == want.size, name
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
    # Orientation: the cut-out's colours are the upright photo's.
    with Image.open(zoo / "rotated.jpg") as raw:
        upright = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(out / "rotated.cutout.png"))[..., :3], upright)
    # Untouched: hidden files and non-image extensions inside folders.
    assert not list(out.glob("README*")) and not list(out.glob(".hidden*"))


def test_help_shows_examples_and_every_config_field() -> None:
    result = CliRunner().invoke(main, ["segment", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "iem segment - < photo.jpg > mask.png" in result.output
    for field in dataclasses.fields(IEMConfig):
        name = option_name(field.name)
        assert name in result.output, name
        if field.type in (bool, "bool"):
            assert f"--no-{name[2:]}" in result.output


def test_config_options_reach_the_run_and_json_summary(tmp_path: Path) -> None:
    synthetic_photo(64, 48)[0].save(tmp_path / "a.png")
    args = [
        str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--size", "32", "--preset", "released",
        "--iterations", "7", "--no-smoothing", "--init-sizes", "30,60", "--lambda", "0.002",
        "--smoothing-rule", "paper", "--no-early-exit", "--sigma", "4.5", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(main, ["segment", *args])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    config = summary["settings"]["config"]
    assert config["iterations"] == 7 and config["smoothing"] is False and config["init_sizes"] == [30, 60]
    assert config["lambda_"] == 0.002 and config["smoothing_rule"] == "paper" and config["early_exit"] is False
    assert config["sigma"] == 4.5 and config["kernel_size"] == IEMConfig.released().kernel_size
    assert summary["counts"] == {"total": 1, "segmented": 1, "skipped": 0, "failed": 0}
    assert json.loads((tmp_path / "out" / SUMMARY_JSON).read_text())["counts"] == summary["counts"]
    # The progress bar (images/s) and the one-line summary go to stderr.
    assert "img/s" in result.stderr and "1 segmented" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["IN"], "-o/--out"),
        (["IN", "-o", "OUT", "--init-sizes", "a,b"], "comma-separated list of integers"),
        (["IN", "-o", "OUT", "--kernel-size", "4"], "kernel_size must be a positive odd integer"),
        (["IN", "-o", "OUT", "--outputs", "mask,sketch"], "choose from"),
        (["IN", "-o", "OUT", "--size", "8"], "--size"),
        (["IN", "-o", "OUT", "--size", "32", "--kernel-size", "41"], "smaller than the filter"),
        (["IN", "-o", "OUT", "--refine"], "--refine needs --model"),
        (["IN", "-o", "OUT", "--model", "MISSING"], "no such checkpoint file"),
        (["-", "IN"], "cannot be combined"),
        (["-", "-o", "OUT"], "drop -o/--out"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: List[str], message: str) -> None:
    synthetic_photo(32, 32)[0].save(tmp_path / "a.png")
    names = {"IN": str(tmp_path / "a.png"), "OUT": str(tmp_path / "out"), "MISSING": str(tmp_path / "nope.pt")}
    result = CliRunner().invoke(main, ["segment", *[names.get(a, a) for a in args]])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_fails_loudly(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["segment", str(tmp_path), "-o", str(tmp_path / "o"), "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA GPU is available" in result.output


def test_output_folder_not_writable(tmp_path: Path) -> None:
    synthetic_photo(32, 32)[0].save(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "-o", str(tmp_path / "file" / "out")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{tmp_path / 'file' / 'out'}: cannot write to the output folder (Not a directory)"


def test_stdin_to_stdout(tmp_path: Path) -> None:
    photo, truth = synthetic_photo(90, 70, seed=4)
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    code, stdout, stderr = _run_subprocess(["-", *FAST], stdin=buffer.getvalue())
    assert code == 0, stderr
    mask = np.asarray(Image.open(io.BytesIO(stdout)))
    assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
    assert ((mask == 255) == truth).mean() > 0.95
    assert stdout == mask_png(mask == 255)  # the one encoding of masks
    code, stdout, stderr = _run_subprocess(["-", *FAST], stdin=b"plain text")
    assert (code, stdout) == (1, b"") and stderr.strip() == "<stdin>: not a recognised image format"


def test_sigkill_midway_then_rerun_completes(tmp_path: Path) -> None:
    count = 24
    (tmp_path / "in").mkdir()
    for i in range(count):
        synthetic_photo(240, 180, seed=i)[0].save(tmp_path / "in" / f"{i:02d}.png")
    out = tmp_path / "out"
    args = [str(tmp_path / "in"), "-o", str(out), "--size", "64", "--iterations", "40", "--batch-size", "1"]
    args += ["--outputs", "mask,cutout", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "iem", "segment", *args], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.mask.png"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed; give it more work"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = [p for p in out.iterdir() if not p.name.startswith(".") and p.suffix == ".png"]
    assert 3 <= len(list(out.glob("*.mask.png"))) < count
    for path in done_before:  # whatever exists under an output's name is complete
        with Image.open(path) as image:
            image.load()
            assert image.size == (240, 180)

    finished = [i for i in range(count) if all((out / f"{i:02d}{s}").exists() for s in (".mask.png", ".cutout.png"))]
    code, _, stderr = _run_subprocess(args[:-1])  # the same run again, with its summary line
    assert code == 0, stderr
    assert f"{count - len(finished)} segmented" in stderr and f"{len(finished)} already done" in stderr
    names = sorted(p.name for p in out.iterdir() if p.name != SETTINGS_RECORD)
    assert names == sorted([f"{i:02d}.mask.png" for i in range(count)] + [f"{i:02d}.cutout.png" for i in range(count)])
    for name in names:
        with Image.open(out / name) as image:
            image.load()
            assert image.size == (240, 180)


def test_outputs_beside_the_photos_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "photos"
    (photos / "x").mkdir(parents=True)
    for name in ("a", "x/b"):
        synthetic_photo(40, 32, seed=len(name))[0].save(photos / f"{name}.png")
    fast = ["--iterations", "2", "--device", "cpu", "--outputs", "mask,cutout", "--json", "-q"]

    def counts(*args: str) -> dict:
        result = CliRunner().invoke(main, ["segment", *args, *fast])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["counts"]

    assert counts(str(photos), "-o", str(photos)) == {"total": 2, "segmented": 2, "skipped": 0, "failed": 0}
    written = sorted(str(p.relative_to(photos)) for p in photos.rglob("*.png"))
    assert written == ["a.cutout.png", "a.mask.png", "a.png", "x/b.cutout.png", "x/b.mask.png", "x/b.png"]
    # The same folder spelt otherwise: the outputs are recognised, the photos are done.
    assert counts(str(photos), "-o", str(photos / "x" / "..")) == {"total": 2, "segmented": 0, "skipped": 2, "failed": 0}
    monkeypatch.chdir(photos)
    assert counts(".", "-o", ".") == {"total": 2, "segmented": 0, "skipped": 2, "failed": 0}
    assert sorted(str(p.relative_to(photos)) for p in photos.rglob("*.png")) == written


def test_resuming_with_other_settings_is_refused_unless_overwrite(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        synthetic_photo(40, 32, seed=i)[0].save(photos / f"{i}.png")
    out = tmp_path / "out"

    def run(*args: str):
        return CliRunner().invoke(main, ["segment", str(photos), "-o", str(out), "--device", "cpu", "-q", *args])

    assert run("--iterations", "0").exit_code == 0
    before = (out / "0.mask.png").read_bytes()
    refused = run("--iterations", "2", "--outputs", "mask,cutout")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.stderr.strip() == (
        f"Error: {out}: holds outputs made with other settings (config.iterations: 0 there, 2 now); "
        "rerun with --overwrite to replace its outputs, or choose another output folder"
    )
    assert not (out / "0.cutout.png").exists() and (out / "0.mask.png").read_bytes() == before
    # The same settings resume, whatever the device, batch size or outputs asked for.
    assert run("--iterations", "0", "--batch-size", "1", "--outputs", "mask,cutout").exit_code == 0
    assert (out / "0.cutout.png").is_file() and (out / "0.mask.png").read_bytes() == before
    assert run("--iterations", "2", "--overwrite").exit_code == 0
    assert run("--iterations", "2").exit_code == 0
    assert run("--iterations", "0").exit_code == 2


def test_float_images_and_blank_images(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    gray = np.asarray(synthetic_photo(48, 40, seed=5)[0].convert("L"))
    Image.fromarray(gray).save(photos / "eight.png")
    Image.fromarray(gray.astype(np.float32), "F").save(photos / "float255.tif")
    Image.fromarray(gray.astype(np.float32) / 255, "F").save(photos / "float01.tif")
    Image.new("RGB", (40, 32), (120, 130, 140)).save(photos / "blank.png")
    out = tmp_path / "out"
    args = ["segment", str(photos), "-o", str(out), "--iterations", "3", "--device", "cpu", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"total": 4, "segmented": 4, "skipped": 0, "failed": 0}
    assert [w["path"] for w in summary["warnings"]] == [str(photos / "blank.png")]
    assert "blank or near-constant" in summary["warnings"][0]["reason"]
    assert f"warning: {photos / 'blank.png'}: blank or near-constant image" in result.stderr
    assert "1 blank or near-constant (empty masks written)" in result.stderr
    with Image.open(out / "blank.mask.png") as blank:
        assert not np.asarray(blank).any()
    masks = {}
    for name in ("eight", "float255", "float01"):
        with Image.open(out / f"{name}.mask.png") as mask:
            masks[name] = np.asarray(mask)
    # Same pixels whatever the sample type: the float files are not read as overexposed.
    assert 0 < masks["eight"].mean() < 255
    assert np.array_equal(masks["float255"], masks["eight"]) and np.array_equal(masks["float01"], masks["eight"])
