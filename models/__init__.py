"""Bare nn.Modules and one registry. Knows nothing of Ray, files or training policy.

Importing the package imports every model file, so the registry is complete whichever module a caller
imports first (`from models.registry import create_model` runs this file before it).
"""

from models import dual_phase, dynamics, frame_predictor, mask_predictor, unet  # noqa: F401  (they register the models)
