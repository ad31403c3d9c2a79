"""Benchmarks: methods (IEM presets, ablations, variants, GrabCut, trivial references) run over a
dataset, scored in both metric conventions, reported as JSON, Markdown, CSV and a figure grid;
and scoring of mask folders against ground truth (``iem eval``)."""

from iem.bench.evaluate import EvalReport, evaluate_masks, match_masks
from iem.bench.methods import (
    Method,
    MethodContext,
    MethodError,
    ablation_names,
    available_names,
    build_method,
    iem_config,
    register_method,
    variant_names,
)
from iem.bench.runner import BenchResult, MethodResult, run_benchmark

__all__ = [
    "BenchResult",
    "EvalReport",
    "Method",
    "MethodContext",
    "MethodError",
    "MethodResult",
    "ablation_names",
    "available_names",
    "build_method",
    "evaluate_masks",
    "iem_config",
    "match_masks",
    "register_method",
    "run_benchmark",
    "variant_names",
]

# The phase-2 methods (segnet, segnet+refine; need --model) register themselves on import.
import iem.segnet.methods  # noqa: E402,F401
