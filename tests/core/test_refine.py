"""The GrabCut refinement of IEM's masks (iem.core.refine), on synthetic images."""

import sys

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")

import iem
from iem.config import IEMConfig
from iem.core.engine import refine_masks
from iem.core import refine
from iem.core.refine import (
    GAMMA,
    border_width,
    energy_colours,
    grabcut_energy,
    grabcut_labels,
    grabcut_refine,
    grabcut_refine_one,
    mixture_nll,
    photo_pass_size,
    refine_on_photo,
)


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
    one = grabcut_refine(images, masks, 3, 2, False, "union", False, "rgb", workers=1)
    many = grabcut_refine(images, masks, 3, 2, False, "union", False, "rgb", workers=3)
    assert one.shape == (3, 1, 48, 48) and one.dtype == torch.bool
    assert torch.equal(one, many)
    assert torch.equal(one[1:2], grabcut_refine(images[1:2], masks[1:2], 3, 2, False, "union", False, "rgb"))


def _skip_in_a_forked_process():
    # A process forked after OpenCV ran in parallel (mutation testing forks its runs from the
    # suite's process) cannot change OpenCV's thread count: the call waits forever.
    if not refine._SERIAL_OPENCV._active:
        pytest.skip("OpenCV's thread count cannot be changed in a forked process")


@pytest.fixture
def opencv_threads(monkeypatch):
    """OpenCV's thread count as a plain value (3 to start with), with a fresh serial context in
    the module, so that the context's logic is checked without changing OpenCV's pool (which a
    forked process cannot)."""
    count = {"threads": 3}
    monkeypatch.setattr(cv2, "getNumThreads", lambda: count["threads"])
    monkeypatch.setattr(cv2, "setNumThreads", lambda threads: count.update(threads=threads))
    monkeypatch.setattr(refine, "_SERIAL_OPENCV", refine._SerialOpenCV())
    return count


def test_a_batch_runs_opencv_single_threaded_and_restores_its_setting(monkeypatch, opencv_threads):
    seen = []

    def record(image, mask, *args):
        seen.append(cv2.getNumThreads())
        return mask

    monkeypatch.setattr(refine, "grabcut_refine_one", record)
    grabcut_refine(torch.zeros(4, 3, 8, 8), torch.zeros(4, 1, 8, 8, dtype=torch.bool), 1, 2, False, "union", False, "rgb", workers=2)
    assert seen == [1, 1, 1, 1] and opencv_threads["threads"] == 3


def test_serial_opencv_contexts_nest_and_restore_on_errors(opencv_threads):
    serial = refine._SerialOpenCV()
    serial.__enter__()  # two batches in two threads, the first to start ends first
    serial.__enter__()
    assert opencv_threads["threads"] == 1
    serial.__exit__(None, None, None)  # the other batch still runs: OpenCV stays serial
    assert opencv_threads["threads"] == 1
    serial.__exit__(None, None, None)
    assert opencv_threads["threads"] == 3
    with pytest.raises(RuntimeError):
        with serial:
            raise RuntimeError("a cut failed")
    assert opencv_threads["threads"] == 3


def test_a_forked_context_leaves_opencv_alone(opencv_threads):
    serial = refine._SerialOpenCV()
    serial.forked()
    with serial:
        assert opencv_threads["threads"] == 3
        with serial:
            pass
    assert opencv_threads["threads"] == 3


def test_serial_opencv_with_opencv_itself():
    _skip_in_a_forked_process()
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        with refine._SerialOpenCV():
            assert cv2.getNumThreads() == 1
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def _disc_batch_cut():
    """The disc scene's batch cut (box union, energy rule, one polish), as bytes."""
    image, start = disc_scene(size=48, radius=12, seed=0)
    refined = grabcut_refine(as_tensor(image)[None], torch.from_numpy(start)[None, None], 3, 2, True, "energy", True, "rgb", 1)
    return refined.numpy().tobytes()


def _cut_in_a_child(queue):
    queue.put(_disc_batch_cut())


def test_a_batch_in_a_process_forked_after_opencv_ran_in_parallel():
    # cv2.setNumThreads in such a child waits forever for the parent's pool threads: the batch
    # must leave OpenCV's setting alone there and cut as the parent does.
    import multiprocessing

    _skip_in_a_forked_process()

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    photo = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    cv2.resize(photo, (500, 500), interpolation=cv2.INTER_AREA)  # large enough for OpenCV to start its pool
    try:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_cut_in_a_child, args=(queue,))
        child.start()
        child.join(60)
        if child.is_alive():
            child.kill()
            child.join()
        assert child.exitcode == 0, "the forked batch hung or failed"
        assert queue.get(timeout=10) == _disc_batch_cut()
    finally:
        cv2.setNumThreads(before)


