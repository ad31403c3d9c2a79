"""Figure grids like the paper's Figures 4-6.

One row per randomly drawn image; columns, left to right: input image, ground truth, the mask of
the first figure method, its inpainting result (every pixel inpainted by psi_K from the region it
does not belong to, :func:`iem.inpaint`), then the masks of the other figure methods (the paper's
last column is the SegNet mask). Rendering uses matplotlib's Agg canvas directly, so no display
and no global backend are needed (matplotlib is the ``plot`` extra).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

import iem
from iem.io.write import PathLike, atomic_write
from iem.bench.runner import FigureSample
from iem.config import IEMConfig
from iem.datasets.protocol import tensor_to_uint8

#: Size of one cell of the grid, in inches, and the resolution of the saved file.
CELL_INCHES = 1.6
DPI = 100
TITLE_FONT_SIZE = 8


def inpainting_image(image: torch.Tensor, mask: torch.Tensor, config: Optional[IEMConfig] = None) -> np.ndarray:
    """(H, W, 3) uint8 picture of ``image`` (3, H, W) inpainted across ``mask`` (H, W) by psi_K."""
    painted = iem.inpaint(image.unsqueeze(0), mask.view(1, 1, *mask.shape).to(torch.bool), config)
    return tensor_to_uint8(painted[0].clamp(-1.0, 1.0))


def figure_columns(methods: Sequence[str]) -> List[str]:
    """Column titles for figure methods ``methods`` (the first one also gets the inpainting column)."""
    if not methods:
        raise ValueError("a figure needs at least one method")
    first, *others = methods
    return ["input", "ground truth", f"{first} mask", f"{first} inpainting", *(f"{m} mask" for m in others)]


def render_grid(
    samples: Sequence[FigureSample],
    methods: Sequence[str],
    path: PathLike,
    configs: Optional[Mapping[str, IEMConfig]] = None,
    title: Optional[str] = None,
) -> None:
    """Save the grid of ``samples`` as a PNG at ``path`` (atomically).

    Args:
        samples: Figure samples holding masks for every name of ``methods``.
        methods: Figure methods; the inpainting column uses the first one's mask and IEM
            settings (``configs[name]``, the paper preset when absent).
        path: Output file (PNG).
        configs: IEM settings by method name.
        title: Optional title above the grid.

    Raises:
        ValueError: no samples, or a sample lacks a method's mask.
        ImportError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # matplotlib is the optional "plot" extra
        raise ImportError("figures need matplotlib: pip install 'iem[plot]'") from err
    if not samples:
        raise ValueError("a figure needs at least one sample")
    columns = figure_columns(methods)
    config = (configs or {}).get(methods[0])
    figure = Figure(figsize=(CELL_INCHES * len(columns), CELL_INCHES * len(samples)), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(samples), len(columns), squeeze=False)
    for row, sample in enumerate(samples):
        missing = [m for m in methods if m not in sample.masks]
        if missing:
            raise ValueError(f"sample {sample.name!r} has no mask for {', '.join(missing)}")
        cells: List[Dict[str, object]] = [
            {"image": tensor_to_uint8(sample.image)},
            {"image": sample.truth.numpy(), "cmap": "gray"},
            {"image": sample.masks[methods[0]].numpy(), "cmap": "gray"},
            {"image": inpainting_image(sample.image, sample.masks[methods[0]], config)},
            *({"image": sample.masks[m].numpy(), "cmap": "gray"} for m in methods[1:]),
        ]
        for col, cell in enumerate(cells):
            ax = axes[row][col]
            image = cell["image"]
            if cell.get("cmap"):
                ax.imshow(np.asarray(image, dtype=np.uint8), cmap=cell["cmap"], vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=TITLE_FONT_SIZE)
        axes[row][0].set_ylabel(sample.name, fontsize=TITLE_FONT_SIZE)
    if title:
        figure.suptitle(title, fontsize=TITLE_FONT_SIZE + 2)
    figure.tight_layout()
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))
