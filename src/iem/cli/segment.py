"""``iem segment``: segment photos, folders and globs; a thin shell over :func:`iem.pipeline.segment_files`.

Every field of :class:`iem.IEMConfig` is an option, generated from the dataclass itself
(:func:`config_options`), so a new setting reaches the command line without editing this file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Type

import click

from iem.cli.guidance import guidance_options, segment_guided
from iem.cli.output import RECEIVED_SIGNAL, echo_out, read_in, refuse_terminal_out, signal_exit_code, write_mask_out
from iem.config import DEFAULT_PRESET, PRESETS, IEMConfig, parse_setting
from iem.core.engine import resolve_device
from iem.distributed import runs_here, segment_files
from iem.io.names import printable_line
from iem.io.read import DEFAULT_MAX_PIXELS, ImageReadError
from iem.io.upsample import UPSAMPLE_METHODS
from iem.pipeline import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SIZE,
    MIN_SIZE,
    OUTPUTS,
    SUMMARY_JSON,
    Failure,
    OutputFolderError,
    RunInterrupted,
    RunSummary,
    SettingsMismatch,
    count_render_processes,
    parse_outputs,
    segment_bytes,
)

#: Prefix of the Python names the generated options are stored under.
_CONFIG_DEST = "cfg_"
_DEVICES = ("auto", "cpu", "cuda")
_ALL_OUTPUTS = "all"


# --------------------------------------------------------------------------------------------
# IEMConfig fields as options
# --------------------------------------------------------------------------------------------


class SettingText(click.ParamType):
    """The text of one :class:`IEMConfig` field, read by :func:`iem.config.parse_setting`, the
    same reading ``iem bench --set FIELD=VALUE`` uses."""

    def __init__(self, field_name: str, metavar: str) -> None:
        self.field_name = field_name
        self.name = metavar

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_setting(self.field_name, value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


def option_name(field_name: str) -> str:
    """``lambda_`` -> ``--lambda``, ``init_sizes`` -> ``--init-sizes``."""
    return "--" + field_name.rstrip("_").replace("_", "-")


def _field_docs() -> Dict[str, str]:
    """One sentence-or-so of help per field, from the ``Attributes:`` section of IEMConfig."""
    docs: Dict[str, str] = {}
    current = None
    in_attributes = False
    for line in (IEMConfig.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            in_attributes = True
            continue
        if not in_attributes:
            continue
        match = re.match(r"^(\w+): (.*)$", stripped)
        if match and match.group(1) in {f.name for f in dataclasses.fields(IEMConfig)}:
            current = match.group(1)
            docs[current] = match.group(2)
        elif stripped and current is not None:
            docs[current] += " " + stripped
        elif not stripped and current is not None and docs:
            current = None
    return docs


def _show(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value).lower() if isinstance(value, bool) else str(value)


def _option_for(field: dataclasses.Field, hint: Any, doc: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    presets = {name: getattr(IEMConfig.preset(name), field.name) for name in PRESETS}
    if len(set(presets.values())) == 1:
        defaults = f"default: {_show(next(iter(presets.values())))}"
    else:
        defaults = "; ".join(f"{name}: {_show(value)}" for name, value in presets.items())
    doc = doc.replace("``", "")
    help_text = f"{doc} [{defaults}]" if doc else f"IEMConfig.{field.name} [{defaults}]"
    name = option_name(field.name)
    dest = _CONFIG_DEST + field.name
    origin = typing.get_origin(hint)
    if hint is bool:
        return click.option(f"{name}/--no-{name[2:]}", dest, default=None, help=help_text)
    if origin is typing.Literal:
        return click.option(name, dest, type=click.Choice([str(v) for v in typing.get_args(hint)]), help=help_text)
    if origin is tuple:
        return click.option(name, dest, type=SettingText(field.name, "N,N,..."), help=help_text)
    if hint in (int, float):
        return click.option(name, dest, type=SettingText(field.name, hint.__name__.upper()), help=help_text)
    raise TypeError(f"IEMConfig.{field.name}: no command-line type for {hint!r}")


def config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding one option per :class:`IEMConfig` field (defaults come from ``--preset``)."""
    hints = typing.get_type_hints(IEMConfig)
    docs = _field_docs()
    for field in reversed(dataclasses.fields(IEMConfig)):
        command = _option_for(field, hints[field.name], docs.get(field.name, ""))(command)
    return command


