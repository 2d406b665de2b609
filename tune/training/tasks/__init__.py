"""The training tasks, one object each (see base.Task); `task_for(model)` picks a model's task."""

from tune.training.tasks.base import LoadOptions, Task, TrainData, answering_models, random_hflip, task_for
from tune.training.tasks.frame_prediction import FramePrediction
from tune.training.tasks.frame_segmentation import FrameSegmentation, segment_frames
from tune.training.tasks.mask_prediction import MaskPrediction
from tune.training.tasks.object_dynamics import ObjectDynamics
from tune.training.tasks.segmentation import Segmentation

__all__ = [
    "FramePrediction",
    "FrameSegmentation",
    "LoadOptions",
    "MaskPrediction",
    "ObjectDynamics",
    "Segmentation",
    "Task",
    "TrainData",
    "answering_models",
    "random_hflip",
    "segment_frames",
    "task_for",
]
