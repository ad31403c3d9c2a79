"""``iem export``: a trained phase-2 network to TorchScript or ONNX, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

#: Exit status when the export fails or does not reproduce the network.
EXIT_FAILED = 1
_SUFFIXES = {"onnx": ".onnx", "torchscript": ".ts"}


@click.command("export", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(_SUFFIXES)),
    required=True,
    help="onnx (runs with onnxruntime) or torchscript (torch.jit.load).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write. [default: MODEL with .onnx or .ts]",
)
@click.option("--no-check", is_flag=True, help="Skip running the export and comparing it with PyTorch.")
@click.option("-q", "--quiet", is_flag=True, help="No summary line.")
@click.pass_context
def export(ctx: click.Context, model: Path, fmt: str, out: Optional[Path], no_check: bool, quiet: bool) -> None:
    """Export the network of an 'iem train' checkpoint for use without this package.

    The exported graph takes float images (B, 3, 128, 128) in [-1, 1] (RGB, the paper
    protocol: shorter side resized to 128 px, center crop) under the input name 'images' and
    returns foreground probabilities (B, 1, 128, 128) as 'probabilities'; threshold at 0.5.
    The batch size is free. Unless --no-check, the export is run on random images and must
    match PyTorch within 1e-4. Exit status: 0 done, 1 export failed, 2 usage error.

    \b
    Examples:
      iem export horse.pt --format onnx --out horse.onnx
      iem export horse.pt --format torchscript
    """
    from iem.segnet import CheckpointError, ExportError, export_model, load_model

    try:
        network = load_model(model, device="cpu")
    except CheckpointError as err:
        raise click.BadParameter(str(err), param_hint="'MODEL'") from None
    target = out if out is not None else model.with_suffix(_SUFFIXES[fmt])
    try:
        error = export_model(network, target, fmt, check=not no_check)
    except ExportError as err:
        click.echo(str(err), err=True)
        ctx.exit(EXIT_FAILED)
    except OSError as err:
        click.echo(f"{target}: cannot write ({err.strerror or err})", err=True)
        ctx.exit(EXIT_FAILED)
    if not quiet:
        check = "" if no_check else f", max difference from PyTorch {error:.1e}"
        click.echo(f"{target}: {fmt} export written{check}", err=True)