def config_from_options(preset: str, values: Mapping[str, Any]) -> IEMConfig:
    """The preset with the options that were given on top.

    Raises:
        click.UsageError: an invalid combination (exit status 2).
    """
    overrides = {
        field.name: values[_CONFIG_DEST + field.name]
        for field in dataclasses.fields(IEMConfig)
        if values.get(_CONFIG_DEST + field.name) is not None
    }
    try:
        return IEMConfig.preset(preset, **overrides)
    except ValueError as err:
        raise click.UsageError(str(err)) from None


def _parse_outputs(ctx: click.Context, param: click.Parameter, value: str) -> Tuple[str, ...]:
    if value.strip() == _ALL_OUTPUTS:
        return tuple(OUTPUTS)
    try:
        return parse_outputs(value)
    except ValueError:
        raise click.BadParameter(f"choose from {', '.join(OUTPUTS)} (comma-separated) or '{_ALL_OUTPUTS}'") from None


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@click.command("segment", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=str,
    help="Output folder or fsspec URL (s3://bucket/masks); it mirrors the input tree and may be the input folder "
    "itself. Not used with '-'.",
)
@click.option(
    "--outputs",
    default="mask",
    show_default=True,
    callback=_parse_outputs,
    help="Comma-separated: mask (PNG 0/255), cutout (RGBA PNG), overlay (JPEG), inpaint (PNG), or 'all'.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default=DEFAULT_PRESET,
    show_default=True,
    help="Base settings: best (most accurate, docs/beyond.md), paper (reproduces the paper), released.",
)
@click.option(
    "--size",
    type=click.IntRange(min=MIN_SIZE),
    default=DEFAULT_SIZE,
    show_default=True,
    help="Working resolution: the shorter side, in pixels.",
)
@click.option("--device", type=click.Choice(_DEVICES), default="auto", show_default=True, help="Where to compute.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Images of the same working shape segmented together.",
)
@click.option(
    "--upsample",
    type=click.Choice(UPSAMPLE_METHODS),
    default="guided",
    show_default=True,
    help="How masks return to full resolution: guided (edge-aware), bilinear or nearest.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images with more pixels (decompression-bomb guard).",
)
@click.option("--overwrite", is_flag=True, help="Rewrite existing outputs, also when they were made with other settings (by default they are skipped: resume).")
@click.option(
    "--json",
    "json_summary",
    is_flag=True,
    help=f"Print the run summary as JSON on stdout and save it as OUT/{SUMMARY_JSON}.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    help="A trained network: the name of a shipped one (flowers) or a checkpoint file (iem train); "
    "its masks replace IEM's.",
)
@click.option("--refine", is_flag=True, help="With --model: run IEM starting from the network's masks.")
@click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Run on a Dask cluster: a scheduler address (tcp://host:8786) or local:N for N worker "
    "processes on this machine. Needs iem[distributed].",
)
@click.option(
    "--task-size",
    type=click.IntRange(min=1),
    help="With --cluster: images per task. [default: about 4 tasks per worker thread, at most 256]",
)
@click.option(
    "--render-processes",
    type=click.IntRange(min=0),
    help="Processes that decode the photos and make the outputs (0: threads of this one). "
    "[default: with a GPU, the CPUs less 2, at most 16; else 0]",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line (failures are still printed).")
@guidance_options
@config_options
@click.pass_context
def segment(
    ctx: click.Context,
    inputs: Sequence[str],
    out_dir: Optional[str],
    outputs: Tuple[str, ...],
    preset: str,
    size: int,
    device: str,
    batch_size: int,
    upsample: str,
    max_pixels: int,
    overwrite: bool,
    json_summary: bool,
    model: Optional[Path],
    refine: bool,
    cluster: Optional[str],
    task_size: Optional[int],
    render_processes: Optional[int],
    quiet: bool,
    box: Optional[Tuple[float, ...]],
    foreground_mask: Optional[Path],
    background_mask: Optional[Path],
    **config_values: Any,
) -> None:
    """Segment the foreground of photos with IEM.

    INPUTS are image files, folders (walked recursively) and glob patterns ('**' spans
    folders), or fsspec URLs (s3://bucket/photos; credentials the usual fsspec way). Each
    image gets OUT/<its path>.mask.png at its original resolution (plus
    .cutout.png, .overlay.jpg, .inpaint.png as chosen with --outputs). Outputs that exist are
    skipped, so an interrupted run is finished by running it again; the settings are recorded
    in OUT/iem-settings.json and a run with other settings is refused unless --overwrite. OUT
    may be the input folder: outputs are never read back as inputs. A bad input costs one line
    on stderr and in OUT/failures.log; the others go on. Exit status: 0 all done, 1 some
    inputs failed, 2 usage error.

    Every IEM setting below --quiet can be given; the others come from --preset.

    \b
    Examples:
      iem segment photo.jpg -o out/
      iem segment photos/ -o masks/ --outputs mask,cutout,overlay
      iem segment 'shoots/**/*.jpg' -o out/ --device cuda --batch-size 64
      iem segment photos/ -o out/ --preset released --iterations 100 --no-smoothing
      iem segment - < photo.jpg > mask.png
      iem segment flowers/ -o out/ --model flowers
      iem segment photos/ -o out/ --model segnet.pt --refine --json
      iem segment photo.jpg -o out/ --box 40,30,600,470 --background-mask bg.png
      iem segment photos/ -o out/ --cluster local:2
      iem segment s3://bucket/photos -o s3://bucket/masks --cluster tcp://scheduler:8786
    """
    config = config_from_options(preset, config_values)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter("CUDA was requested but no CUDA GPU is available", param_hint="'--device'")
    if refine and model is None:
        raise click.UsageError("--refine needs --model: it starts IEM from the network's masks")
    if box is not None or foreground_mask is not None or background_mask is not None:
        guided = dict(box=box, foreground_mask=foreground_mask, background_mask=background_mask, size=size,
                      device=device, upsample=upsample, max_pixels=max_pixels, overwrite=overwrite)
        with _user_errors(ctx, model, (ImageReadError, OutputFolderError)):
            line, status = segment_guided(inputs, out_dir, outputs, config, guided)
        if line and not quiet:
            click.echo(line, err=True)
        ctx.exit(status)
    if "-" in inputs:
        if json_summary:
            raise click.UsageError("'-' writes the mask to stdout, where --json would go: drop --json")
        _segment_stdin(ctx, inputs, out_dir, outputs, config, size, device, upsample, max_pixels, model, refine)
        return
    if out_dir is None:
        raise click.UsageError("missing the output folder: give -o/--out")

    def print_failure(failure: Failure) -> None:
        from tqdm.auto import tqdm

        tqdm.write(failure.line(), file=sys.stderr)

    if task_size is not None and cluster is None:
        raise click.UsageError("--task-size needs --cluster")
    here = runs_here(inputs, out_dir, cluster, task_size)
    if render_processes is not None and not here:
        raise click.UsageError("--render-processes is for a run on this machine: not with --cluster or URLs")
    if here:
        automatic = count_render_processes(resolve_device(device))
        local = {"render_processes": automatic if render_processes is None else render_processes}
    else:
        local = {}
    with _user_errors(ctx, model, OutputFolderError), _cluster(ctx, cluster) as client:
        try:
            summary = segment_files(
                list(inputs),
                out_dir,
                config=config,
                size=size,
                device=device,
                outputs=outputs,
                overwrite=overwrite,
                batch_size=batch_size,
                progress=not quiet,
                model=model,
                refine=refine,
                upsample=upsample,  # type: ignore[arg-type]
                max_pixels=max_pixels,
                on_failure=print_failure,
                write_summary=json_summary,
                client=client,
                task_size=task_size,
                **local,
            )
        except RunInterrupted as stopped:
            _report(stopped.summary, json_summary, quiet)
            ctx.exit(signal_exit_code(ctx.meta[RECEIVED_SIGNAL]))
    _report(summary, json_summary, quiet)
    ctx.exit(summary.exit_code)


def _report(summary: RunSummary, json_summary: bool, quiet: bool) -> None:
    """The end of a run: problems with the run's own files, the JSON, the summary line."""
    for problem in summary.problems:
        click.echo(problem, err=True)
    if json_summary:
        echo_out(json.dumps(summary.to_dict(), indent=2))
    for warning in summary.warnings:  # printed even with --quiet, like failures
        click.echo(f"warning: {printable_line(warning.line())}", err=True)
    if not quiet:
        click.echo(summary.line(), err=True)


@contextlib.contextmanager
def _user_errors(ctx: click.Context, model: Optional[Path], failures: Type[Exception]) -> Iterator[None]:
    """Turn the library's errors into the command's answers.

    ``failures`` (an input or the output folder that cannot be used) print one line and exit 1;
    a ``ValueError`` is a usage error (exit 2); a checkpoint that cannot be loaded is a bad
    ``--model`` (exit 2).
    """
    try:
        yield
    except failures as err:
        click.echo(printable_line(str(err)), err=True)
        ctx.exit(1)
    except SettingsMismatch as err:  # one line, like a usage error (exit 2), no usage text
        click.echo(f"Error: {printable_line(str(err))}", err=True)
        ctx.exit(2)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    except Exception as err:
        _model_error(err, model)
        raise


@contextlib.contextmanager
def _cluster(ctx: click.Context, address: Optional[str]) -> Iterator[Any]:
    """The Dask client of --cluster (None without it); a scheduler or store that cannot be
    reached is one line and exit status 2."""
    from iem.io.storage import StorageError

    if address is None:
        try:
            yield None
        except StorageError as err:
            click.echo(str(err), err=True)
            ctx.exit(2)
        return
    from iem.distributed import ClusterError, connect

    try:
        with connect(address) as client:
            yield client
    except (ClusterError, StorageError) as err:
        click.echo(str(err), err=True)
        ctx.exit(2)


def _model_error(err: Exception, model: Optional[Path]) -> None:
    """A checkpoint that cannot be loaded is a bad --model value (exit 2), not a crash."""
    if model is None:
        return
    try:
        from iem.segnet import CheckpointError
    except ImportError:
        return
    if isinstance(err, CheckpointError):
        raise click.BadParameter(str(err), param_hint="'--model'") from None


def _segment_stdin(
    ctx: click.Context,
    inputs: Sequence[str],
    out_dir: Optional[str],
    outputs: Tuple[str, ...],
    config: IEMConfig,
    size: int,
    device: str,
    upsample: str,
    max_pixels: int,
    model: Optional[Path],
    refine: bool,
) -> None:
    """``-``: one image from stdin, its PNG mask to stdout."""
    if len(inputs) > 1:
        raise click.UsageError("'-' (stdin) cannot be combined with other inputs")
    if out_dir is not None:
        raise click.UsageError("'-' writes the mask to stdout: drop -o/--out")
    if outputs != ("mask",):
        raise click.UsageError("'-' writes only the mask: drop --outputs")
    refuse_terminal_out("redirect stdout (iem segment - < in.jpg > mask.png)")
    data = read_in()
    with _user_errors(ctx, model, ImageReadError):
        mask = segment_bytes(
            data, config, size, device, model, refine, upsample=upsample, max_pixels=max_pixels  # type: ignore[arg-type]
        )
    write_mask_out(mask)
