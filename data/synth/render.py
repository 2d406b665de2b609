"""Simulate a sampled scene with MuJoCo and draw its frames and per-object segmentation.

MuJoCo needs a GL for headless drawing: EGL on machines with an NVIDIA GPU, OSMesa elsewhere. The
choice is made from MUJOCO_GL when set, before mujoco is imported.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from data.classes import BACKGROUND, COLOR_RGB
from data.synth.scene import ObjectSpec, SceneConfig, SceneSpec


def default_gl_backend() -> str:
    """EGL where an NVIDIA device is visible, OSMesa otherwise."""
    return "egl" if Path("/dev/nvidia0").exists() else "osmesa"


os.environ.setdefault("MUJOCO_GL", default_gl_backend())
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import mujoco  # noqa: E402  (after MUJOCO_GL is set)

# Metal is shiny: strong, tight specular highlights; rubber is matte. (No mirror reflectance: MuJoCo
# draws it with an extra pass per reflecting face, which would triple the cost of a frame.)
_MATERIAL_ATTRS = {
    "metal": 'specular="1" shininess="0.8"',
    "rubber": 'specular="0" shininess="0"',
}
_MATERIAL_SHADE = {"metal": 0.75, "rubber": 1.0}  # metal's body colour is darker under its highlights
_PARK_Y = -40.0  # objects wait behind the camera, out of view, until they enter


def scene_xml(scene: SceneSpec, cfg: SceneConfig) -> str:
    """The MJCF model of a scene: floor, light, camera and one free body per object."""
    cam = cfg.camera
    right, up, _ = cam.axes()
    bodies = "\n".join(_body_xml(i, obj) for i, obj in enumerate(scene.objects))
    materials = "\n".join(
        f'<material name="{m}_{c}" rgba="{_rgba(rgb, _MATERIAL_SHADE[m])}" {attrs}/>'
        for m, attrs in _MATERIAL_ATTRS.items()
        for c, rgb in COLOR_RGB.items()
    )
    return f"""
<mujoco model="synth">
  <option timestep="{cfg.physics_dt}" gravity="0 0 -9.81" integrator="implicitfast"/>
  <visual>
    <global offwidth="{cam.width}" offheight="{cam.height}"/>
    <quality shadowsize="1024" offsamples="4"/>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.25 0.25 0.25" specular="0.4 0.4 0.4"/>
    <map shadowclip="12" znear="0.05" zfar="80"/>
  </visual>
  <asset>
    <material name="floor" rgba="0.62 0.62 0.6 1" specular="0.1" shininess="0.1"/>
    {materials}
  </asset>
  <default>
    <geom friction="{cfg.friction} 0.005 0.001" condim="6" solref="0.01 1"/>
  </default>
  <worldbody>
    <light name="sun" directional="true" castshadow="true" pos="-4 -6 10" dir="0.35 0.45 -0.82"
           diffuse="0.75 0.75 0.72" specular="0.9 0.9 0.9"/>
    <light name="fill" directional="true" castshadow="false" pos="5 -5 8" dir="-0.4 0.3 -0.8"
           diffuse="0.2 0.2 0.22" specular="0.7 0.7 0.7"/>
    <camera name="main" pos="{_vec(cam.position)}" xyaxes="{_vec(right)} {_vec(up)}" fovy="{cam.fovy}"/>
    <geom name="floor" type="plane" size="60 60 0.1" material="floor"/>
    {bodies}
  </worldbody>