def test_refinement_needs_rgb():
    with pytest.raises(ValueError, match="RGB"):
        grabcut_refine(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16, dtype=torch.bool), 1, 2, False, "union", False, "rgb")
    with pytest.raises(ValueError, match="3 channels"):
        iem.segment_batch(torch.zeros(1, 2, 16, 16), IEMConfig.best(iterations=1))


def test_segment_batch_refines_the_kept_iem_masks():
    image, disc = disc_scene(size=40, radius=9)
    images = as_tensor(image).unsqueeze(0)
    config = IEMConfig.best(iterations=5)
    plain = iem.segment_batch(images, config.replace(grabcut=False), device="cpu")
    refined = iem.segment_batch(images, config, device="cpu")
    assert torch.equal(refined.masks, refine_masks(images, plain.masks, config))
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


@pytest.mark.parametrize(
    "photo_side, mask_side, config, expected",
    [
        (1000, 128, IEMConfig.best(grabcut_photo_size=384), 384),
        (300, 128, IEMConfig.best(grabcut_photo_size=384), 300),  # never enlarged
        (128, 128, IEMConfig.best(grabcut_photo_size=384), 0),  # no finer than the mask
        (1000, 384, IEMConfig.best(grabcut_photo_size=384), 0),
        (1000, 128, IEMConfig.best(grabcut_photo_size=0), 0),
        (1000, 128, IEMConfig.paper(grabcut_photo_size=384), 0),  # no GrabCut
    ],
)
def test_photo_pass_size(photo_side, mask_side, config, expected):
    assert photo_pass_size(photo_side, mask_side, config) == expected


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


def test_border_width_of_one_pixel_at_the_reference_size():
    assert border_width(1, 128, 128) == 1 and border_width(1, 64, 300) == 1  # round(0.5) is 0, kept at 1
    assert border_width(1, 384, 384) == 3


def flat_disc():
    """The disc scene without noise: every pixel of the disc is one colour, every other another."""
    yy, xx = np.mgrid[:48, :48]
    disc = (yy - 23.5) ** 2 + (xx - 23.5) ** 2 <= 144
    return np.where(disc[..., None], [200, 30, 40], [40, 160, 60]).astype(np.uint8), disc


@pytest.mark.parametrize("count", [4, 5])
def test_five_pixels_of_foreground_are_enough_to_model_it(count):
    image, disc = flat_disc()
    start = np.zeros_like(disc)
    start[24, 22 : 22 + count] = True  # a few pixels of the disc
    refined = grabcut_refine_one(image, start, 3, 2)
    # Five pixels fill GrabCut's five colour components: the disc's colour is modelled and the
    # cut takes the whole disc; four cannot be modelled and the start is returned as it was.
    np.testing.assert_array_equal(refined, disc if count == 5 else start)


@pytest.mark.parametrize("count", [4, 5])
def test_five_pixels_of_background_are_enough_to_model_it(count):
    image, disc = flat_disc()
    start = np.ones_like(disc)
    start[2, 2 : 2 + count] = False  # everything but a few pixels of the background
    refined = grabcut_refine_one(image, start, 3, 0)
    np.testing.assert_array_equal(refined, disc if count == 5 else start)


def test_colour_models_are_mixtures_fitted_to_the_start():
    # A red and blue square on green, with a purple patch in the background whose colour is the
    # mean of the square's two. One Gaussian per region would put purple, the mean of the
    # foreground's colours, in the foreground; a mixture fitted to the start (GC_INIT_WITH_MASK:
    # k-means components) models red and blue apart and the patch's purple in the background.
    image = np.zeros((48, 48, 3), np.uint8)
    image[:] = [40, 160, 60]
    image[4:10, 4:10] = [120, 30, 120]
    image[14:34, 14:24] = [220, 30, 20]
    image[14:34, 24:34] = [20, 30, 220]
    square = np.zeros((48, 48), bool)
    square[14:34, 14:34] = True
    np.testing.assert_array_equal(grabcut_refine_one(image, square, 1, 2), square)
    np.testing.assert_array_equal(grabcut_refine_one(image, square, 3, 2), square)


