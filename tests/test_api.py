import numpy as np
import pytest
import torch
from PIL import Image

import iem
from iem.config import IEMConfig
from iem.imaging import center_crop, resize_shorter, to_tensor, to_uint8, working_size

from .conftest import composite


def test_segment_returns_a_mask_at_the_input_resolution():
    image, truth = composite(96, 150, seed=7)
    array = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
    mask = iem.segment(array, IEMConfig.released(iterations=40), size=64, device="cpu")
    assert mask.shape == (96, 150) and mask.dtype == bool
    gt = truth[0, 0].numpy()
    assert (mask & gt).sum() / (mask | gt).sum() > 0.85
    pil = iem.segment(Image.fromarray(array), IEMConfig.released(iterations=40), size=64, device="cpu")
    assert np.array_equal(pil, mask)


def test_segment_reads_a_path_and_accepts_an_initial_mask(tmp_path):
    image, truth = composite(64, 64, seed=8)
    path = tmp_path / "x.png"
    Image.fromarray(to_uint8(image[0])).save(path)
    mask = iem.segment(path, IEMConfig.released(iterations=0), size=64, device="cpu", init_mask=truth[0, 0].numpy())
    assert np.array_equal(mask, truth[0, 0].numpy())


def test_segment_rejects_bad_arrays():
    with pytest.raises(ValueError, match="uint8"):
        iem.segment(np.zeros((10, 10), dtype=np.float32))


def test_inpaint_predicts_each_side_from_the_other():
    image, truth = composite(48, 48, seed=9)
    out = iem.inpaint(image, truth)
    assert out.shape == image.shape and torch.isfinite(out).all()
    # the object's colour is not predictable from the background: large error inside
    err_inside = (out - image).abs().mean(1, keepdim=True)[truth].mean()
    assert err_inside > 0.5


def test_protocol_helpers():
    assert working_size(300, 400, 128) == (128, 170)  # longer side truncated like torchvision
    assert working_size(401, 128, 128) == (401, 128)
    im = Image.new("RGB", (400, 300))
    assert resize_shorter(im, 128).size == (170, 128)
    assert center_crop(resize_shorter(im, 128), 128).size == (128, 128)
    t = to_tensor(np.array([[[0, 255, 51]]], dtype=np.uint8))
    assert torch.allclose(t.flatten(), torch.tensor([-1.0, 1.0, -0.6]))
    assert np.array_equal(to_uint8(t), np.array([[[0, 255, 51]]], dtype=np.uint8))


@pytest.mark.parametrize("scale", [1, 3])
def test_segment_gives_the_mask_iem_segment_writes(tmp_path, scale):
    # One photo path: a JPEG (working copy decoded at a reduced scale) with default settings,
    # through the library function and through the streaming run behind the command; at 3x
    # (1800 x 1200) the GrabCut pass and the upsampling's grid read the photo reduced by
    # whole blocks.
    from iem.data import sample_path
    from iem.pipeline import segment_files

    photo = sample_path("coffee")
    if scale > 1:
        with Image.open(photo) as image:
            large = image.resize((image.width * scale, image.height * scale), Image.BICUBIC)
        photo = tmp_path / "coffee.jpg"
        large.save(photo, quality=90)
    segment_files([photo], tmp_path / "out", progress=False)
    written = np.asarray(Image.open(tmp_path / "out" / "coffee.mask.png")) == 255
    mask = iem.segment(photo)
    assert mask.shape == written.shape and np.array_equal(mask, written)
    # Not a plain bilinear blow-up: the guided filter moved some boundary pixels.
    assert not np.array_equal(mask, iem.segment(photo, upsample="bilinear"))


def test_photo_mask_runs_the_pass_on_the_photo_reduced_by_whole_blocks(monkeypatch):
    # A 600 x 520 photo, a 32 px working mask and a pass at 64 px: the pass sees the photo
    # reduced 8 times (block means), not the whole photo, and the mask agrees with the pass
    # on the whole photo.
    import iem.api
    from iem.core.refine import refine_on_photo
    from iem.io import upsample_mask
    from tests.io.samples import synthetic_photo

    photo, truth = synthetic_photo(600, 520, seed=4)
    small = np.asarray(Image.fromarray(truth).resize((36, 32), Image.BILINEAR)).astype(np.float32)
    start = small * (np.random.default_rng(0).uniform(size=small.shape) > 0.3)  # holes for the pass to fill
    config = IEMConfig.best(grabcut_photo_size=64)
    seen = []

    def spy(array, mask, settings):
        seen.append(array)
        return refine_on_photo(array, mask, settings)

    monkeypatch.setattr(iem.api, "refine_on_photo", spy)
    got = iem.api.photo_mask(photo, start, config)
    pixels = np.asarray(photo).astype(np.float64)
    blocks = pixels[:520, :600].reshape(65, 8, 75, 8, 3).mean(axis=(1, 3))
    assert len(seen) == 1 and seen[0].shape == (65, 75, 3)
    assert np.abs(seen[0] - blocks).max() <= 0.5 + 1e-9  # block means, rounded
    whole = upsample_mask(refine_on_photo(np.asarray(photo), start, config), photo)
    assert (got & whole).sum() / (got | whole).sum() > 0.98
    assert (got & truth).sum() / (got | truth).sum() > 0.9
    assert not np.array_equal(got, upsample_mask(start, photo))  # the pass changed the mask
    # Without GrabCut, or with GrabCut and no pass size (the paper's IEM then GrabCut), there
    # is no pass: the working mask is upsampled as it is.
    for plain in (IEMConfig.paper(), IEMConfig.paper(grabcut=True)):
        seen.clear()
        assert np.array_equal(iem.api.photo_mask(photo, start, plain), upsample_mask(start, photo))
        assert not seen
