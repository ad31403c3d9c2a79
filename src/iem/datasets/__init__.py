"""Datasets of the paper in their released layouts, and the evaluation protocols.

>>> from iem.datasets import open_dataset
>>> data = open_dataset("../shared/data/grabcut")          # doctest: +SKIP
>>> name, image, mask = data[0]                            # doctest: +SKIP
>>> image.shape, mask.shape                                # doctest: +SKIP
(torch.Size([3, 128, 128]), torch.Size([128, 128]))
"""

from iem.datasets.base import DatasetError, PairDataset, Record, Sample, SampleError
from iem.datasets.cub import open_cub
from iem.datasets.detect import LAYOUTS, detect_layout, open_dataset
from iem.datasets.flowers import open_flowers
from iem.datasets.folder import open_folder_pair, scan_by_stem
from iem.datasets.masks import binarize_levels, read_mask, read_segmim, segmim_foreground
from iem.datasets.protocol import PAPER_SIZE, PROTOCOLS, apply_protocol, image_to_tensor, tensor_to_uint8
from iem.datasets.synthetic import write_shapes_dataset

__all__ = [
    "DatasetError",
    "LAYOUTS",
    "PAPER_SIZE",
    "PROTOCOLS",
    "PairDataset",
    "Record",
    "Sample",
    "SampleError",
    "apply_protocol",
    "binarize_levels",
    "detect_layout",
    "image_to_tensor",
    "open_cub",
    "open_dataset",
    "open_flowers",
    "open_folder_pair",
    "read_mask",
    "read_segmim",
    "scan_by_stem",
    "segmim_foreground",
    "tensor_to_uint8",
    "write_shapes_dataset",
]
