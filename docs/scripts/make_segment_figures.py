"""Regenerate the figures of docs/cli.md and of the README quick start.

    python docs/scripts/make_segment_figures.py

* ``docs/images/quickstart.png``: the shipped sample photos (``src/iem/data``) run through
  ``iem segment --outputs mask,cutout,overlay`` with the default settings: photo, mask,
  cut-out (over a checkerboard), overlay.
* ``docs/images/guided_upsampling.png``: the same 128 px IEM mask brought back to full
  resolution by nearest, bilinear and guided-filter upsampling, on zoomed crops.

Needs matplotlib (``pip install iem[plot]``). Deterministic: IEM runs on the CPU.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from iem.config import IEMConfig  # noqa: E402
from iem.data import SAMPLES, sample_folder, sample_path  # noqa: E402
from iem.io.read import read_image  # noqa: E402
from iem.io.write import atomic_write  # noqa: E402
from iem.io.upsample import upsample_mask  # noqa: E402
from iem.pipeline import Segmenter, working_image  # noqa: E402

DOCS = Path(__file__).resolve().parents[1]
IMAGES = DOCS / "images"
CHECKER = 16  # side of the checkerboard squares behind cut-outs, in pixels
#: (sample, left, top, side) of the crops of the upsampling figure, in full-resolution pixels.
CROPS = [("coffee", 330, 40, 120), ("retina", 470, 30, 120)]
EDGE_COLOUR = (255, 40, 40)


def _checkerboard(size) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    tiles = ((yy // CHECKER + xx // CHECKER) % 2).astype(np.uint8)
    return Image.fromarray(np.where(tiles[..., None] == 1, 205, 245).astype(np.uint8).repeat(3, axis=2))


def quickstart() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "iem", "segment", str(sample_folder()), "-o", tmp,
             "--outputs", "mask,cutout,overlay", "--device", "cpu", "-q"],
            check=True,
        )  # fmt: skip
        out = Path(tmp)
        fig, axes = plt.subplots(len(SAMPLES), 4, figsize=(12, 3.1 * len(SAMPLES)))
        for row, name in enumerate(SAMPLES):
            photo = Image.open(sample_path(name)).convert("RGB")
            cut = Image.open(out / f"{name}.cutout.png")
            backdrop = _checkerboard(cut.size).convert("RGBA")
            backdrop.alpha_composite(cut)
            panels = [photo, Image.open(out / f"{name}.mask.png"), backdrop, Image.open(out / f"{name}.overlay.jpg")]
            for col, (panel, title) in enumerate(zip(panels, ["photo", "mask", "cut-out", "overlay"])):
                ax = axes[row, col]
                ax.imshow(panel, cmap="gray" if panel.mode == "L" else None, vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(title, fontsize=13)
            axes[row, 0].set_ylabel(f"{name}.jpg  {photo.width}x{photo.height}", fontsize=11)
        fig.suptitle("iem segment src/iem/data -o out/ --outputs mask,cutout,overlay  (default settings)", fontsize=12)
        fig.tight_layout()
        path = IMAGES / "quickstart.png"
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=80))
        plt.close(fig)
    return path


def _edges(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch the other region (4-neighbourhood)."""
    edge = np.zeros_like(mask)
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    edge[:-1, :] |= mask[1:, :] != mask[:-1, :]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[:, :-1] |= mask[:, 1:] != mask[:, :-1]
    return edge


def upsampling() -> Path:
    segmenter = Segmenter(IEMConfig.paper(), "cpu")
    methods = ["nearest", "bilinear", "guided"]
    fig, axes = plt.subplots(
        len(CROPS), len(methods), figsize=(4 * len(methods), 4.4 * len(CROPS)), constrained_layout=True
    )
    for row, (name, left, top, side) in enumerate(CROPS):
        photo = read_image(sample_path(name))
        working = working_image(photo, 128, name)
        images = (np.asarray(working, dtype=np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        soft = segmenter.soft_masks(torch.from_numpy(images))[0, 0].numpy()
        box = (left, top, left + side, top + side)
        for col, method in enumerate(methods):
            mask = upsample_mask(soft, photo, method)
            crop = np.array(photo.crop(box))
            edge = _edges(mask[top : top + side, left : left + side])
            crop[edge] = EDGE_COLOUR
            ax = axes[row, col]
            ax.imshow(crop, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            scale = photo.height / working.shape[0]
            ax.set_title(f"{name}: {method}" + (" (default)" if method == "guided" else ""), fontsize=12)
            if col == 0:
                ax.set_ylabel(f"{side}x{side} px crop; mask made at 1/{scale:.1f} scale", fontsize=10)
    fig.suptitle("Mask boundary (red) brought from the 128 px working size to full resolution", fontsize=12)
    path = IMAGES / "guided_upsampling.png"
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=80))
    plt.close(fig)
    return path


if __name__ == "__main__":
    IMAGES.mkdir(parents=True, exist_ok=True)
    for made in (quickstart(), upsampling()):
        print(made, f"{made.stat().st_size / 1024:.0f} KiB")
