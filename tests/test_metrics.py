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
