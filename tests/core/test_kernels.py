import pytest
import torch

from iem.config import IEMConfig
from iem.core import kernels
from iem.core.filters import LinearFilter
from iem.core.masks import initial_masks
from iem.core.objective import ImageConstants, NORMALIZER_FLOOR, pixelwise_terms

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")


def inputs(masks):
    n, _, h, w = masks.shape
    cfg = IEMConfig()
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1
    filt = LinearFilter.build(h, w, cfg, torch.float32, "cpu")
    const = ImageConstants.compute(x, filt, cfg.epsilon)
    stacked = torch.cat((x * masks, masks.float()), dim=1)
    sums = stacked.sum(dim=(2, 3), keepdim=True)
    terms = filt(stacked) + cfg.epsilon * sums
    size = sums[:, 3:]
    return (x, const.whole_numerator, const.whole_denominator, terms, masks,
            size.clamp_min(NORMALIZER_FLOOR), (h * w - size).clamp_min(NORMALIZER_FLOOR))


@pytest.mark.parametrize("kind", ["squares", "random", "empty", "full"])
def test_compiled_kernel_matches_the_torch_definition(kind):
    if kind == "squares":
        masks = initial_masks(40, 48, (44, 78, 92))
    elif kind == "random":
        masks = torch.rand(3, 1, 40, 48, generator=torch.Generator().manual_seed(2)) > 0.5
    else:
        masks = torch.full((2, 1, 40, 48), kind == "full")
    args = inputs(masks)
    assert kernels.usable(args[0])
    for got, want in zip(kernels.pixelwise(*args), pixelwise_terms(*args)):
        assert got.shape == want.shape
        assert torch.isfinite(got).all()
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * max(1.0, want.abs().max().item()))
