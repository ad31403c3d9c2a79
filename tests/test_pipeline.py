"""``segment_files``: outputs, resume, determinism across batching, failures, phase-2 wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from PIL import Image

from iem import IEMConfig
from iem.pipeline import (
    FAILURES_LOG,
    SUMMARY_JSON,
    OutputFolderError,
    Segmenter,
    segment_bytes,
    segment_files,
)
from tests.io.samples import synthetic_photo

FAST = IEMConfig.paper(iterations=10)
SIZE = 32
#: (width, height) of the test photos: several aspect ratios, so several working shapes.
SHAPES = [(160, 120), (120, 160), (100, 100), (200, 100), (90, 120), (150, 112)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture
def photos(tmp_path: Path) -> Dict[str, np.ndarray]:
    """Photos under ``tmp_path/in`` (one in a sub-folder); returns relative stem -> ground truth."""
    truths = {}
    for i, (w, h) in enumerate(SHAPES):
        photo, truth = synthetic_photo(w, h, seed=i)
        stem = f"sub/p{i}" if i == 0 else f"p{i}"
        (tmp_path / "in" / stem).parent.mkdir(parents=True, exist_ok=True)
        photo.save(tmp_path / "in" / f"{stem}.png")
        truths[stem] = truth
    return truths


def _masks(out: Path, stems) -> Dict[str, np.ndarray]:
    return {stem: np.asarray(Image.open(out / f"{stem}.mask.png")) for stem in stems}


def test_every_output_at_full_resolution_on_the_object(tmp_path: Path, photos) -> None:
    out = tmp_path / "out"
    summary = segment_files(
        tmp_path / "in", out, FAST, size=SIZE, outputs=("mask", "cutout", "overlay", "inpaint"), progress=False
    )
    assert (summary.segmented, summary.skipped, summary.failed, summary.exit_code) == (len(photos), 0, 0, 0)
    for stem, truth in photos.items():
        h, w = truth.shape
        mask = Image.open(out / f"{stem}.mask.png")
        assert mask.mode == "L" and mask.size == (w, h)
        values = np.asarray(mask)
        assert set(np.unique(values)) <= {0, 255}
        assert _iou(values == 255, truth) > 0.95, stem
        cut = Image.open(out / f"{stem}.cutout.png")
        assert cut.mode == "RGBA" and cut.size == (w, h)
        assert np.array_equal(np.asarray(cut)[..., 3], values)
        over = Image.open(out / f"{stem}.overlay.jpg")
        assert over.format == "JPEG" and over.mode == "RGB" and over.size == (w, h)
        assert Image.open(out / f"{stem}.inpaint.png").size == (w, h)
    assert not (out / FAILURES_LOG).exists()


def test_resume_skips_done_work_and_overwrite_redoes_it(tmp_path: Path, photos) -> None:
    out = tmp_path / "out"
    first = segment_files(tmp_path / "in", out, FAST, size=SIZE, progress=False)
    before = _masks(out, photos)
    again = segment_files(tmp_path / "in", out, FAST, size=SIZE, progress=False)
    assert (again.segmented, again.skipped) == (0, len(photos))
    (out / "p2.mask.png").unlink()
    partial = segment_files(tmp_path / "in", out, FAST, size=SIZE, progress=False)
    assert (partial.segmented, partial.skipped) == (1, len(photos) - 1)
    # Asking for a new output kind recomputes only what is missing.
    more = segment_files(tmp_path / "in", out, FAST, size=SIZE, outputs=("mask", "cutout"), progress=False)
    assert more.segmented == len(photos) and all((out / f"{s}.cutout.png").exists() for s in photos)
    forced = segment_files(tmp_path / "in", out, FAST, size=SIZE, overwrite=True, progress=False)
    assert forced.segmented == len(photos) and first.segmented == len(photos)
    after = _masks(out, photos)
    assert all(np.array_equal(before[s], after[s]) for s in photos)


def test_masks_do_not_depend_on_batching(tmp_path: Path, photos) -> None:
    # batch_size 2 with six shapes also forces the bounded shape buffer to flush early.
    results = []
    for batch_size in (1, 2, 16):
        out = tmp_path / f"out{batch_size}"
        segment_files(tmp_path / "in", out, FAST, size=SIZE, batch_size=batch_size, progress=False)
        results.append(_masks(out, photos))
    for other in results[1:]:
        assert all(np.array_equal(results[0][s], other[s]) for s in photos)


def test_stdin_bytes_give_the_same_mask_as_files(tmp_path: Path, photos) -> None:
    out = tmp_path / "out"
    segment_files(tmp_path / "in", out, FAST, size=SIZE, progress=False)
    data = (tmp_path / "in" / "p3.png").read_bytes()
    mask = segment_bytes(data, FAST, size=SIZE)
    assert np.array_equal(np.where(mask, 255, 0), np.asarray(Image.open(out / "p3.mask.png")))


def test_failures_are_reported_logged_and_summarised(tmp_path: Path, photos) -> None:
    (tmp_path / "in" / "junk.jpg").write_text("not an image")
    photo, _ = synthetic_photo(64, 48)
    photo.save(tmp_path / "in" / "p1.jpg")  # same output name as p1.png
    seen = []
    summary = segment_files(
        [tmp_path / "in", tmp_path / "missing.png"],
        tmp_path / "out",
        FAST,
        size=SIZE,
        progress=False,
        on_failure=seen.append,
        write_summary=True,
    )
    assert summary.exit_code == 1 and summary.segmented == len(photos)
    reasons = {Path(f.path).name: f.reason for f in summary.failures}
    assert reasons.keys() == {"junk.jpg", "p1.png", "missing.png"}
    assert "not a recognised image format" in reasons["junk.jpg"]
    assert "would overwrite those of" in reasons["p1.png"] and "p1.jpg" in reasons["p1.png"]
    assert reasons["missing.png"] == "no such file"
    assert seen == summary.failures
    log = (tmp_path / "out" / FAILURES_LOG).read_text().splitlines()
    assert len(log) == 3 and all(line.split("\t", 1)[1] in [f.line() for f in seen] for line in log)
    data = json.loads((tmp_path / "out" / SUMMARY_JSON).read_text())
    assert data["counts"] == {"total": len(photos) + 3, "segmented": len(photos), "skipped": 0, "failed": 3}
    assert data["settings"]["config"]["iterations"] == 10 and data["settings"]["size"] == SIZE
    assert data["timing"]["seconds"] > 0 and data["exit_code"] == 1


def test_unwritable_output_folder_and_blocked_sub_folder(tmp_path: Path, photos) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputFolderError, match="cannot write to the output folder"):
        segment_files(tmp_path / "in", blocker / "out", FAST, size=SIZE, progress=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where a folder of outputs should go")
    summary = segment_files(tmp_path / "in", out, FAST, size=SIZE, progress=False)
    assert summary.segmented == len(photos) - 1
    [failure] = summary.failures
    assert failure.path.endswith("p0.png") and "cannot write output" in failure.reason


def test_invalid_settings_raise_value_error(tmp_path: Path) -> None:
    for kwargs in (
        {"outputs": ("mask", "sketch")},
        {"outputs": ()},
        {"size": 8},
        {"batch_size": 0},
        {"upsample": "bicubic"},
        {"refine": True},
    ):
        with pytest.raises(ValueError):
            segment_files(tmp_path, tmp_path / "out", FAST, progress=False, **kwargs)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            segment_files(tmp_path, tmp_path / "out", FAST, device="cuda", progress=False)


def test_network_masks_and_refinement(tmp_path: Path, photos) -> None:
    segnet = pytest.importorskip("iem.segnet")
    from iem.segnet.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = segnet.SegNet()
    checkpoint = tmp_path / "net.pt"
    save_checkpoint(checkpoint, {"hparams": net.hparams(), "model": net.state_dict()})

    # The network alone: its probabilities (at 128x128, back to the working shape) are the mask.
    photo = np.array(Image.open(tmp_path / "in" / "p3.png"))
    images = torch.from_numpy(photo).permute(2, 0, 1)[None].float() * (2 / 255) - 1
    alone = Segmenter(FAST, "cpu", checkpoint).soft_masks(images)
    assert torch.allclose(alone, segnet.predict(segnet.load_model(checkpoint), images))
    refined = Segmenter(FAST, "cpu", checkpoint, refine=True).soft_masks(images)
    init = alone >= 0.5
    from iem import segment_batch

    assert torch.equal(refined, segment_batch(images, FAST, "cpu", init_masks=init).masks.float())

    for refine in (False, True):
        out = tmp_path / f"out{refine}"
        summary = segment_files(tmp_path / "in", out, FAST, size=SIZE, model=checkpoint, refine=refine, progress=False)
        assert summary.segmented == len(photos) and summary.settings["model"] == str(checkpoint)
        for stem, truth in photos.items():
            assert Image.open(out / f"{stem}.mask.png").size == truth.shape[::-1]


def test_shipped_sample_photos(tmp_path: Path) -> None:
    """The quick start's photos: small, licensed, and segmented as the README shows."""
    from iem.data import SAMPLES, sample_folder, sample_paths

    licence = (sample_folder() / "LICENSE.md").read_text()
    for path in sample_paths():
        assert path.stat().st_size < 300_000 and max(Image.open(path).size) <= 640
        assert f"`{path.name}`" in licence and "CC0" in licence
    summary = segment_files(sample_folder(), tmp_path, outputs=("mask",), progress=False)
    assert summary.segmented == len(SAMPLES) and summary.exit_code == 0
    # The retina is a bright disc on black: its mask is the non-black part.
    retina = np.asarray(Image.open(sample_folder() / "retina.jpg").convert("L")) > 25
    assert _iou(np.asarray(Image.open(tmp_path / "retina.mask.png")) == 255, retina) > 0.98
    # The cell is a bright blob with a darker rim: the mask holds every clearly bright pixel
    # and not much more than the blob.
    cell = np.asarray(Image.open(sample_folder() / "cell.jpg"), dtype=np.float64)
    bright = cell > np.median(cell) + 4 * cell.std()
    mask = np.asarray(Image.open(tmp_path / "cell.mask.png")) == 255
    assert mask[bright].mean() > 0.99 and mask.sum() < 2 * bright.sum()


