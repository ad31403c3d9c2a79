"""``iem bench``: run segmentation methods over a dataset and report their scores."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import click

from iem.bench.methods import (
    Method,
    MethodContext,
    ablation_names,
    build_method,
    registered_methods,
    variant_names,
)
from iem.bench.report import RESULTS_JSON
from iem.bench.runner import DEFAULT_BATCH_SIZE, BenchResult, run_benchmark
from iem.bench.save import save_benchmark, save_tables
from iem.cli.output import echo_out
from iem.config import parse_setting
from iem.datasets import LAYOUTS, PROTOCOLS, DatasetError, open_dataset

#: Methods run when ``--methods`` is not given.
DEFAULT_METHODS = "paper,released,grabcut,square,all"
#: Rows of the figure grid.
DEFAULT_FIGURE_ROWS = 6
#: Exit statuses: some input failed; a usage error.
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2


def parse_overrides(assignments: Sequence[str], iterations: Optional[int]) -> Dict[str, Any]:
    """``["sigma=2.5", "init_sizes=44,78"]`` -> ``{"sigma": 2.5, "init_sizes": (44, 78)}``.

    Each value is read by :func:`iem.config.parse_setting`, as the options of ``iem segment``
    read the same field (``--set smoothing=false`` is ``--no-smoothing``).
    """
    overrides: Dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{assignment!r} is not FIELD=VALUE", param_hint="--set")
        try:
            overrides[key.strip()] = parse_setting(key.strip(), text)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--set") from None
    if iterations is not None:
        overrides["iterations"] = iterations
    return overrides


def method_names(methods: str, ablations: bool, variants: bool) -> List[str]:
    """The comma list of ``--methods`` plus the names ``--ablations`` / ``--variants`` add, without repeats."""
    names = [name.strip() for name in methods.split(",") if name.strip()]
    if ablations:
        names += ablation_names()
    if variants:
        names += variant_names()
    return list(dict.fromkeys(names))


def default_figure_methods(methods: Sequence[Method]) -> List[str]:
    """The first IEM method (the first method when none is IEM), then the methods flagged ``in_figure``."""
    if not methods:
        return []
    first = next((m.name for m in methods if m.config is not None), methods[0].name)
    return [first] + [m.name for m in methods if m.in_figure and m.name != first]


def canonical_command(ctx: click.Context) -> str:
    """An ``iem bench`` command line equivalent to this invocation (options given explicitly only)."""
    words = ["iem", "bench", str(ctx.params["dataset"])]
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        if ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        flag = param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0]
        if param.is_flag:
            if value:
                words.append(flag)
        elif param.multiple:
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _list_methods() -> str:
    lines = [f"  {spec.name:<22} {spec.description}" for spec in registered_methods()]
    lines.append("  paper+<change>         IEM paper preset with a Table 4 ablation or Table 5 variant:")
    lines += [f"    {name}" for name in ablation_names() + variant_names()]
    return "\n".join(lines)


def _fail_usage(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.command("bench")
@click.argument("dataset", required=False, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=str), help="Output folder (required).")
@click.option("--methods", "-m", default=DEFAULT_METHODS, show_default=True, help="Comma-separated method names.")
@click.option("--ablations", is_flag=True, help="Add the Table 4 ablations on the paper preset (paper+no_regularizer, ...).")
@click.option("--variants", is_flag=True, help="Add the Table 5 objective variants on the paper preset (paper+l2_size, ...).")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="paper", show_default=True, help="paper: 128x128 as in the paper; full: original resolution.")
@click.option("--layout", type=click.Choice(("auto",) + LAYOUTS), default="auto", show_default=True, help="Dataset layout.")
@click.option("--split", default=None, help="Flowers/CUB split: test (the paper's evaluation images, default), val, train, all.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images.")
@click.option("--iterations", type=click.IntRange(min=0), default=None, help="Override IEM's iteration count (all IEM methods).")
@click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE", help="Override an IEMConfig field for all IEM methods (repeatable), e.g. --set sigma=2.5.")
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default="auto", show_default=True, help="Where IEM computes (auto: CUDA when present).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True, help="Images handed to a method at once.")
@click.option("--figure-rows", type=click.IntRange(min=0), default=DEFAULT_FIGURE_ROWS, show_default=True, help="Random images in the figure grid (0: no figure).")
@click.option("--figure-methods", default=None, help="Comma-separated methods shown in the figure: the first gets mask and inpainting columns, the others a mask column (default: the first IEM method, then methods such as IEM+SegNet that ask to be shown).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the figure's draw and of GrabCut.")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="Trained segmentation network, for methods that use one.")
@click.option("--list-methods", is_flag=True, help="List the available methods and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def bench(
    ctx: click.Context,
    dataset: Optional[str],
    out: Optional[str],
    methods: str,
    ablations: bool,
    variants: bool,
    protocol: str,
    layout: str,
    split: Optional[str],
    limit: Optional[int],
    iterations: Optional[int],
    assignments: Tuple[str, ...],
    device: str,
    batch_size: int,
    figure_rows: int,
    figure_methods: Optional[str],
    seed: int,
    model: Optional[Path],
    list_methods: bool,
    quiet: bool,
) -> None:
    """Run segmentation methods over DATASET and report their scores.

    DATASET is a folder in one of the layouts (detected, or --layout): Flowers (setid.mat,
    jpg/, segmim/), CUB (train_val_test_split.txt, images.txt, images/, segmentations/) or any
    images/ + masks/ pair (GrabCut, Weizmann Horse, LSUN-style).

    Writes into --out: results.json (per method: acc, iou, dice, strict_acc, strict_iou,
    strict_dice as fractions, seconds, images), results.md (the table in %, both conventions,
    seconds, images/s), per_image.csv and figure.png (input, ground truth, mask, inpainting of
    random images). results.json and results.md are updated after each method.

    \b
    Examples:
      iem bench ../shared/data/grabcut --out runs/grabcut
      iem bench ../shared/data/weizmann_horse --methods paper,released --ablations --variants --out runs/horse
      iem bench flowers/ --methods paper,grabcut --protocol full --limit 20 --out runs/flowers
      iem bench data/ --methods released --iterations 50 --set sigma=2.5 --out runs/quick
      iem bench --list-methods
    """
    if list_methods:
        echo_out(_list_methods())
        return
    if dataset is None:
        raise click.UsageError("missing argument 'DATASET'")
    if out is None:
        raise click.UsageError("missing option '--out'")
    names = method_names(methods, ablations, variants)
    if not names:
        raise click.UsageError("no method given")
    overrides = parse_overrides(assignments, iterations)
    context = MethodContext(device=device, config_overrides=overrides, model=model, seed=seed)
    try:
        data = open_dataset(dataset, layout=layout, protocol=protocol, split=split)
        built = [build_method(name, context) for name in names]
    except (DatasetError, ValueError) as err:
        _fail_usage(str(err))
        return
    shown = [n.strip() for n in figure_methods.split(",") if n.strip()] if figure_methods else default_figure_methods(built)
    unknown = [name for name in shown if name not in names]
    if unknown:
        _fail_usage(f"--figure-methods {', '.join(unknown)} not among the methods run")
    for problem in data.problems:
        click.echo(f"error: {problem}", err=True)
    if limit is not None:
        data = data.subset(range(min(limit, len(data))))
    if len(data) == 0:
        click.echo(f"error: {dataset}: no image with ground truth found", err=True)
        sys.exit(EXIT_INPUT_FAILED)
    command = canonical_command(ctx)
    name = Path(dataset).resolve().name

    def save_partial(partial: BenchResult) -> None:
        with _report_files(out):
            save_tables(partial, out, command=command)

    result = run_benchmark(
        data,
        built,
        dataset_name=name,
        batch_size=batch_size,
        figure_rows=figure_rows,
        figure_methods=shown,
        seed=seed,
        progress=not quiet,
        on_result=save_partial,
    )
    for line in result.load_failures + [line for r in result.results for line in r.failures]:
        click.echo(f"error: {line}", err=True)
    with _report_files(out):
        try:
            save_benchmark(result, out, figure_methods=shown, command=command)
        except ImportError as err:
            click.echo(f"warning: no figure: {err}", err=True)
            save_tables(result, out, command=command)
    _print_table(result)
    echo_out(f"results: {Path(out) / RESULTS_JSON}")
    if result.failed or data.problems:
        sys.exit(EXIT_INPUT_FAILED)


@contextlib.contextmanager
def _report_files(out: str) -> Iterator[None]:
    """A report file that cannot be written ends the run with one line and exit status 1."""
    try:
        yield
    except OSError as err:
        click.echo(f"error: {err.filename or out}: cannot write ({err.strerror or err})", err=True)
        sys.exit(EXIT_INPUT_FAILED)


def _print_table(result: BenchResult) -> None:
    width = max(len(r.method) for r in result.results)
    echo_out(f"{'method':<{width}}  {'acc':>5} {'IoU':>5} {'DICE':>5} | strict {'acc':>5} {'IoU':>5} {'DICE':>5} | {'seconds':>8}")
    for r in result.results:
        paper = " ".join(f"{100 * r.mean(k):5.1f}" for k in ("acc", "iou", "dice"))
        strict = " ".join(f"{100 * r.mean(k):5.1f}" for k in ("strict_acc", "strict_iou", "strict_dice"))
        echo_out(f"{r.method:<{width}}  {paper} |        {strict} | {r.seconds:8.1f}")
