"""The competition's 49 classes, frame geometry and frame indices (../shared/DATA.md).

class id = shape * 16 + material * 8 + color + 1, background 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_HEIGHT = 160
FRAME_WIDTH = 240
N_FRAMES = 22  # frames of a labelled or unlabeled video
N_INPUT_FRAMES = 11  # frames given as input (image_0 .. image_10); the hidden split has only these
TARGET_FRAME = 21  # index of the frame whose mask is predicted (frame 22)
INPUT_FRAMES = tuple(range(N_INPUT_FRAMES))  # indices of the input frames 1-11 (image_0 .. image_10)
LAST_INPUT_FRAME = N_INPUT_FRAMES - 1  # index of frame 11, the last one given
FUTURE = slice(N_INPUT_FRAMES, TARGET_FRAME + 1)  # frames 12-22, the ones after the inputs up to the target
FUTURE_FRAMES = TARGET_FRAME + 1 - N_INPUT_FRAMES  # 11: how many frames FUTURE holds

SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("metal", "rubber")
COLORS = ("gray", "red", "blue", "green", "brown", "cyan", "purple", "yellow")
NUM_CLASSES = 1 + len(SHAPES) * len(MATERIALS) * len(COLORS)  # 49, background included
BACKGROUND = 0
# the channels of an object's track in a frame, as data.tracks.dense_tracks holds them (a model's input)
TRACK_CHANNELS = ("present", "area", "row", "col", "top", "bottom", "left", "right", "visible", "edge")

# RGB of each colour, 0..255 (the CLEVR palette the competition's renderer follows).
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "cyan": (41, 208, 208),
    "purple": (129, 38, 192),
    "yellow": (255, 238, 51),
}


@dataclass(frozen=True)
class ObjectClass:
    """One of the 48 object classes."""

    shape: str  # one of SHAPES
    material: str  # one of MATERIALS
    color: str  # one of COLORS

    @property
    def class_id(self) -> int:
        return class_id(self.shape, self.material, self.color)

    @property
    def name(self) -> str:
        return f"{self.color} {self.material} {self.shape}"


def class_id(shape: str, material: str, color: str) -> int:
    """The competition's id of an object class (1..48)."""
    for field, value, allowed in (
        ("shape", shape, SHAPES),
        ("material", material, MATERIALS),
        ("color", color, COLORS),
    ):
        if value not in allowed:
            raise ValueError(f"unknown {field} {value!r}; expected one of {', '.join(allowed)}")
    return SHAPES.index(shape) * 16 + MATERIALS.index(material) * 8 + COLORS.index(color) + 1


def object_class(cid: int) -> ObjectClass:
    """The inverse of class_id, for ids 1..48."""
    if not 1 <= cid < NUM_CLASSES:
        raise ValueError(f"class id must be in 1..{NUM_CLASSES - 1}, got {cid}")
    k = cid - 1
    return ObjectClass(SHAPES[k // 16], MATERIALS[(k // 8) % 2], COLORS[k % 8])


def class_names() -> list[str]:
    """Names of all 49 classes, indexed by class id."""
    return ["background"] + [object_class(c).name for c in range(1, NUM_CLASSES)]


def class_palette() -> list[tuple[int, int, int]]:
    """A display colour per class id: the object's colour, darker for rubber, shifted per shape,
    so that classes of one colour stay told apart in a mask picture."""
    palette = [(0, 0, 0)]
    for cid in range(1, NUM_CLASSES):
        cls = object_class(cid)
        r, g, b = COLOR_RGB[cls.color]
        scale = 1.0 if cls.material == "metal" else 0.6
        shift = 40 * SHAPES.index(cls.shape)
        palette.append(
            (min(255, int(r * scale) + shift), min(255, int(g * scale) + shift), min(255, int(b * scale) + shift))
        )
    return palette


def colour_masks(masks: np.ndarray) -> np.ndarray:
    """Class-id masks (..., H, W) -> RGB pictures (..., H, W, 3) in the classes' display colours."""
    return np.asarray(class_palette(), dtype=np.uint8)[masks]
