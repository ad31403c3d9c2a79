"""Tiny masks whose scores are worked out by hand (shared by the eval and runner tests).

Ground truth (4 x 4): the top-left 2 x 2 block, 4 pixels.

* ``TOP_ROW`` predicts the top row (4 pixels): intersection 2, union 6 -> IoU 1/3,
  DICE 2*2/(4+4) = 1/2, correct pixels 2 + (16 - 6) = 12 -> accuracy 3/4. Its inverse (12
  pixels) meets the truth in 2: IoU 2/14, DICE 4/16, accuracy 1/4, all lower, so both
  conventions agree.
* ``COMPLEMENT`` predicts everything but the block: strictly 0 / 0 / 0, but its inverse is the
  truth itself, so the inverse-max convention gives 1 / 1 / 1.
"""

from __future__ import annotations

import numpy as np

TRUTH = np.zeros((4, 4), bool)
TRUTH[:2, :2] = True

TOP_ROW = np.zeros((4, 4), bool)
TOP_ROW[0, :] = True

COMPLEMENT = ~TRUTH

#: (acc, iou, dice) per convention for each prediction.
TOP_ROW_SCORES = {"inverse_max": (0.75, 1 / 3, 0.5), "strict": (0.75, 1 / 3, 0.5)}
COMPLEMENT_SCORES = {"inverse_max": (1.0, 1.0, 1.0), "strict": (0.0, 0.0, 0.0)}

#: Means over the two images.
MEAN_SCORES = {
    "acc": 0.875,
    "iou": 2 / 3,
    "dice": 0.75,
    "strict_acc": 0.375,
    "strict_iou": 1 / 6,
    "strict_dice": 0.25,
}
