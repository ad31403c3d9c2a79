"""The network of section 4.2 / docs/reference.md: size, shapes, and that it learns through every part."""

from __future__ import annotations

import pytest
import torch

from iem.segnet.model import SegNet, count_parameters

#: Counted by hand from docs/reference.md ("Phase 2"): stem 25,616 + three residual blocks 221,952
#: + pyramid 260 + decoder 26,946 (convolutions followed by instance norm carry no bias).
PAPER_PARAMETERS = 274_774


def test_parameter_count_at_128_px() -> None:
    assert count_parameters(SegNet()) == PAPER_PARAMETERS
    # "about 275 k parameters at 128 px" (docs/reference.md, "Phase 2")
    assert abs(PAPER_PARAMETERS - 275_000) < 1_000


def test_output_is_one_logit_per_pixel() -> None:
    net = SegNet().eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert out.shape == (2, 1, 128, 128)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_pyramid_windows_follow_the_trunk_side() -> None:
    assert SegNet().pyramid.windows == (32, 16, 10, 5)
    assert SegNet(image_size=32).pyramid.windows == (8, 4, 2, 1)


def test_images_are_independent_of_their_batch(tiny_model: SegNet) -> None:
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        together = tiny_model(x)
        alone = torch.cat([tiny_model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_every_parameter_gets_a_gradient(tiny_model: SegNet) -> None:
    tiny_model.train()
    tiny_model(torch.rand(2, 3, 32, 32) * 2 - 1).sum().backward()
    missing = [name for name, p in tiny_model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("kwargs", [{"image_size": 30}, {"image_size": 16}, {"width": 6}, {"residual_blocks": -1}])
def test_invalid_shapes_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SegNet(**kwargs)


def test_hparams_rebuild_the_same_architecture() -> None:
    net = SegNet(image_size=64, width=32, residual_blocks=2)
    twin = SegNet(**net.hparams())
    assert [p.shape for p in twin.parameters()] == [p.shape for p in net.parameters()]
