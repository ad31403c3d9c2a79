"""Reading images safely, finding them on disk, upsampling masks, writing outputs atomically."""

from iem.io.outputs import OUTPUTS, output_paths, render_output, write_outputs
from iem.io.read import DEFAULT_MAX_PIXELS, ImageReadError, read_file_bytes, read_image
from iem.io.upsample import UPSAMPLE_METHODS, guided_filter, upsample_mask
from iem.io.walk import InputFile, InputProblem, iter_inputs
from iem.io.working import working_copy, working_image
from iem.io.write import atomic_write, save_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OUTPUTS",
    "UPSAMPLE_METHODS",
    "ImageReadError",
    "InputFile",
    "InputProblem",
    "atomic_write",
    "guided_filter",
    "iter_inputs",
    "output_paths",
    "read_file_bytes",
    "read_image",
    "render_output",
    "save_image",
    "upsample_mask",
    "working_copy",
    "working_image",
    "write_outputs",
]
