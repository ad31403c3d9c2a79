"""``iem segment --box / --foreground-mask / --background-mask``: guided IEM on one image.

A thin shell over :func:`iem.pipeline.segment_bytes`; the options are added to ``iem segment``
by :func:`guidance_options`, and :func:`segment_guided` runs when one of them is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

import click

from iem.config import IEMConfig
from iem.io.read import ImageReadError, read_file_bytes, read_image, read_marks


class BoxType(click.ParamType):
    """``x0,y0,x1,y1``: four numbers, pixels of the photo, ``x1`` and ``y1`` exclusive."""

    name = "X0,Y0,X1,Y1"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            box = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not four comma-separated numbers x0,y0,x1,y1", param, ctx)
        if len(box) != 4:
            self.fail(f"{value!r} has {len(box)} numbers; give four: x0,y0,x1,y1", param, ctx)
        if not (box[0] < box[2] and box[1] < box[3]):
            self.fail(f"{value!r} is empty: it needs x0 < x1 and y0 < y1", param, ctx)
        return box


def guidance_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding ``--box``, ``--foreground-mask`` and ``--background-mask``."""
    marks = click.Path(exists=True, dir_okay=False, path_type=Path)
    options = [
        click.option(
            "--box",
            type=BoxType(),
            help="One image only: start IEM from this rectangle around the object (photo pixels, x1 and y1 exclusive).",
        ),
        click.option(
            "--foreground-mask",
            "foreground_mask",
            type=marks,
            help="One image only: an image of the photo's size whose white pixels are kept as foreground.",
        ),
        click.option(
            "--background-mask",
            "background_mask",
            type=marks,
            help="One image only: an image of the photo's size whose white pixels are kept as background.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def segment_guided(
    inputs: Sequence[str],
    out_dir: Optional[Path],
    outputs: Tuple[str, ...],
    config: IEMConfig,
    options: dict,
) -> Tuple[str, int]:
    """Segment the one image of ``inputs`` (a file or ``-``) with the guidance in ``options``.

    ``options`` holds ``box``, ``foreground_mask``, ``background_mask``, ``size``, ``device``,
    ``upsample``, ``max_pixels``, ``overwrite``. Returns the line to print and the exit status.

    Raises:
        click.UsageError: more than one input, a folder or glob, or an output guidance cannot give.
        ImageReadError: the photo or a marks image cannot be read.
        ValueError: the guidance does not fit the photo.
    """
    from iem.cli.output import read_in, refuse_terminal_out, write_mask_out
    from iem.io.outputs import output_paths, write_outputs
    from iem.io.write import StaleTemporaries
    from iem.pipeline import check_output_folder, segment_bytes

    if len(inputs) != 1 or (inputs[0] != "-" and not Path(inputs[0]).is_file()):
        raise click.UsageError("--box, --foreground-mask and --background-mask apply to one image file (or '-')")
    if "inpaint" in outputs:
        raise click.UsageError("the inpaint output is not available with --box or marks")
    marks = {
        side: None if options[f"{side}_mask"] is None else read_marks(options[f"{side}_mask"])
        for side in ("foreground", "background")
    }
    stdin = inputs[0] == "-"
    name = "<stdin>" if stdin else inputs[0]
    data = read_in() if stdin else read_file_bytes(inputs[0], name)
    if not stdin and out_dir is None:
        raise click.UsageError("missing the output folder: give -o/--out")
    targets = {}
    if not stdin:
        targets = output_paths(check_output_folder(out_dir), Path(Path(inputs[0]).name), outputs)
        if not options["overwrite"]:
            targets = {kind: path for kind, path in targets.items() if not path.exists()}
        if not targets:
            return f"{name}: outputs exist already (give --overwrite to redo them)", 0
    mask = segment_bytes(
        data, config, options["size"], options["device"], upsample=options["upsample"],
        max_pixels=options["max_pixels"], name=name, box=options["box"], **marks,
    )
    if stdin:
        refuse_terminal_out("redirect stdout")
        write_mask_out(mask)
        return "", 0
    photo = read_image(data, max_pixels=options["max_pixels"], name=name)
    write_outputs(targets, photo, mask, None, StaleTemporaries())
    return f"{name}: {', '.join(str(p) for p in targets.values())}", 0


__all__ = ["BoxType", "ImageReadError", "guidance_options", "segment_guided"]