def test_batch_refines_each_image_with_its_ring_and_the_box_union():
    # Image 0: a disc cut by the top edge, which only the ring keeps out of the mask; image 1: a
    # blue patch apart from the disc, which only the cut from the box takes.
    top, top_disc = disc_scene(size=96, seed=2)
    top, top_start = np.ascontiguousarray(top[36:84, 24:72]), top_disc[36:84, 24:72]
    patch, _ = disc_scene(seed=3)
    patch[2:12, 2:12] = [30, 40, 210]
    patch_start = np.zeros((48, 48), bool)
    patch_start[16:32, 16:32] = True
    images = torch.stack([as_tensor(top), as_tensor(patch)])
    masks = torch.from_numpy(np.stack([top_start, patch_start])).unsqueeze(1)
    ring = 1  # 2 px at 128 px is 0.75 px at 48 px, rounded to 1
    plain = grabcut_refine(images, masks, 3, 2, False, "union", False, "rgb")
    union = grabcut_refine(images, masks, 3, 2, True, "union", False, "rgb", workers=2)
    for index, (image, start) in enumerate(((top, top_start), (patch, patch_start))):
        np.testing.assert_array_equal(plain[index, 0].numpy(), grabcut_refine_one(image, start, 3, ring))
        np.testing.assert_array_equal(union[index, 0].numpy(), grabcut_refine_one(image, start, 3, ring, box_union=True))
    # What makes the comparison bite: a ring of 1 px keeps the top row out (a ring of 2 would
    # take the second too), only the union takes the patch, and the cut moves the start.
    assert top_start[0].any() and not plain[0, 0, 0].any() and plain[0, 0, 1].any()
    assert not plain[1, 0, 2:12, 2:12].any() and union[1, 0, 2:12, 2:12].all()
    assert not np.array_equal(plain[1, 0].numpy(), patch_start)


def test_without_opencv_the_refinement_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    with pytest.raises(ValueError) as refused:
        grabcut_refine(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool), 1, 2, False, "union", False, "rgb")
    assert str(refused.value) == "the GrabCut refinement (IEMConfig.grabcut) needs OpenCV: pip install opencv-python-headless"


def test_photo_pass_shrinks_the_photo_by_area_averaging():
    # Columns of the square repeat red, green, green: averaged over 3 x 3 blocks (area) the square
    # is one brown, (210 + 2 * 30) / 3 = 90 etc.; sampled (bilinear at a third), it would be
    # the green of the background and the cut would not find it.
    red, green = np.array([210, 30, 30]), np.array([30, 150, 60])
    photo = np.tile(green, (96, 96, 1)).astype(np.uint8)
    photo[30:66, 30:66] = np.where((np.arange(30, 66) % 3 == 0)[None, :, None], red, green)
    small = photo.reshape(32, 3, 32, 3, 3).mean(axis=(1, 3)).round().astype(np.uint8)  # the area average
    assert (small[10:22, 10:22] == [90, 110, 50]).all()
    coarse = np.zeros((16, 16), bool)
    coarse[4:12, 4:12] = True  # around the square (rows and columns 10..21 at 32 px)
    # Enlarged twice, bilinear puts 0.25 or 0.75 beside an edge: thresholded, it repeats each pixel.
    start = coarse.repeat(2, axis=0).repeat(2, axis=1)
    config = IEMConfig.best(grabcut_photo_size=32)
    ring = 1  # 2 px at 128 px, at 32 px
    expected = grabcut_refine_one(small, start, config.grabcut_iterations, ring)
    refined = refine_on_photo(photo, coarse, config)
    np.testing.assert_array_equal(refined, expected)
    square = np.zeros((32, 32), bool)
    square[10:22, 10:22] = True
    np.testing.assert_array_equal(refined, square)


def test_photo_pass_counts_a_half_as_foreground():
    photo, _ = disc_scene(size=64, radius=20)
    soft = np.full((16, 16), 0.5, np.float32)  # bilinear keeps a constant exactly: 0.5 everywhere
    config = IEMConfig.best(grabcut_photo_size=64)
    expected = grabcut_refine_one(photo, np.ones((64, 64), bool), config.grabcut_iterations, 1)
    np.testing.assert_array_equal(refine_on_photo(photo, soft, config), expected)
    assert expected.any()
def test_mixture_nll_is_the_density_of_the_mixture_without_its_constant():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    weights = np.array([0.5, 0.3, 0.2, 0.0, 0.0])  # two components unused, as OpenCV leaves them
    means = rng.uniform(0, 255, (5, 3))
    covariances = []
    for _ in range(3):
        root = rng.normal(0, 20, (3, 3))
        covariances.append(root @ root.T + 5 * np.eye(3))
    covariances += [np.zeros((3, 3))] * 2  # an unused component's covariance stays zero in OpenCV's model
    model = np.concatenate([weights, means.ravel(), np.array(covariances).ravel()])
    colours = rng.uniform(0, 255, (40, 3))
    density = sum(w * stats.multivariate_normal(m, c).pdf(colours) for w, m, c in zip(weights[:3], means, covariances))
    expected = -np.log(density * (2 * np.pi) ** 1.5)
    np.testing.assert_allclose(mixture_nll(model, colours), expected, rtol=1e-9)