def test_reading_runs_ahead_of_computing_by_a_bounded_amount(tmp_path: Path, monkeypatch) -> None:
    """Streaming: however many files there are, only a few are read ahead of the segmenter."""
    import time

    import iem.pipeline as pipeline

    count, batch_size = 30, 2
    (tmp_path / "in").mkdir()
    for i in range(count):
        synthetic_photo(40, 30, seed=i)[0].save(tmp_path / "in" / f"{i:02d}.png")
    reads, ahead = [], []
    real_read = pipeline.read_file_bytes
    real_soft = pipeline.Segmenter.soft_masks
    computed = [0]

    def counting_read(*args, **kwargs):
        reads.append(1)
        return real_read(*args, **kwargs)

    def slow_soft(self, images):
        time.sleep(0.05)  # give the reader every chance to run ahead
        ahead.append(len(reads) - computed[0])
        computed[0] += images.shape[0]
        return real_soft(self, images)

    monkeypatch.setattr(pipeline, "read_file_bytes", counting_read)
    monkeypatch.setattr(pipeline.Segmenter, "soft_masks", slow_soft)
    summary = segment_files(tmp_path / "in", tmp_path / "out", FAST, size=SIZE, batch_size=batch_size, progress=False)
    assert summary.segmented == count and len(reads) == count
    # In flight (one shape): the batch being computed, the reader queue (batch_size), a partial
    # group (batch_size - 1), one in the reader's hands; an unbounded reader would reach 30.
    assert max(ahead) <= 3 * batch_size, ahead