</mujoco>
"""


def _rgba(rgb: tuple[int, int, int], shade: float) -> str:
    return " ".join(f"{shade * v / 255:.3f}" for v in rgb) + " 1"


def _vec(values: tuple[float, ...] | np.ndarray) -> str:
    return " ".join(f"{float(v):.6f}" for v in values)


def _body_xml(index: int, obj: ObjectSpec) -> str:
    s = obj.size
    geom = {
        "cube": f'type="box" size="{s} {s} {s}"',
        "sphere": f'type="sphere" size="{s}"',
        "cylinder": f'type="cylinder" size="{s} {s}"',
    }[obj.cls.shape]
    x, y = _parking_spot(index) if obj.enter_frame else obj.xy
    material = f"{obj.cls.material}_{obj.cls.color}"
    return (
        f'<body name="obj{index}" pos="{x} {y} {s}" euler="0 0 {obj.yaw}"><freejoint/>'
        f'<geom name="obj{index}" {geom} material="{material}" density="{2700 if obj.cls.material == "metal" else 1100}"/>'
        "</body>"
    )


def _parking_spot(index: int) -> tuple[float, float]:
    return (4.0 * index - 40.0, _PARK_Y)


class SceneRenderer:
    """Draws scenes at the camera's resolution. Holds one GL context for its lifetime; close it."""

    def __init__(self, cfg: SceneConfig) -> None:
        self.cfg = cfg
        self._gl = mujoco.GLContext(cfg.camera.width, cfg.camera.height)
        self._gl.make_current()

    def close(self) -> None:
        self._gl.free()

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def simulate(self, scene: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
        """Frames (T, H, W, 3) uint8 and class masks (T, H, W) uint8 of a scene."""
        cfg = self.cfg
        model = mujoco.MjModel.from_xml_string(scene_xml(scene, cfg))
        data = mujoco.MjData(model)
        geom_class = np.full(model.ngeom + 1, BACKGROUND, dtype=np.uint8)  # last entry: no geom (-1)
        for i, obj in enumerate(scene.objects):
            geom_class[model.geom(f"obj{i}").id] = obj.cls.class_id
        for i, obj in enumerate(scene.objects):
            if obj.enter_frame == 0:
                _set_velocity(model, data, i, obj.velocity)
        h, w = cfg.camera.height, cfg.camera.width
        frames = np.empty((cfg.n_frames, h, w, 3), dtype=np.uint8)
        masks = np.empty((cfg.n_frames, h, w), dtype=np.uint8)
        steps_per_frame = max(1, round(cfg.frame_dt / cfg.physics_dt))
        scene_view = mujoco.MjvScene(model, maxgeom=model.ngeom + 10)
        option = mujoco.MjvOption()
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        camera.fixedcamid = model.camera("main").id
        context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
        try:
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
            rect = mujoco.MjrRect(0, 0, w, h)
            seg = np.empty((h, w, 3), dtype=np.uint8)
            mujoco.mj_forward(model, data)
            for t in range(cfg.n_frames):
                if t > 0:
                    for i, obj in enumerate(scene.objects):
                        if obj.enter_frame == t:
                            _enter(model, data, i, obj, scene)
                    mujoco.mj_step(model, data, nstep=steps_per_frame)
                mujoco.mjv_updateScene(model, data, option, None, camera, mujoco.mjtCatBit.mjCAT_ALL, scene_view)
                scene_view.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = False
                scene_view.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = False
                mujoco.mjr_render(rect, scene_view, context)
                mujoco.mjr_readPixels(frames[t], None, rect, context)
                scene_view.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
                scene_view.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
                mujoco.mjr_render(rect, scene_view, context)
                mujoco.mjr_readPixels(seg, None, rect, context)
                masks[t] = geom_class[_segment_ids(seg, scene_view)]
        finally:
            context.free()
        # OpenGL reads rows bottom-up
        return frames[:, ::-1].copy(), masks[:, ::-1].copy()


def _segment_ids(seg: np.ndarray, scene_view: mujoco.MjvScene) -> np.ndarray:
    """Model geom ids (-1: none) from an id-colour render, where colour segid + 1 marks a drawn geom."""
    segid = seg[..., 0].astype(np.int32) | (seg[..., 1].astype(np.int32) << 8) | (seg[..., 2].astype(np.int32) << 16)
    lookup = np.full(scene_view.ngeom + 1, -1, dtype=np.int32)
    for k in range(scene_view.ngeom):
        geom = scene_view.geoms[k]
        if geom.segid >= 0 and geom.objtype == mujoco.mjtObj.mjOBJ_GEOM:
            lookup[geom.segid + 1] = geom.objid
    if segid.max() > scene_view.ngeom:
        raise RuntimeError(f"segmentation render holds id {segid.max()} beyond the {scene_view.ngeom} drawn geoms")
    return lookup[segid]


def _set_velocity(model: mujoco.MjModel, data: mujoco.MjData, index: int, velocity: tuple[float, float]) -> None:
    dof = model.jnt_dofadr[model.body(f"obj{index}").jntadr[0]]
    data.qvel[dof : dof + 2] = velocity


def _enter(model: mujoco.MjModel, data: mujoco.MjData, index: int, obj: ObjectSpec, scene: SceneSpec) -> None:
    """Move a parked object to its entry point (backed off until clear of the others) and launch it."""
    adr = model.jnt_qposadr[model.body(f"obj{index}").jntadr[0]]
    direction = np.asarray(obj.velocity) / max(1e-9, float(np.linalg.norm(obj.velocity)))
    xy = np.asarray(obj.xy, dtype=float)
    others = [
        (data.qpos[model.jnt_qposadr[model.body(f"obj{j}").jntadr[0]] :][:2], other.bound)
        for j, other in enumerate(scene.objects)
        if j != index and other.enter_frame < obj.enter_frame
    ]
    while any(math.dist(xy, pos) < obj.bound + bound + 0.05 for pos, bound in others):
        xy = xy - direction * 0.2
    data.qpos[adr : adr + 3] = (xy[0], xy[1], obj.size)
    data.qpos[adr + 3 : adr + 7] = (math.cos(obj.yaw / 2), 0.0, 0.0, math.sin(obj.yaw / 2))
    dof = model.jnt_dofadr[model.body(f"obj{index}").jntadr[0]]
    data.qvel[dof : dof + 6] = 0.0
    _set_velocity(model, data, index, obj.velocity)