def _energy_by_hand(image, mask, border):
    """GrabCut's energy with pixel loops: data under the mixtures OpenCV fits to ``mask``,
    boundary over each 8-neighbour pair once."""
    stats = pytest.importorskip("scipy.stats")
    labels = grabcut_labels(mask, border)
    models = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), labels, None, models[0], models[1], 0, cv2.GC_INIT_WITH_MASK)
    z = image[..., ::-1].astype(float)
    height, width = mask.shape
    data = 0.0
    for y in range(height):
        for x in range(width):
            model = models[1 if mask[y, x] else 0][0]
            density = sum(
                model[k] * stats.multivariate_normal(model[5 + 3 * k : 8 + 3 * k], model[20 + 9 * k : 29 + 9 * k].reshape(3, 3)).pdf(z[y, x])
                for k in range(5) if model[k] > 0
            )
            data -= np.log(density * (2 * np.pi) ** 1.5)
    pairs = [((y, x), (y + dy, x + dx)) for y in range(height) for x in range(width)
             for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)) if 0 <= y + dy < height and 0 <= x + dx < width]
    beta = 1 / (2 * np.mean([((z[a] - z[b]) ** 2).sum() for a, b in pairs]))
    boundary = sum(GAMMA / np.hypot(a[0] - b[0], a[1] - b[1]) * np.exp(-beta * ((z[a] - z[b]) ** 2).sum())
                   for a, b in pairs if mask[a] != mask[b])
    return (data + boundary) / mask.size


def test_energy_matches_a_pixel_by_pixel_computation():
    image, disc = disc_scene(size=20, radius=5, seed=2)
    for mask in (disc, np.roll(disc, 3, axis=1)):
        assert grabcut_energy(image, mask, 1) == pytest.approx(_energy_by_hand(image, mask, 1), rel=1e-9)


def test_energy_is_lowest_for_the_object_and_infinite_without_a_region():
    image, disc = disc_scene()
    larger = np.zeros_like(disc)
    larger[8:40, 8:40] = True
    assert grabcut_energy(image, disc, 2) < min(grabcut_energy(image, larger, 2), grabcut_energy(image, np.roll(disc, 6, 0), 2))
    assert grabcut_energy(image, np.zeros_like(disc), 2) == float("inf")


def _flat_halves(step):
    """An 8 x 10 grey image whose right half is ``step`` brighter in blue, and the right half as
    the mask: each region one colour, so that each mixture's covariance is OpenCV's floor 0.01 I."""
    image = np.full((8, 10, 3), 100, np.uint8)
    image[:, 5:, 2] += step
    half = np.zeros((8, 10), bool)
    half[:, 5:] = True
    return image, half


@pytest.mark.parametrize("step", [0, 1])
def test_energy_of_flat_regions_by_hand(step):
    # Each pixel's density under its region's mixture (weights summing to 1, covariance 0.01 I)
    # is 1 / sqrt(1e-6) = 1000. The cut crosses 8 horizontal and 2 x 7 diagonal pairs, each of
    # squared difference step^2, of the 8 * 9 + 7 * 10 + 2 * 7 * 9 = 268 pairs: beta is
    # 268 / (2 * 22) for a step of 1 (a mean under 1); a flat image has no contrast to weigh.
    image, half = _flat_halves(step)
    contrast = np.exp(-268 / 44) if step else 1.0
    expected = (-80 * np.log(1000) + GAMMA * (8 + 14 / np.sqrt(2)) * contrast) / 80
    assert grabcut_energy(image, half, 0) == pytest.approx(expected, rel=1e-9)


def test_energy_rule_keeps_the_cut_from_the_mask_on_a_tie():
    # Without a ring the box leaves no background: the box's cut keeps the whole image, whose
    # energy is infinite, as is that of a start of 4 pixels, which GrabCut cannot model and keeps.
    image, _ = disc_scene(size=16, radius=4)
    start = np.zeros((16, 16), bool)
    start[7:9, 7:9] = True
    assert grabcut_energy(image, start, 0) == grabcut_energy(image, np.ones_like(start), 0) == float("inf")
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 0, box_union=True, box_rule="energy"), start)
    assert grabcut_refine_one(image, start, 3, 0, box_union=True, box_rule="union").all()


