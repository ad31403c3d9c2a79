import dataclasses
import importlib
import re
import typing

import numpy as np
import pytest
from click.testing import CliRunner

from iem.config import ABLATIONS, PRESETS, VARIANTS, IEMConfig, field_types, parse_setting


def test_defaults_are_the_papers_settings():
    cfg = IEMConfig()
    assert (cfg.iterations, cfg.kernel_size, cfg.sigma, cfg.filter_repeats) == (150, 11, 5.0, 2)
    assert (cfg.lambda_, cfg.scale_factor, cfg.init_sizes) == (0.001, 1, (44, 78, 92))
    assert cfg.smoothing and cfg.boundary_only and cfg.closed_form
    assert IEMConfig.paper() == cfg


def test_released_preset_uses_one_square_of_78():
    assert IEMConfig.released().init_sizes == (78,)
    assert IEMConfig.preset("released", iterations=3).iterations == 3


def test_best_preset_is_the_smallest_square_then_grabcut_from_it_and_the_box():
    best = IEMConfig.best()
    assert best.grabcut and not IEMConfig.paper().grabcut and not IEMConfig.released().grabcut
    assert (best.grabcut_iterations, best.grabcut_box_union, best.grabcut_box_rule) == (3, True, "energy")
    assert best.grabcut_reject_empty and not IEMConfig().grabcut_reject_empty  # older settings keep an empty cut
    assert (best.grabcut_polish_iterations, IEMConfig().grabcut_polish_iterations) == (1, 0)
    assert best.grabcut_box_iterations == IEMConfig().grabcut_box_iterations == 0  # 0: as the cut from IEM's mask
    assert (best.grabcut_polish_rule, IEMConfig().grabcut_polish_rule) == ("union", "always")
    with pytest.raises(ValueError, match="grabcut_polish_rule must be 'always' or 'union'"):
        IEMConfig(grabcut_polish_rule="energy")
    assert best.grabcut_energy_space == IEMConfig().grabcut_energy_space == "rgb"
    assert IEMConfig.best(grabcut_energy_space="lab").grabcut_energy_space == "lab"
    with pytest.raises(ValueError, match="grabcut_energy_space must be 'rgb' or 'lab'"):
        IEMConfig(grabcut_energy_space="hsv")
    refinement = ("grabcut", "grabcut_iterations", "grabcut_box_union", "grabcut_box_iterations", "grabcut_box_rule", "grabcut_energy_space", "grabcut_reject_empty", "grabcut_polish_iterations", "grabcut_polish_rule", "grabcut_photo_size")
    plain = {name: getattr(IEMConfig(), name) for name in refinement}
    assert best.replace(**plain) == IEMConfig.paper(init_sizes=(44,))
    assert IEMConfig().grabcut_box_rule == "union"  # the field's own default: the union as it was
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


@pytest.mark.parametrize(
    "field, value",
    [("grabcut_iterations", 0), ("grabcut_box_iterations", -1), ("grabcut_polish_iterations", -1), ("grabcut_photo_size", -1)],
)
def test_invalid_grabcut_counts_name_their_field(field, value):
    with pytest.raises(ValueError, match=f"^IEMConfig: {field} must be an integer >= [01]$"):
        IEMConfig(**{field: value})


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
        ("grabcut_iterations", 1, 0, "grabcut_iterations must be an integer >= 1"),
        ("grabcut_border", 0, -1, "grabcut_border must be an integer in [0, 64)"),
        ("grabcut_border", 63, 64, "grabcut_border must be an integer in [0, 64)"),
        ("grabcut_photo_size", 0, -1, "grabcut_photo_size must be an integer >= 0"),
        ("grabcut_box_iterations", 0, -1, "grabcut_box_iterations must be an integer >= 0"),
    ],
)
def test_each_setting_accepts_its_edge_and_names_the_first_bad_value(field, edge, beyond, message):
    assert getattr(IEMConfig(**{field: edge}), field) == edge
    with pytest.raises(ValueError, match=f"^IEMConfig: {re.escape(message)}$"):
        IEMConfig(**{field: beyond})


def test_init_sizes_become_a_tuple_of_ints_and_replace_validates():
    cfg = IEMConfig(init_sizes=[np.int64(44), 78])
    assert cfg.init_sizes == (44, 78) and all(type(s) is int for s in cfg.init_sizes)
    assert cfg.replace(iterations=5) == dataclasses.replace(cfg, iterations=5)
    with pytest.raises(ValueError, match="iterations"):
        cfg.replace(iterations=-1)


# --------------------------------------------------------------------------------------------
# Types: each field holds a value of its annotation; text is read one way for every command.
# --------------------------------------------------------------------------------------------


