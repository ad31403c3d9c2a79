"""Phase 2 of IEM (paper section 3.3): a segmentation network trained on IEM's best masks.

The public surface::

    from iem.segnet import SegNet, load_model, predict, refine, train_from_files, export_model
"""

from iem.segnet.checkpoint import CheckpointError
from iem.segnet.export import ExportError, export_model
from iem.segnet.model import SegNet, count_parameters
from iem.segnet.pipeline import NothingToTrain, PipelineReport, train_from_files
from iem.segnet.predict import load_model, predict, refine
from iem.segnet.select import select_top
from iem.segnet.train import CheckpointMismatch, TrainResult, TrainSettings, train_segnet

__all__ = [
    "CheckpointError",
    "CheckpointMismatch",
    "ExportError",
    "NothingToTrain",
    "PipelineReport",
    "SegNet",
    "TrainResult",
    "TrainSettings",
    "count_parameters",
    "export_model",
    "load_model",
    "predict",
    "refine",
    "select_top",
    "train_from_files",
    "train_segnet",
]