def _two_part_scene():
    """A red disc beside a blue one on green: started from the red disc alone, GrabCut keeps
    the blue one out, the box's cut takes both."""
    image, red = disc_scene(size=48, radius=8, seed=4)
    yy, xx = np.mgrid[:48, :48]
    blue = (yy - 24) ** 2 + (xx - 33) ** 2 <= 64
    red = np.roll(red, -9, axis=1) & ~blue
    image = np.where(red[..., None], [200, 30, 40], np.where(blue[..., None], [30, 40, 200], image)).astype(np.uint8)
    return image, red, red | blue


def _stripes_scene():
    """A small red disc on a striped square, framed by grey: the box's cut takes the whole
    striped square, the start the disc."""
    image, disc = disc_scene(size=48, radius=5, seed=5)
    stripes = np.where((np.arange(48) // 3 % 2)[None, :, None] == 1, [220, 220, 60], [60, 60, 220])
    inner = np.zeros((48, 48), bool)
    inner[10:38, 10:38] = True
    image = np.where(disc[..., None], image, np.where(inner[..., None], stripes, [128, 128, 128])).astype(np.uint8)
    return image, disc


def test_energy_rule_keeps_the_union_only_where_it_lowers_the_energy():
    image, red, both = _two_part_scene()
    alone = grabcut_refine_one(image, red, 3, 2)
    union = grabcut_refine_one(image, red, 3, 2, box_union=True)
    assert (union & both).sum() == both.sum() and (alone & both).sum() < 0.6 * both.sum()  # only the union has both parts
    assert grabcut_energy(image, union, 2) < grabcut_energy(image, alone, 2)
    np.testing.assert_array_equal(grabcut_refine_one(image, red, 3, 2, box_union=True, box_rule="energy"), union)

    image, disc = _stripes_scene()
    alone = grabcut_refine_one(image, disc, 3, 2)
    union = grabcut_refine_one(image, disc, 3, 2, box_union=True)
    assert union.sum() > 4 * alone.sum()  # the box's cut took the stripes around the disc
    assert grabcut_energy(image, alone, 2) < grabcut_energy(image, union, 2)
    np.testing.assert_array_equal(grabcut_refine_one(image, disc, 3, 2, box_union=True, box_rule="energy"), alone)


def test_energy_rule_passes_through_the_batch_and_the_config():
    image, red, _ = _two_part_scene()
    stripes, disc = _stripes_scene()
    images = torch.stack([as_tensor(image), as_tensor(stripes)])
    masks = torch.from_numpy(np.stack([red, disc]))[:, None]
    config = IEMConfig.best(grabcut_iterations=3, grabcut_box_union=True, grabcut_box_rule="energy")
    expected = [grabcut_refine_one(im, m, 3, 2, box_union=True, box_rule="energy") for im, m in ((image, red), (stripes, disc))]
    np.testing.assert_array_equal(refine_masks(images, masks, config)[:, 0].numpy(), np.stack(expected))
    # The union rule takes the box's cut of the stripes, which the energy rule leaves out.
    union = grabcut_refine(images[1:], masks[1:], 3, 2, True, "union", False, "rgb")[0, 0].numpy()
    assert union.sum() > 4 * expected[1].sum()
    np.testing.assert_array_equal(union, grabcut_refine_one(stripes, disc, 3, 2, box_union=True))
    with pytest.raises(ValueError, match="grabcut_box_rule"):
        IEMConfig(grabcut_box_rule="always")


def _noise_scene(size=32):
    """Uniform colour noise with a square start: no colour model tells the square from the
    rest, so GrabCut gives every pixel to the background (the border's mixture)."""
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    start = np.zeros((size, size), bool)
    start[size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = True
    return image, start


def test_a_cut_that_empties_the_foreground_keeps_its_start_when_rejected():
    image, start = _noise_scene()
    assert not grabcut_refine_one(image, start, 3, 2).any()
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 2, reject_empty=True), start)
    # The box's cut empties too and adds nothing: the union is the start, and so is the energy
    # rule's choice between two equal labellings.
    for rule in ("union", "energy"):
        np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 2, True, rule, reject_empty=True), start)
    # A start that reaches the image's edge is kept whole, the ring's pixels too: no pass without
    # iterations puts the ring back to the background.
    edge = start.copy()
    edge[: start.shape[0] // 2, start.shape[1] // 3 : 2 * start.shape[1] // 3] = True
    assert not grabcut_refine_one(image, edge, 3, 2).any()
    np.testing.assert_array_equal(grabcut_refine_one(image, edge, 3, 2, reject_empty=True), edge)


def test_the_box_is_cut_with_its_own_iterations():
    # The coffee photo at 48 px: the box's cut still moves at its second and third iterations.
    image, start = _sample_scene("coffee", 48)
    box = [_cut_by_hand(image, np.ones_like(start), iterations, 1) for iterations in (1, 2, 3)]
    cut = grabcut_refine_one(image, start, 3, 1)
    assert len({(cut | b).tobytes() for b in box}) == 3  # each count gives another union
    for box_iterations, expected in ((1, 1), (2, 2), (0, 3)):  # 0: as many as the cut from the mask
        union = grabcut_refine_one(image, start, 3, 1, box_union=True, box_iterations=box_iterations)
        np.testing.assert_array_equal(union, cut | box[expected - 1])
    images, masks = as_tensor(image)[None], torch.from_numpy(start)[None, None]
    # best's ring of 2 px at 128 px is 1 px at 48 px.
    config = IEMConfig.best(grabcut_box_rule="union", grabcut_polish_iterations=0, grabcut_box_iterations=1)
    np.testing.assert_array_equal(refine_masks(images, masks, config)[0, 0].numpy(), cut | box[0])


def test_energies_are_not_computed_when_the_box_adds_nothing(monkeypatch):
    # Both labellings are the same there: the rule's answer is known without fitting mixtures.
    image, start = _noise_scene()

    def no_energy(*args):
        raise AssertionError("the energies were computed for two equal labellings")

    monkeypatch.setattr(refine, "_energy_and_models", no_energy)
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 2, True, "energy", reject_empty=True), start)


