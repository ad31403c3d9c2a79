"""The GrabCut refinement of IEM's masks (iem.core.refine), on synthetic images."""

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")

import iem
from iem.config import IEMConfig
from iem.core.refine import border_width, grabcut_labels, grabcut_refine, grabcut_refine_one, refine_on_photo


def disc_scene(size=48, radius=12, seed=0):
    """A red disc on a green, noisy background: (H, W, 3) uint8 image and the disc's mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= radius**2
    image = np.where(disc[..., None], [200, 30, 40], [40, 160, 60]).astype(float)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), disc


def as_tensor(image):
    return torch.from_numpy(image).permute(2, 0, 1).float() * (2 / 255) - 1


def test_border_width_scales_with_the_shorter_side():
    assert border_width(2, 128, 200) == 2
    assert border_width(2, 300, 256) == 4
    assert border_width(2, 20, 20) == 1  # never rounds to nothing
    assert border_width(0, 512, 512) == 0


def test_labels_ring_is_certain_background():
    mask = np.zeros((6, 7), bool)
    mask[1:5, 2:6] = True
    labels = grabcut_labels(mask, 1)
    expected = np.zeros((6, 7), np.uint8)  # ring and outside: background
    expected[1:5, 1:6] = 2  # probable background inside the ring
    expected[1:5, 2:6] = 3  # probable foreground where the mask is
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(grabcut_labels(mask, 0), np.where(mask, 3, 2))


def test_refinement_recovers_a_disc_from_a_too_large_square():
    image, disc = disc_scene()
    start = np.zeros_like(disc)
    start[8:40, 8:40] = True  # the disc and a band of background around it
    refined = grabcut_refine_one(image, start, iterations=5, border=2)
    iou = (refined & disc).sum() / (refined | disc).sum()
    before = (start & disc).sum() / (start | disc).sum()
    assert before < 0.6 and iou > 0.95


def test_too_little_foreground_keeps_the_mask():
    image, _ = disc_scene()
    start = np.zeros(image.shape[:2], bool)
    start[0, :3] = True  # on the ring only: nothing is left to model the foreground
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 5, 2), start)


def test_batch_is_deterministic_whatever_the_threads():
    scenes = [disc_scene(seed=s, radius=8 + 2 * s) for s in range(3)]
    images = torch.stack([as_tensor(image) for image, _ in scenes])
    masks = torch.zeros(3, 1, 48, 48, dtype=torch.bool)
    masks[..., 10:38, 10:38] = True
    one = grabcut_refine(images, masks, 3, 2, workers=1)
    many = grabcut_refine(images, masks, 3, 2, workers=3)
    assert one.shape == (3, 1, 48, 48) and one.dtype == torch.bool
    assert torch.equal(one, many)
    assert torch.equal(one[1:2], grabcut_refine(images[1:2], masks[1:2], 3, 2))


def test_refinement_needs_rgb():
    with pytest.raises(ValueError, match="RGB"):
        grabcut_refine(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16, dtype=torch.bool), 1, 2)
    with pytest.raises(ValueError, match="3 channels"):
        iem.segment_batch(torch.zeros(1, 2, 16, 16), IEMConfig.best(iterations=1))


def test_segment_batch_refines_the_kept_iem_masks():
    image, disc = disc_scene(size=40, radius=9)
    images = as_tensor(image).unsqueeze(0)
    config = IEMConfig.best(iterations=5)
    plain = iem.segment_batch(images, config.replace(grabcut=False), device="cpu")
    refined = iem.segment_batch(images, config, device="cpu")
    expected = grabcut_refine(images, plain.masks, config.grabcut_iterations, config.grabcut_border)
    assert torch.equal(refined.masks, expected)
    assert torch.equal(refined.scores, plain.scores) and torch.equal(refined.init, plain.init)
    assert (refined.masks[0, 0].numpy() == disc).mean() > 0.97


def test_photo_pass_follows_the_photo_edges_from_a_coarse_mask():
    photo, disc = disc_scene(size=96, radius=30)
    coarse = np.zeros((24, 24), bool)
    coarse[4:20, 4:20] = True  # a blocky square at a quarter of the size, around the disc
    config = IEMConfig.best(grabcut_photo_size=96)
    refined = refine_on_photo(photo, coarse, config)
    assert refined.shape == (96, 96) and refined.dtype == bool
    assert (refined & disc).sum() / (refined | disc).sum() > 0.95


def test_photo_pass_size_never_enlarges_and_can_be_off():
    photo, _ = disc_scene(size=64, radius=20)
    photo = np.ascontiguousarray(np.concatenate([photo, photo[:, :32]], axis=1))  # 64 x 96
    soft = np.full((16, 24), 0.25, np.float32)
    soft[4:12, 6:18] = 0.75
    assert refine_on_photo(photo, soft, IEMConfig.best(grabcut_photo_size=500)).shape == (64, 96)
    assert refine_on_photo(photo, soft, IEMConfig.best(grabcut_photo_size=32)).shape == (32, 48)
    for config in (IEMConfig.best(grabcut_photo_size=0), IEMConfig.paper(grabcut_photo_size=64), IEMConfig.best(grabcut_photo_size=16)):
        assert refine_on_photo(photo, soft, config) is soft  # off: the working mask as it was


def test_box_union_adds_the_cut_started_from_the_box():
    image, disc = disc_scene(seed=1)
    start = np.zeros_like(disc)
    start[20:28, 20:28] = True  # a small part of the disc
    box = np.ones_like(disc)
    alone = grabcut_refine_one(image, start, 3, 2)
    from_box = grabcut_refine_one(image, box, 3, 2)
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 2, box_union=True), alone | from_box)
    assert (from_box & disc).sum() / (from_box | disc).sum() > 0.95
    nothing = np.zeros_like(disc)  # no start to model: the union is the box's cut
    np.testing.assert_array_equal(grabcut_refine_one(image, nothing, 3, 2, box_union=True), from_box)


def test_photo_pass_refines_the_working_mask_once_even_with_the_box_union():
    photo, disc = disc_scene(size=96, radius=20)
    photo[8:24, 8:24] = [30, 40, 210]  # a blue patch apart: the box's cut takes it, the start does not
    coarse = np.zeros((24, 24), bool)
    coarse[8:16, 8:16] = True  # the disc's centre
    start = cv2.resize(coarse.astype(np.float32), (96, 96), interpolation=cv2.INTER_LINEAR) >= 0.5
    config = IEMConfig.best(grabcut_photo_size=96, grabcut_box_union=True)
    ring = border_width(config.grabcut_border, 96, 96)
    expected = grabcut_refine_one(photo, start, config.grabcut_iterations, ring)
    np.testing.assert_array_equal(refine_on_photo(photo, coarse, config), expected)
    assert not np.array_equal(expected, grabcut_refine_one(photo, start, config.grabcut_iterations, ring, box_union=True))
