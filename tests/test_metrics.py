import pytest
import torch

from iem import metrics


def masks(*rows):
    return torch.tensor(rows, dtype=torch.bool).unsqueeze(0)


def test_strict_metrics_by_hand():
    pred = masks([1, 1, 0, 0], [0, 0, 0, 0])
    gt = masks([1, 0, 0, 0], [1, 0, 0, 0])
    s = metrics.binary_scores(pred, gt, "strict")
    # intersection 1, union 3, |pred| + |gt| = 4, 6 of 8 pixels agree
    assert s["iou"].item() == pytest.approx(1 / 3)
    assert s["dice"].item() == pytest.approx(2 / 4)
    assert s["acc"].item() == pytest.approx(6 / 8)


def test_inverse_max_takes_the_better_polarity_per_metric():
    gt = masks([1, 1, 0, 0], [1, 1, 0, 0])
    pred = ~gt
    strict = metrics.binary_scores(pred, gt, "strict")
    inv = metrics.binary_scores(pred, gt, "inverse_max")
    assert strict["iou"].item() == 0.0 and inv["iou"].item() == 1.0
    assert inv["acc"].item() == 1.0 and inv["dice"].item() == 1.0


def test_empty_masks_are_defined():
    empty = masks([0, 0], [0, 0])
    s = metrics.binary_scores(empty, empty, "strict")
    assert s["iou"].item() == 1.0 and s["dice"].item() == 1.0
    full = ~empty
    s = metrics.binary_scores(empty, full, "strict")
    assert s["iou"].item() == 0.0 and s["dice"].item() == 0.0


def test_mean_over_images_and_shapes():
    pred = torch.stack([masks([1, 0])[0], masks([1, 1])[0]]).unsqueeze(1)  # (2, 1, 1, 2)
    gt = torch.stack([masks([1, 0])[0], masks([1, 0])[0]]).unsqueeze(1)
    m = metrics.mean_scores(pred, gt, "strict")
    assert m["iou"] == pytest.approx((1.0 + 0.5) / 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="convention"):
        metrics.binary_scores(masks([1]), masks([1]), "loose")
    with pytest.raises(ValueError, match="differs"):
        metrics.binary_scores(masks([1, 0]), masks([1]))


@pytest.mark.parametrize(
    "pred, gt, strict, inverse",
    [
        # The mask overshoots: the prediction is the better polarity. Scoring (pred, ~gt) for the
        # inverse would give IoU 5/8 and DICE 10/13 here.
        ([1, 1, 1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0], (3 / 8, 1 / 6, 2 / 7), (5 / 8, 0.0, 0.0)),
        # The inverse is the better polarity; (pred, ~gt) would give IoU 5/6 and DICE 10/11.
        ([0, 0, 0, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0, 0], (1 / 8, 0.0, 0.0), (7 / 8, 2 / 3, 4 / 5)),
    ],
)
def test_both_conventions_on_asymmetric_examples(pred, gt, strict, inverse):
    """By hand: strict scores (pred, gt); inverse-max the better of (pred, gt) and (~pred, gt)."""
    p, g = masks(pred), masks(gt)
    s = metrics.binary_scores(p, g, "strict")
    assert [s[k].item() for k in metrics.METRICS] == pytest.approx(list(strict))
    best = [max(a, b) for a, b in zip(strict, inverse)]
    inv = metrics.binary_scores(p, g, "inverse_max")
    assert [inv[k].item() for k in metrics.METRICS] == pytest.approx(best)


def test_every_accepted_shape_and_soft_values_thresholded_at_one_half():
    gt = masks([1, 1, 0], [0, 0, 0])  # (1, 2, 3)
    soft = torch.tensor([[0.5, 0.9, 0.49], [0.0, 0.2, 0.1]])  # >= 0.5 is foreground: equals gt
    for pred in (gt[0], gt.unsqueeze(1), soft, soft.view(1, 1, 2, 3), soft.double()):
        s = metrics.binary_scores(pred, gt, "strict")
        assert [s[k].item() for k in metrics.METRICS] == [1.0, 1.0, 1.0]


def test_wrong_shapes_are_named_in_the_message():
    with pytest.raises(ValueError, match=r"expected \(B, 1, H, W\) masks, got shape \(1, 2, 3, 3\)"):
        metrics.binary_scores(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"expected \(B, H, W\) or \(B, 1, H, W\) masks, got shape \(1, 1, 1, 2, 2\)"):
        metrics.binary_scores(torch.zeros(1, 1, 1, 2, 2), torch.zeros(1, 1, 1, 2, 2))


def test_scores_are_per_image_in_a_batch():
    pred = torch.stack([masks([1, 1, 0, 0])[0], masks([1, 0, 0, 0])[0]])  # (2, 1, 4)
    gt = torch.stack([masks([1, 0, 0, 0])[0], masks([1, 0, 0, 0])[0]])
    s = metrics.binary_scores(pred, gt, "strict")
    assert s["acc"].tolist() == pytest.approx([3 / 4, 1.0])
    assert s["iou"].tolist() == pytest.approx([1 / 2, 1.0])
    assert s["dice"].tolist() == pytest.approx([2 / 3, 1.0])


def test_one_pixel_against_nothing_scores_zero():
    s = metrics.binary_scores(masks([1, 0], [0, 0]), masks([0, 0], [0, 0]), "strict")
    assert s["iou"].item() == 0.0 and s["dice"].item() == 0.0


def test_mean_scores_defaults_to_the_papers_convention_and_needs_an_image():
    pred, gt = masks([0, 0, 0, 1, 1, 1, 1, 1]), masks([1, 1, 0, 0, 0, 0, 0, 0])
    assert metrics.mean_scores(pred, gt) == metrics.mean_scores(pred, gt, "inverse_max")
    assert metrics.mean_scores(pred, gt)["iou"] == pytest.approx(2 / 3)
    assert metrics.mean_scores(pred, gt, "strict")["iou"] == 0.0
    with pytest.raises(ValueError, match=r"^mean_scores needs at least one mask: the batch is empty$"):
        metrics.mean_scores(torch.zeros(0, 2, 2, dtype=torch.bool), torch.zeros(0, 2, 2, dtype=torch.bool))