@pytest.mark.parametrize("kept, rejected", [(4, True), (5, False)])
def test_a_cut_is_rejected_below_as_many_pixels_as_mixture_components(monkeypatch, kept, rejected):
    start = np.ones((6, 6), bool)
    cut = np.zeros((6, 6), bool)
    cut.flat[:kept] = True  # what GrabCut is made to return: a mixture needs 5 pixels
    monkeypatch.setattr(refine, "_grabcut", lambda image, mask, iterations, border, models=None: cut)
    out = grabcut_refine_one(np.zeros((6, 6, 3), np.uint8), start, 1, 0, reject_empty=True)
    np.testing.assert_array_equal(out, start if rejected else cut)


def test_rejecting_empty_cuts_passes_through_the_batch_and_the_photo_pass():
    image, start = _noise_scene()
    images, masks = as_tensor(image)[None], torch.from_numpy(start)[None, None]
    config = IEMConfig(grabcut=True, grabcut_iterations=3, grabcut_reject_empty=True)
    assert torch.equal(refine_masks(images, masks, config), masks)
    assert not refine_masks(images, masks, config.replace(grabcut_reject_empty=False)).any()
    # The photo pass at twice the working size: an emptied pass keeps the enlarged start (a
    # bilinear 2x enlargement of a square, thresholded at 0.5, is the square of 2x2 blocks).
    photo, _ = _noise_scene(64)
    config = config.replace(grabcut_photo_size=64)
    np.testing.assert_array_equal(refine_on_photo(photo, start, config), np.kron(start, np.ones((2, 2), bool)))
    assert not refine_on_photo(photo, start, config.replace(grabcut_reject_empty=False)).any()


def _cielab_codes(rgb):
    """CIELAB of sRGB colours (D65 white) from the textbook formulas, in OpenCV's 8-bit encoding."""
    c = rgb.astype(float) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
    xyz = linear @ to_xyz.T / np.array([0.950456, 1.0, 1.088754])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lightness = np.where(xyz[..., 1] > 0.008856, 116 * f[..., 1] - 16, 903.3 * xyz[..., 1])
    lab = np.stack([lightness * 255 / 100, 500 * (f[..., 0] - f[..., 1]) + 128, 200 * (f[..., 1] - f[..., 2]) + 128], -1)
    return np.clip(lab.round(), 0, 255)


def test_energy_colours_are_the_image_or_its_cielab():
    levels = np.array([0, 1, 30, 64, 128, 200, 254, 255])
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 1, 3).astype(np.uint8)
    assert energy_colours(grid, "rgb") is grid
    lab = energy_colours(grid, "lab")
    assert lab.dtype == np.uint8 and lab.shape == grid.shape
    assert np.abs(lab.astype(float) - _cielab_codes(grid)).max() <= 2  # OpenCV interpolates fixed-point tables
    assert tuple(energy_colours(np.array([[[255, 255, 255]]], np.uint8), "lab")[0, 0]) == (255, 128, 128)


