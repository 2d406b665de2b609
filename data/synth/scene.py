"""Scene sampling: which objects a video holds, where they start, how they move, when they enter.

Pure numpy; knows nothing of MuJoCo. The camera geometry lives here too, because sampling needs to know
which floor points are in view.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from data.classes import (
    COLORS,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    MATERIALS,
    N_FRAMES,
    N_INPUT_FRAMES,
    SHAPES,
    ObjectClass,
)


@functools.cache
def _camera_axes(position: tuple[float, ...], target: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera.axes, computed once per camera: scene sampling projects ~300 points a scene, and computing the
    axes each time (two cross products) was half of its time."""
    back = np.subtract(position, target).astype(float)
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    for axis in (right, up, back):
        axis.flags.writeable = False  # shared by every caller
    return right, up, back


_ANGLES = np.linspace(0, 2 * math.pi, 8, endpoint=False)
_RING = np.stack([np.cos(_ANGLES), np.sin(_ANGLES), np.zeros(8)], axis=1)  # a unit circle on the floor, 8 points


@dataclass(frozen=True)
class Camera:
    """The fixed oblique camera: at `position`, looking at the floor point `target`."""

    position: tuple[float, float, float] = (0.0, -8.0, 6.0)  # metres
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the floor point at the image centre
    fovy: float = 40.0  # vertical field of view, degrees (MuJoCo's convention)
    width: int = FRAME_WIDTH  # pixels
    height: int = FRAME_HEIGHT  # pixels

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Right, up and backward unit vectors of the camera frame (MuJoCo cameras look along -z)."""
        return _camera_axes(self.position, self.target)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (u right, v down) of world points (..., 3); NaN behind the camera."""
        right, up, back = self.axes()
        rel = np.asarray(points, dtype=float) - np.asarray(self.position)
        depth = -(rel @ back)
        focal = (self.height / 2) / math.tan(math.radians(self.fovy) / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.width / 2 + focal * (rel @ right) / depth
            v = self.height / 2 - focal * (rel @ up) / depth
        uv = np.stack([u, v], axis=-1)
        uv[depth <= 0] = np.nan
        return uv

    def in_view(self, xy: np.ndarray, radius: float, *, margin: float = 0.0) -> bool:
        """Whether a floor object of bounding radius `radius` at `xy` lies wholly inside the image,
        with `margin` pixels to spare."""
        return self._extent_inside(xy, radius, margin=margin, whole=True)

    def out_of_view(self, xy: np.ndarray, radius: float) -> bool:
        """Whether no part of a floor object of bounding radius `radius` at `xy` is in the image."""
        return not self._extent_inside(xy, radius, margin=0.0, whole=False)

    def _extent_inside(self, xy: np.ndarray, radius: float, *, margin: float, whole: bool) -> bool:
        ring = _RING * radius
        corners = np.concatenate([ring, ring + np.array([0.0, 0.0, 2 * radius])])
        uv = self.project(np.array([xy[0], xy[1], 0.0]) + corners)
        inside = (
            np.isfinite(uv).all(axis=1)
            & (uv[:, 0] >= margin)
            & (uv[:, 0] <= self.width - margin)
            & (uv[:, 1] >= margin)
            & (uv[:, 1] <= self.height - margin)
        )
        return bool(inside.all() if whole else inside.any())


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are sampled and simulated. The defaults give CLEVRER-like clips of 22 frames."""

    n_frames: int = N_FRAMES  # frames per video
    frame_dt: float = 0.08  # simulated seconds between two frames
    physics_dt: float = 0.004  # MuJoCo time step, seconds
    min_initial: int = 2  # objects in view at the first frame, at least
    max_initial: int = 6  # ... and at most
    max_entering: int = 3  # objects that enter the view during the video, at most
    p_late_entry: float = 0.5  # chance that a video has an object entering between frames 11 and 22
    min_size: float = 0.3  # half-extent (cube), radius (sphere, cylinder), metres
    max_size: float = 0.55
    min_speed: float = 1.0  # initial speed of a moving object in view, m/s
    max_speed: float = 4.0  # ... and at most
    p_still: float = 0.3  # chance that an object in view starts at rest
    entry_speed: tuple[float, float] = (2.5, 4.5)  # speed of an entering object, m/s
    friction: float = 0.1  # sliding friction of the floor and objects
    camera: Camera = field(default_factory=Camera)

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise ValueError(f"SceneConfig.n_frames must be >= 1, got {self.n_frames}")
        if not 0 <= self.min_initial <= self.max_initial:
            raise ValueError(
                f"SceneConfig needs 0 <= min_initial <= max_initial, got {self.min_initial}, {self.max_initial}"
            )
        if self.max_initial + self.max_entering > len(SHAPES) * len(MATERIALS) * len(COLORS):
            raise ValueError("SceneConfig asks for more objects than there are classes (48)")
        if self.frame_dt < self.physics_dt:
            raise ValueError(f"SceneConfig.frame_dt ({self.frame_dt}) must be >= physics_dt ({self.physics_dt})")


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a video and its motion."""

    cls: ObjectClass
    size: float  # half-extent or radius, metres
    xy: tuple[float, float]  # start (enter_frame 0) or entry point (enter_frame > 0), metres
    yaw: float  # radians
    velocity: tuple[float, float]  # m/s on the floor
    enter_frame: int  # 0: in view from the start; k > 0: placed at `xy` just before frame k is drawn

    @property
    def bound(self) -> float:
        """Radius of the object's footprint on the floor."""
        return self.size * (math.sqrt(2) if self.cls.shape == "cube" else 1.0)


@dataclass(frozen=True)
class SceneSpec:
    objects: tuple[ObjectSpec, ...]


def sample_scene(rng: np.random.Generator, cfg: SceneConfig) -> SceneSpec:
    """Draw one video's objects: distinct classes, initial objects in view and not overlapping,
    entering objects with an entry frame, an entry point just out of view and a velocity into it."""
    n_initial = int(rng.integers(cfg.min_initial, cfg.max_initial + 1))
    entry_frames = _sample_entry_frames(rng, cfg)
    all_classes = [ObjectClass(s, m, c) for s in SHAPES for m in MATERIALS for c in COLORS]
    picks = rng.choice(len(all_classes), size=n_initial + len(entry_frames), replace=False)
    objects: list[ObjectSpec] = []
    for k, class_index in enumerate(picks):
        cls = all_classes[int(class_index)]
        size = float(rng.uniform(cfg.min_size, cfg.max_size))
        yaw = float(rng.uniform(0, 2 * math.pi))
        if k < n_initial:
            xy = _free_point_in_view(rng, cfg.camera, size, objects)
            velocity = _initial_velocity(rng, cfg)
            objects.append(ObjectSpec(cls, size, xy, yaw, velocity, 0))
        else:
            xy, velocity = _entry(rng, cfg, size)
            objects.append(ObjectSpec(cls, size, xy, yaw, velocity, entry_frames[k - n_initial]))
    return SceneSpec(tuple(objects))


def _sample_entry_frames(rng: np.random.Generator, cfg: SceneConfig) -> list[int]:
    if cfg.n_frames < 2 or cfg.max_entering == 0:
        return []
    frames = [int(f) for f in rng.integers(1, cfg.n_frames, size=int(rng.integers(0, cfg.max_entering + 1)))]
    late = [f for f in frames if f >= N_INPUT_FRAMES]
    if cfg.n_frames > N_INPUT_FRAMES and not late and rng.random() < cfg.p_late_entry:
        late_frame = int(rng.integers(N_INPUT_FRAMES, cfg.n_frames))
        frames = [*frames[1:], late_frame] if len(frames) == cfg.max_entering else [*frames, late_frame]
    return sorted(frames)


def _initial_velocity(rng: np.random.Generator, cfg: SceneConfig) -> tuple[float, float]:
    if rng.random() < cfg.p_still:
        return (0.0, 0.0)
    speed = rng.uniform(cfg.min_speed, cfg.max_speed)
    angle = rng.uniform(0, 2 * math.pi)
    return (float(speed * math.cos(angle)), float(speed * math.sin(angle)))


def _free_point_in_view(
    rng: np.random.Generator, camera: Camera, size: float, placed: list[ObjectSpec]
) -> tuple[float, float]:
    bound = size * math.sqrt(2)
    for _ in range(1000):
        xy = rng.uniform([-6.0, -4.0], [6.0, 9.0])
        if not camera.in_view(xy, bound, margin=2.0):
            continue
        if all(math.dist(xy, o.xy) > bound + o.bound + 0.1 for o in placed if o.enter_frame == 0):
            return (float(xy[0]), float(xy[1]))
    raise RuntimeError("could not place an object in view without overlap; lower SceneConfig.max_initial")


def _entry(rng: np.random.Generator, cfg: SceneConfig, size: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """An entry point just outside the image and a velocity that carries the object into it."""
    camera = cfg.camera
    bound = size * math.sqrt(2)
    for _ in range(1000):
        goal = rng.uniform([-6.0, -4.0], [6.0, 9.0])
        if not camera.in_view(goal, bound, margin=10.0):
            continue
        angle = rng.uniform(0, 2 * math.pi)
        direction = np.array([math.cos(angle), math.sin(angle)])
        # walk back from the goal until the whole object is out of view
        for step in np.arange(0.1, 8.0, 0.1):
            start = goal - direction * step
            if camera.out_of_view(start, bound):
                break
        else:
            continue
        speed = rng.uniform(*cfg.entry_speed)
        return (float(start[0]), float(start[1])), (float(direction[0] * speed), float(direction[1] * speed))
    raise RuntimeError("could not find an entry path into the view")
