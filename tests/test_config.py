import dataclasses

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