def _colour_pair_scene():
    """A peach disc beside an olive one on dark blue noise: started from the peach disc, the box's
    cut adds the olive one; GrabCut's energy prefers the peach disc alone in RGB and the union in
    CIELAB."""
    _, peach, _ = _two_part_scene()
    yy, xx = np.mgrid[:48, :48]
    olive = (yy - 24) ** 2 + (xx - 33) ** 2 <= 64
    background = np.random.default_rng(0).normal(0, 12, (48, 48, 3)) + [19, 4, 44]
    image = np.where(peach[..., None], [217, 163, 130], np.where(olive[..., None], [69, 78, 10], background))
    return np.clip(image, 0, 255).round().astype(np.uint8), peach


def test_energy_rule_measures_in_the_chosen_colours():
    image, peach = _colour_pair_scene()
    alone = grabcut_refine_one(image, peach, 3, 2)
    union = grabcut_refine_one(image, peach, 3, 2, box_union=True)
    assert union.sum() > 1.5 * alone.sum()
    lab = energy_colours(image, "lab")
    # The scene is one where the two colour spaces disagree, so that the choice shows which was used.
    assert grabcut_energy(image, alone, 2) < grabcut_energy(image, union, 2)
    assert grabcut_energy(lab, union, 2) < grabcut_energy(lab, alone, 2)
    np.testing.assert_array_equal(grabcut_refine_one(image, peach, 3, 2, True, "energy", energy_space="rgb"), alone)
    np.testing.assert_array_equal(grabcut_refine_one(image, peach, 3, 2, True, "energy"), alone)  # RGB by default
    np.testing.assert_array_equal(grabcut_refine_one(image, peach, 3, 2, True, "energy", energy_space="lab"), union)
    # Through the batch and the config.
    images, masks = as_tensor(image)[None], torch.from_numpy(peach)[None, None]
    config = IEMConfig.best()
    np.testing.assert_array_equal(refine_masks(images, masks, config)[0, 0].numpy(), alone)
    np.testing.assert_array_equal(refine_masks(images, masks, config.replace(grabcut_energy_space="lab"))[0, 0].numpy(), union)
    with pytest.raises(ValueError, match="grabcut_energy_space"):
        IEMConfig(grabcut_energy_space="hsv")


def _cut_by_hand(image, start, iterations, border):
    """OpenCV's GrabCut from ``start`` called directly: labels 3 on the start, 2 elsewhere, 0 on
    the ring; seed 0; the foreground is labels 1 and 3."""
    labels = np.where(start, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[:border], labels[-border:], labels[:, :border], labels[:, -border:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    cv2.setRNGSeed(0)
    labels, _, _ = cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), labels, None, None, None, iterations, cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _sample_scene(name, size):
    """A shipped sample photo shrunk to ``size`` px, with a centred square start of 3/8 of it."""
    from iem.data import sample_path

    photo = cv2.cvtColor(cv2.imread(str(sample_path(name))), cv2.COLOR_BGR2RGB)
    image = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
    start = np.zeros((size, size), bool)
    start[size * 5 // 16 : size * 11 // 16, size * 5 // 16 : size * 11 // 16] = True
    return image, start


def _retina_scene():
    """The retina photo at 64 px: the union the energy rule keeps there is not where GrabCut
    stops, one more iteration moves it."""
    return _sample_scene("retina", 64)


@pytest.mark.parametrize("rule, space", [("energy", "rgb"), ("energy", "lab"), ("union", "rgb")])
def test_polish_is_more_cuts_from_the_kept_mask(rule, space):
    # Under the energy rule in RGB the polish starts from the mixtures the rule fitted to the
    # kept mask; OpenCV's own fit of that mask, called directly, must give the same cut.
    image, start = _retina_scene()
    options = dict(box_union=True, box_rule=rule, energy_space=space)
    kept = grabcut_refine_one(image, start, 3, 1, **options)
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 1, polish_iterations=0, **options), kept)
    for iterations in (1, 2):
        polished = grabcut_refine_one(image, start, 3, 1, polish_iterations=iterations, **options)
        np.testing.assert_array_equal(polished, _cut_by_hand(image, kept, iterations, 1))
        assert (polished != kept).any()