def _text(value) -> str:
    """A field value written as a user would type it."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(IEMConfig)])
def test_every_field_refuses_values_of_another_type(name):
    hint = field_types()[name]
    wrong = ["no", "False", None, object()]
    if hint is bool:
        wrong += [0, 1, 1.0]
    else:
        wrong += [True, False]
    if hint is int or typing.get_origin(hint) is tuple:
        wrong += [2.5, (2.0,) if typing.get_origin(hint) is tuple else 3.0]
    for value in wrong:
        with pytest.raises(ValueError, match=f"IEMConfig: {name} must be"):
            IEMConfig.released(**{name: value})


def test_the_issue_examples_are_refused():
    for changes in ({"smoothing": "no"}, {"early_exit": "false"}, {"iterations": True}, {"init_sizes": (True,)}):
        with pytest.raises(ValueError, match="IEMConfig"):
            IEMConfig.released(**changes)


def test_numbers_are_stored_in_their_field_type():
    cfg = IEMConfig(sigma=4, init_sizes=[40, np.int64(70)], iterations=np.int32(5))
    assert type(cfg.sigma) is float and cfg.init_sizes == (40, 70) and type(cfg.init_sizes[1]) is int
    assert type(cfg.iterations) is int


@pytest.mark.parametrize("preset", PRESETS)
def test_text_of_every_field_reads_back_to_its_value(preset):
    cfg = IEMConfig.preset(preset)
    values = {name: parse_setting(name, _text(value)) for name, value in cfg.to_dict().items()}
    assert IEMConfig(**values) == cfg


@pytest.mark.parametrize(
    "name, text, value",
    [
        ("smoothing", "False", False),
        ("smoothing", " no ", False),
        ("smoothing", "ON", True),
        ("early_exit", "0", False),
        ("init_sizes", "44,78", (44, 78)),
        ("init_sizes", "[78]", (78,)),
        ("init_sizes", " 44 , 78 ", (44, 78)),
        ("iterations", "+12", 12),
        ("lambda_", "1e-3", 0.001),
        ("normalizer", "marginal", "marginal"),
    ],
)
def test_text_is_parsed_by_field_type(name, text, value):
    assert parse_setting(name, text) == value and type(parse_setting(name, text)) is type(value)


@pytest.mark.parametrize(
    "name, text",
    [
        ("smoothing", "nope"),
        ("smoothing", ""),
        ("init_sizes", "44,,78"),
        ("init_sizes", "44,"),
        ("init_sizes", ""),
        ("init_sizes", "4.5"),
        ("iterations", "True"),
        ("iterations", "1.5"),
        ("iterations", "1_000"),
        ("sigma", "two"),
        ("numerator_norm", "L1"),
        ("sigmaa", "1"),
    ],
)
def test_bad_text_is_refused_naming_the_field(name, text):
    with pytest.raises(ValueError, match=name):
        parse_setting(name, text)


def test_bench_set_and_segment_options_read_text_the_same_way(monkeypatch):
    from iem.cli import main
    from iem.cli.bench import parse_overrides

    overrides = parse_overrides(["init_sizes=44,78", "smoothing=False", "sigma=2.5"], iterations=None)
    captured = {}

    def run(inputs, out_dir, config, **kwargs):
        captured["config"] = config
        raise SystemExit(0)

    # iem.cli.segment is also the name of the command: reach the module itself.
    monkeypatch.setattr(importlib.import_module("iem.cli.segment"), "segment_files", run)
    args = ["segment", "x.png", "-o", "out", "--preset", "paper", "--init-sizes", "44,78", "--no-smoothing", "--sigma", "2.5"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert captured["config"] == IEMConfig.paper(**overrides)
    assert captured["config"].init_sizes == (44, 78) and captured["config"].smoothing is False
    bad = CliRunner().invoke(main, ["segment", "x.png", "-o", "out", "--init-sizes", "44,,78"])
    assert bad.exit_code == 2 and "not a comma-separated list of integers" in bad.output


def test_the_best_preset_refines_on_the_photo_at_384_px():
    assert IEMConfig.best().grabcut_photo_size == 384


@pytest.mark.parametrize(
    "hint, words",
    [
        (bool, "true or false"),
        (int, "an integer"),
        (float, "a number"),
        (typing.Literal["code", "paper"], "one of 'code', 'paper'"),
        (typing.Tuple[int, ...], "a list of integers"),
        (str, "<class 'str'>"),
    ],
)
def test_each_type_is_described_in_words(hint, words):
    from iem.config import describe_type

    assert describe_type(hint) == words


def test_messages_name_the_field_the_type_and_the_value():
    from iem.config import _typed

    with pytest.raises(ValueError, match=re.escape("IEMConfig: iterations must be an integer, got '5' (str)")):
        IEMConfig(iterations="5")
    with pytest.raises(ValueError, match=re.escape("IEMConfig: name must be <class 'str'>, got 'x' (str)")):
        _typed("name", str, "x")  # a type without a rule is refused, not waved through
    with pytest.raises(ValueError, match=re.escape("smoothing: 'nope' is not true or false")):
        parse_setting("smoothing", "nope")
    with pytest.raises(ValueError, match=re.escape("unknown IEM setting 'sigmaa'; choose from iterations, kernel_size, ")):
        parse_setting("sigmaa", "1")


def test_parenthesised_lists_are_read():
    assert parse_setting("init_sizes", "(44, 78)") == (44, 78)


def test_a_field_without_a_text_form_is_refused(monkeypatch):
    import iem.config as config

    monkeypatch.setattr(config, "field_types", lambda: {"name": str})
    with pytest.raises(ValueError, match=re.escape("name: no text form for <class 'str'>")):
        parse_setting("name", "x")
