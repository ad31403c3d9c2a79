"""The method registry: IEM names, ablations and variants, GrabCut and the trivial references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iem import IEMConfig
from iem.bench import methods as registry
from iem.bench.methods import (
    GrabCutMethod,
    Method,
    MethodContext,
    ablation_names,
    available_names,
    build_method,
    grabcut_rectangle,
    iem_config,
    register_method,
    variant_names,
)
from iem.config import ABLATIONS, VARIANTS
from iem.datasets.protocol import image_to_tensor
from iem.datasets.synthetic import shapes_sample


def test_iem_names_map_to_configs() -> None:
    assert iem_config("paper") == IEMConfig.paper()
    assert iem_config("released") == IEMConfig.released()
    assert iem_config("paper+no_smoothing") == IEMConfig.paper(smoothing=False)
    assert iem_config("paper+l2_marginal") == IEMConfig.paper(numerator_norm="l2", normalizer="marginal")
    assert iem_config("released+no_boundary+l2_size") == IEMConfig.released(boundary_only=False, numerator_norm="l2")


def test_overrides_apply_before_the_change() -> None:
    config = iem_config("paper+no_regularizer", {"lambda_": 0.5, "iterations": 3})
    assert config.lambda_ == 0.0 and config.iterations == 3


def test_every_table_row_has_a_name() -> None:
    assert ablation_names() == [f"paper+{name}" for name in ABLATIONS]
    assert variant_names() == [f"paper+{name}" for name in VARIANTS]
    names = available_names()
    for name in ["paper", "released", "grabcut", "grabcut_wide", "square", "all", *ablation_names(), *variant_names()]:
        assert name in names


@pytest.mark.parametrize(
    "name, message",
    [("papr", "unknown method"), ("paper+bogus", "unknown change"), ("square+no_smoothing", "unknown method")],
)
def test_unknown_names(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_method(name)


def test_bad_device_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="device"):
        build_method("paper", MethodContext(device="tpu"))


def test_bad_overrides_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown IEM setting"):
        iem_config("paper", {"sigmaa": 1.0})
    with pytest.raises(ValueError):
        iem_config("paper", {"sigma": "wide"})
    with pytest.raises(ValueError):
        iem_config("paper", {"iterations": -1})


def test_external_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Half(Method):
        name = "left_half"
        description = "left half of the image"

        def __init__(self, model: object) -> None:
            self.model = model

        def segment(self, images: torch.Tensor) -> torch.Tensor:
            masks = torch.zeros(images.shape[0], *images.shape[2:], dtype=torch.bool)
            masks[..., : images.shape[3] // 2] = True
            return masks

    register_method("left_half", lambda name, context: Half(context.model), Half.description)
    method = build_method("left_half", MethodContext(model="net.pt"))
    assert isinstance(method, Half) and method.model == "net.pt"
    assert "left_half" in available_names()
    with pytest.raises(ValueError, match="already registered"):
        register_method("left_half", lambda name, context: Half(None), "again")
    with pytest.raises(ValueError, match="invalid method name"):
        register_method("a,b", lambda name, context: Half(None), "comma")


def test_square_is_the_released_initial_mask() -> None:
    masks = build_method("square").segment(torch.zeros(2, 3, 128, 128))
    assert masks.shape == (2, 128, 128) and masks.dtype == torch.bool
    expected = torch.zeros(128, 128, dtype=torch.bool)
    expected[25:103, 25:103] = True  # 128 - 2 * (128 // 5) = 78
    assert torch.equal(masks[0], expected) and torch.equal(masks[1], expected)


def test_all_foreground() -> None:
    assert bool(build_method("all").segment(torch.zeros(1, 3, 20, 30)).all())


def test_grabcut_rectangle() -> None:
    assert grabcut_rectangle(128, 128) == (25, 25, 78, 78)
    assert grabcut_rectangle(100, 200) == (40, 20, 120, 60)
    assert grabcut_rectangle(128, 128, margin=1 / 16) == (8, 8, 112, 112)


def test_grabcut_variants() -> None:
    narrow, wide = build_method("grabcut"), build_method("grabcut_wide")
    assert (narrow.name, wide.name) == ("grabcut", "grabcut_wide")
    assert "1/5 margin" in narrow.description and "1/16 margin" in wide.description
    with pytest.raises(ValueError, match="margin"):
        GrabCutMethod("bad", margin=0.5)


def test_grabcut_finds_an_obvious_object_and_repeats() -> None:
    image, truth = shapes_sample(96, 96, np.random.default_rng(4))
    batch = image_to_tensor_batch(image)
    method = build_method("grabcut", MethodContext(seed=3))
    assert isinstance(method, GrabCutMethod)
    first = method.segment(batch)[0].numpy()
    iou = (first & truth).sum() / (first | truth).sum()
    assert iou > 0.8
    assert np.array_equal(method.segment(batch)[0].numpy(), first)


def image_to_tensor_batch(image: np.ndarray) -> torch.Tensor:
    from PIL import Image

    return image_to_tensor(Image.fromarray(image)).unsqueeze(0)


def test_iem_method_runs_segment_batch() -> None:
    image, truth = shapes_sample(64, 64, np.random.default_rng(2))
    method = build_method("released", MethodContext(device="cpu", config_overrides={"iterations": 5}))
    assert method.config is not None and method.config.iterations == 5
    mask = method.segment(image_to_tensor_batch(image))
    assert mask.shape == (1, 64, 64) and mask.dtype == torch.bool
    assert "init_sizes=(78,)" in method.description