@pytest.mark.parametrize("reject_empty, kept, rejected", [(True, 0, True), (False, 0, False), (True, 4, True), (True, 5, False)])
def test_a_polish_that_empties_the_foreground_keeps_its_start_when_rejected(monkeypatch, reject_empty, kept, rejected):
    start = np.zeros((8, 8), bool)
    start[2:6, 2:6] = True
    polish = np.zeros_like(start)
    polish.flat[:kept] = True  # what GrabCut is made to return for the polish: a mixture needs 5 pixels
    monkeypatch.setattr(refine, "_grabcut", lambda image, mask, iterations, border, models=None: mask if iterations == 3 else polish)
    out = grabcut_refine_one(np.zeros((8, 8, 3), np.uint8), start, 3, 0, reject_empty=reject_empty, polish_iterations=1)
    np.testing.assert_array_equal(out, start if rejected else polish)


@pytest.mark.parametrize("box_adds, rule, polished", [(False, "union", False), (False, "always", True), (True, "union", True), (True, "always", True)])
def test_the_union_rule_polishes_only_a_union_the_box_added_to(monkeypatch, box_adds, rule, polished):
    start = np.zeros((8, 8), bool)
    start[2:6, 2:6] = True
    box = start.copy()
    box[1, 1] = box_adds  # the box's cut: inside the start, or one pixel more
    moved = np.zeros_like(start)
    moved[3:5, 3:5] = True  # what the polish is made to return
    cuts = {3: lambda mask: mask, 2: lambda mask: box, 1: lambda mask: moved}  # by iterations: A, the box, the polish
    monkeypatch.setattr(refine, "_grabcut", lambda image, mask, iterations, border, models=None: cuts[iterations](mask))
    out = grabcut_refine_one(np.zeros((8, 8, 3), np.uint8), start, 3, 0, box_union=True, polish_iterations=1, box_iterations=2, polish_rule=rule)
    np.testing.assert_array_equal(out, moved if polished else start | box)


def test_the_union_rule_polishes_what_the_energy_rule_kept_only_where_it_kept_the_union():
    # The coffee photo at 48 px: the rule keeps the cut from the square, which one more iteration
    # would move. The retina at 64 px: it keeps the union, polished as by the rule "always".
    options = dict(box_union=True, box_rule="energy", polish_iterations=1)
    image, start = _sample_scene("coffee", 48)
    cut = grabcut_refine_one(image, start, 3, 1)
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 1, box_union=True, box_rule="energy"), cut)
    assert (_cut_by_hand(image, cut, 1, 1) != cut).any()
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 1, polish_rule="union", **options), cut)
    images, masks = as_tensor(image)[None], torch.from_numpy(start)[None, None]
    for rule, expected in (("union", cut), ("always", _cut_by_hand(image, cut, 1, 1))):  # best's ring of 2 px is 1 px at 48 px
        np.testing.assert_array_equal(refine_masks(images, masks, IEMConfig.best(grabcut_polish_rule=rule))[0, 0].numpy(), expected)
    default = grabcut_refine(images, masks, 3, 2, True, "energy", False, "rgb", 1)  # the batch's own default polishes all
    np.testing.assert_array_equal(default[0, 0].numpy(), _cut_by_hand(image, cut, 1, 1))
    image, start = _retina_scene()
    kept = grabcut_refine_one(image, start, 3, 1, box_union=True, box_rule="energy")
    assert not np.array_equal(kept, grabcut_refine_one(image, start, 3, 1))
    np.testing.assert_array_equal(grabcut_refine_one(image, start, 3, 1, polish_rule="union", **options), _cut_by_hand(image, kept, 1, 1))


def test_polish_passes_through_the_batch_and_the_config_and_not_the_photo_pass():
    image, start = _retina_scene()
    images, masks = as_tensor(image)[None], torch.from_numpy(start)[None, None]
    config = IEMConfig.best(grabcut_polish_iterations=1)
    kept = grabcut_refine_one(image, start, 3, 1, box_union=True, box_rule="energy", reject_empty=True)
    refined = refine_masks(images, masks, config)[0, 0].numpy()
    np.testing.assert_array_equal(refined, _cut_by_hand(image, kept, 1, 1))
    assert (refined != kept).any()
    assert IEMConfig.paper().grabcut_polish_iterations == 0
    plain = grabcut_refine(images, masks, 3, 2, True, "energy", True, "rgb")[0, 0].numpy()  # no polish unless asked
    np.testing.assert_array_equal(plain, kept)
    with pytest.raises(ValueError, match="grabcut_polish_iterations"):
        IEMConfig(grabcut_polish_iterations=-1)
    # The photo pass moves the outline of the working mask and does not polish it again.
    photo = cv2.resize(image, (128, 128), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(
        refine_on_photo(photo, refined, config.replace(grabcut_photo_size=128)),
        refine_on_photo(photo, refined, config.replace(grabcut_photo_size=128, grabcut_polish_iterations=0)),
    )