# --------------------------------------------------------------- the reader: what it walks, what it refuses


def test_an_argument_naming_nothing_is_one_failure_and_the_rest_goes_on(tmp_path: Path, photos) -> None:
    pattern = str(tmp_path / "nothing-*.png")
    summary = segment_files([pattern, tmp_path / "in"], tmp_path / "out", FAST, size=SIZE, progress=False)
    assert summary.segmented == len(photos)
    assert [(f.path, f.reason) for f in summary.failures] == [(pattern, "no file matches this pattern")]


def test_the_output_folder_inside_the_input_is_not_walked(tmp_path: Path, photos) -> None:
    out = tmp_path / "in" / "out"
    out.mkdir()
    synthetic_photo(64, 48)[0].save(out / "someone-elses.png")  # not an output of ours, but in the output folder
    summary = segment_files(tmp_path / "in", out, FAST, size=SIZE, progress=False)
    assert (summary.segmented, summary.failed) == (len(photos), 0)
    assert not (out / "out").exists() and not (out / "someone-elses.mask.png").exists()


def test_outputs_written_beside_the_inputs_are_not_read_back(tmp_path: Path, photos) -> None:
    folder = tmp_path / "in"
    first = segment_files(folder, folder, FAST, size=SIZE, progress=False)
    again = segment_files(folder, folder, FAST, size=SIZE, progress=False)
    assert first.segmented == len(photos) and (again.segmented, again.skipped, again.failed) == (0, len(photos), 0)
    assert not list(folder.rglob("*.mask.mask.png"))


def test_the_pixel_limit_reaches_the_reader(tmp_path: Path, photos, monkeypatch) -> None:
    # Refused before any work: the reader checks the limit, so IEM never runs on such a photo.
    calls = []
    soft_masks = Segmenter.soft_masks
    monkeypatch.setattr(Segmenter, "soft_masks", lambda self, *args: calls.append(1) or soft_masks(self, *args))
    summary = segment_files(tmp_path / "in", tmp_path / "out", FAST, size=SIZE, progress=False, max_pixels=5_000)
    assert summary.segmented == 0 and summary.failed == len(photos) and not calls
    assert all(f.reason.startswith("decompression bomb refused") for f in summary.failures)


def test_a_blank_photo_gets_an_empty_mask_and_a_warning(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    Image.new("RGB", (80, 60), (120, 130, 140)).save(tmp_path / "in" / "grey.png")
    summary = segment_files(tmp_path / "in", tmp_path / "out", FAST, size=SIZE, progress=False)
    assert summary.segmented == 1 and len(summary.warnings) == 1
    assert not np.asarray(Image.open(tmp_path / "out" / "grey.mask.png")).any()


def test_an_unexpected_error_in_the_reader_reaches_the_caller(tmp_path: Path, photos, monkeypatch) -> None:
    import iem.pipeline as pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(pipeline, "working_copy", broken)
    with pytest.raises(RuntimeError, match="a bug in the reader"):
        segment_files(tmp_path / "in", tmp_path / "out", FAST, size=SIZE, progress=False)
