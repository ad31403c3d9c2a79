import dataclasses
import re

import pytest

from iem.config import ABLATIONS, VARIANTS, IEMConfig


def test_defaults_are_the_papers_settings():
    cfg = IEMConfig()
    assert (cfg.iterations, cfg.kernel_size, cfg.sigma, cfg.filter_repeats) == (150, 11, 5.0, 2)
    assert (cfg.lambda_, cfg.scale_factor, cfg.init_sizes) == (0.001, 1, (44, 78, 92))
    assert cfg.smoothing and cfg.boundary_only and cfg.closed_form
    assert IEMConfig.paper() == cfg


def test_released_preset_uses_one_square_of_78():
    assert IEMConfig.released().init_sizes == (78,)
    assert IEMConfig.preset("released", iterations=3).iterations == 3


def test_best_preset_is_the_paper_then_grabcut():
    best = IEMConfig.best()
    assert best.grabcut and not IEMConfig.paper().grabcut and not IEMConfig.released().grabcut
    assert best.replace(grabcut=False) == IEMConfig.paper()
    assert IEMConfig.preset("best", grabcut_iterations=2).grabcut_iterations == 2


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        IEMConfig().iterations = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"iterations": -1},
        {"kernel_size": 10},
        {"kernel_size": 0},
        {"sigma": 0.0},
        {"sigma": float("nan")},
        {"filter_repeats": 0},
        {"scale_factor": 0},
        {"lambda_": -0.1},
        {"epsilon": -1.0},
        {"init_sizes": ()},
        {"init_sizes": (0,)},
        {"init_sizes": (200,)},
        {"smoothing_rule": "median"},
        {"numerator_norm": "l3"},
        {"normalizer": "area"},
        {"grabcut_iterations": 0},
        {"grabcut_border": -1},
        {"grabcut_border": 64},
    ],
)
def test_invalid_values_raise_value_error(changes):
    with pytest.raises(ValueError, match="IEMConfig"):
        IEMConfig(**changes)


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="unknown preset"):
        IEMConfig.preset("fast")


def test_dict_round_trip_and_unknown_keys():
    cfg = IEMConfig.released(lambda_=0.0)
    assert IEMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        IEMConfig.from_dict({"bogus": 1})


def test_every_ablation_and_variant_is_a_valid_config():
    for changes in list(ABLATIONS.values()) + list(VARIANTS.values()):
        IEMConfig.paper(**changes)
    assert not IEMConfig(numerator_norm="l2").closed_form


@pytest.mark.parametrize(
    "field, edge, beyond, message",
    [
        ("iterations", 0, -1, "iterations must be an integer >= 0"),
        ("kernel_size", 1, 2, "kernel_size must be a positive odd integer"),
        ("sigma", 0.01, 0.0, "sigma must be a finite number > 0"),
        ("filter_repeats", 1, 0, "filter_repeats must be an integer >= 1"),
        ("scale_factor", 1, 0, "scale_factor must be an integer >= 1"),
        ("epsilon", 0.0, -1e-12, "epsilon must be a finite number >= 0"),
        ("lambda_", 0.0, -1e-12, "lambda_ must be a finite number >= 0"),
        ("init_sizes", (1,), (0,), "init_sizes must be positive"),
        ("init_sizes", (128,), (129,), "init_sizes must be <= 128"),
        ("init_sizes", (44, 78), (), "init_sizes must hold at least one square size"),
        ("smoothing_rule", "paper", "Paper", "smoothing_rule must be 'code' or 'paper'"),
        ("numerator_norm", "l2", "L2", "numerator_norm must be 'l1' or 'l2'"),
        ("normalizer", "marginal", "margin", "normalizer must be 'size' or 'marginal'"),
    ],
)
def test_each_setting_accepts_its_edge_and_names_the_first_bad_value(field, edge, beyond, message):
    assert getattr(IEMConfig(**{field: edge}), field) == edge
    with pytest.raises(ValueError, match=f"^IEMConfig: {re.escape(message)}$"):
        IEMConfig(**{field: beyond})


def test_init_sizes_become_a_tuple_of_ints_and_replace_validates():
    cfg = IEMConfig(init_sizes=[44.0, 78])
    assert cfg.init_sizes == (44, 78) and all(type(s) is int for s in cfg.init_sizes)
    assert cfg.replace(iterations=5) == dataclasses.replace(cfg, iterations=5)
    with pytest.raises(ValueError, match="iterations"):
        cfg.replace(iterations=-1)
