"""Perturbed LIBERO tasks (LIBERO-Plus, LIBERO-PRO) behind the same `Env` interface as `srpo.envs.libero`.

A `VariantTask` names one perturbed task completely (its package, BDDL file, init states, instruction and the
perturbations the env applies itself); a `VariantEnvFactory` over a tuple of them feeds the rollout engine, so
the robustness evaluation reuses its persistent workers, soft resets and held-out init states.

LIBERO-PRO tasks build with `libero.libero` (srpo's LIBERO install) in the worker. LIBERO-Plus tasks need
`liberoplus`, which requires MuJoCo 3 while srpo's LIBERO pins 2.3.7, so with `python` set the factory returns a
`srpo.envs.remote.RemoteEnv`: the env lives in a child process of that interpreter (see README "Robustness").

Two perturbations are applied here rather than by LIBERO-Plus, because srpo renders on demand with `sim.render`
instead of reading robosuite's observation dict:
- noise: LIBERO-Plus corrupts `obs["agentview_image"]` in its env wrapper's step(). We switch that off, render
  the agentview at 256² (the size its fog corruption requires), apply the same corruption function of
  `liberoplus`, then resize to the policy's size.
- robot initial state: the variant's robot ("PandaK") carries the perturbed joint configuration, but the init
  states it is evaluated from are the base task's, which hold the standard robot pose; setting one would undo
  the perturbation. We write the variant robot's joint positions into every init state (objects untouched).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from srpo.config.libero import LiberoConfig
from srpo.envs.base import Observation, TaskSpec
from srpo.envs.libero import AGENTVIEW_CAMERA, LiberoEnv, _configure_render_backend, upright

VariantPackage = Literal["libero", "liberoplus"]
# Frame size LIBERO-Plus's corruption functions take: fog adds a fixed 256² pattern to the frame.
NOISE_IMAGE_SIZE = 256


@dataclass(frozen=True)
class VariantTask:
    """One perturbed LIBERO task, fully specified (plain data: it pickles into worker processes).

    Attributes:
        key: Unique id, e.g. "libero-plus/libero_spatial/<task name>" or "libero-pro/libero_spatial_swap/0".
        package: "libero" (LIBERO-PRO, srpo's LIBERO install) or "liberoplus".
        benchmark_suite: Suite the package's benchmark loads the task from, e.g. "libero_spatial_swap".
        task_index: Index of the task in that benchmark (default task order).
        bddl: BDDL path relative to the package's bddl_files directory, as the package's env expects it
            (LIBERO-Plus reads camera, robot and noise settings from the name of a view variant).
        instruction: Instruction given to the policy.
        dimension: Perturbation dimension, e.g. "camera" or "swap".
        level: Perturbation level where the benchmark defines one, else None.
        num_init_states: Initial states the task ships.
        noise: LIBERO-Plus image-corruption index 1–50, 0 for none.
        robot_init: LIBERO-Plus robot-pose variant, 0 for the standard pose.
    """

    key: str
    package: VariantPackage
    benchmark_suite: str
    task_index: int
    bddl: str
    instruction: str
    dimension: str
    level: int | None
    num_init_states: int
    noise: int = 0
    robot_init: int = 0


def _import_package(package: VariantPackage) -> tuple[Any, Any, Any]:
    """(benchmark module, get_libero_path, OffScreenRenderEnv) of `libero` or `liberoplus`."""
    if package == "libero":
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
        return benchmark, get_libero_path, OffScreenRenderEnv
    if package == "liberoplus":
        # liberoplus writes its path config on first import; keep it inside its environment, not in ~.
        import sys

        os.environ.setdefault("LIBERO_CONFIG_PATH", os.path.join(sys.prefix, "etc", "liberoplus"))
        from liberoplus.liberoplus import benchmark as plus_benchmark
        from liberoplus.liberoplus import get_libero_path as plus_path
        from liberoplus.liberoplus.envs import OffScreenRenderEnv as PlusEnv
        return plus_benchmark, plus_path, PlusEnv
    raise ValueError(f"package={package!r}: choose 'libero' or 'liberoplus'")


def corrupt_image(image: np.ndarray, noise: int) -> np.ndarray:
    """LIBERO-Plus's sensor-noise corruption `noise` (1–50) of one raw 256² agentview frame.

    Args:
        image: (256, 256, 3) uint8 frame as rendered (not yet turned upright).
        noise: 1–10 motion blur, 11–20 Gaussian blur, 21–30 zoom blur, 31–40 fog, 41–50 glass blur, severity
            (noise − 1) % 10 + 1.

    Returns:
        (256, 256, 3) uint8 corrupted frame.
    """
    from liberoplus.liberoplus.envs import env_wrapper
    from PIL import Image

    if not 1 <= noise <= 50:
        raise ValueError(f"noise={noise} must be in [1, 50]")
    kinds = (env_wrapper.motion_blur, env_wrapper.gaussian_blur, env_wrapper.zoom_blur, env_wrapper.fog,
             env_wrapper.glass_blur)
    out = kinds[(noise - 1) // 10](Image.fromarray(image), severity=(noise - 1) % 10 + 1)
    return np.asarray(out).astype(np.uint8)


class VariantLiberoEnv(LiberoEnv):
    """A `LiberoEnv` built from a `VariantTask` instead of a (suite, task id) of the base benchmark."""

    def __init__(self, config: LiberoConfig, task: VariantTask, task_id: int) -> None:
        _configure_render_backend(config.render_backend)
        benchmark, get_libero_path, off_screen_render_env = _import_package(task.package)
        self.task = task
        bench = benchmark.get_benchmark(task.benchmark_suite)()
        init_states = np.asarray(bench.get_task_init_states(task.task_index), dtype=np.float64)
        if init_states.ndim == 1:
            init_states = init_states[None]
        spec = TaskSpec(suite=task.benchmark_suite, task_id=task_id, instruction=task.instruction,
                        max_steps=config.resolved_max_steps, num_init_states=len(init_states))
        # task_index seeds the fixture placement of each reset (LiberoEnv.reset): any fixed per-task value works.
        self._build(config, spec, task.task_index, os.path.join(get_libero_path("bddl_files"), task.bddl),
                    init_states, off_screen_render_env)
        if task.robot_init:
            self._init_states = self._with_variant_robot_pose(self._init_states)
        if task.noise and getattr(self._env, "noise", 0):
            # LIBERO-Plus's wrapper reads the corruption index from the BDDL name and applies it in its own step()
            # to obs["agentview_image"], which on-demand rendering leaves out of robosuite's observations (a
            # KeyError at the first step). srpo corrupts the policy image itself (_observe), so the wrapper's is off.
            self._env.noise = 0

    def _with_variant_robot_pose(self, states: np.ndarray) -> np.ndarray:
        """Copy of `states` (N, 1 + nq + nv) with the robot joints at the variant robot's `init_qpos`."""
        robot = self._env.env.robots[0]
        model = self._env.env.sim.model
        qpos_index = 1 + np.asarray(robot._ref_joint_pos_indexes)  # flattened state = [time, qpos, qvel]
        qvel_index = 1 + model.nq + np.asarray(robot._ref_joint_vel_indexes)
        out = states.copy()
        out[:, qpos_index] = np.asarray(robot.init_qpos, dtype=np.float64)
        out[:, qvel_index] = 0.0
        return out

    def _observe(self, success: bool, render_policy: bool, render_embed: bool) -> Observation:
        obs = super()._observe(success, render_policy, render_embed)
        if self.task.noise and obs.image is not None:
            sim = self._env.env.sim
            sim._render_context_offscreen.gl_ctx.make_current()
            raw = sim.render(width=NOISE_IMAGE_SIZE, height=NOISE_IMAGE_SIZE, camera_name=AGENTVIEW_CAMERA)
            noisy = upright(corrupt_image(raw, self.task.noise))
            if self.config.image_size != NOISE_IMAGE_SIZE:
                import cv2

                size = (self.config.image_size, self.config.image_size)
                noisy = cv2.resize(noisy, size, interpolation=cv2.INTER_AREA)
            obs.image = np.ascontiguousarray(noisy, dtype=np.uint8)
        return obs


@dataclass(frozen=True)
class VariantEnvFactory:
    """Builds `VariantLiberoEnv`s (task k = `tasks[k]`), in this interpreter or, with `python` set, each in a
    child process of that interpreter (`srpo.envs.remote`).

    Attributes:
        tasks: The perturbed tasks, position == TaskSpec.task_id.
        libero: Cameras, image sizes, horizon, settle steps and render backend.
        python: Interpreter of the environment that has the task's package (LIBERO-Plus), or None.
        assets: LIBERO-Plus asset directory the child should load scenes from, or None for LIBERO's assets.
    """

    tasks: tuple[VariantTask, ...]
    libero: LiberoConfig = field(default_factory=LiberoConfig)
    python: str | None = None
    assets: str | None = None

    def task_specs(self) -> list[TaskSpec]:
        """One spec per task, without building anything."""
        return [TaskSpec(suite=t.benchmark_suite, task_id=k, instruction=t.instruction,
                         max_steps=self.libero.resolved_max_steps, num_init_states=t.num_init_states)
                for k, t in enumerate(self.tasks)]

    def make(self, task_id: int) -> Any:
        """Build task `task_id` (~5 s; the engine does it once per worker and task)."""
        if not 0 <= task_id < len(self.tasks):
            raise IndexError(f"task_id={task_id} out of range: this factory has {len(self.tasks)} tasks")
        if self.python is not None:
            from srpo.envs.remote import RemoteEnv

            local = VariantEnvFactory(self.tasks, self.libero, None, self.assets)
            return RemoteEnv(self.python, local, task_id, self.task_specs()[task_id])
        if self.tasks[task_id].package == "liberoplus":
            from srpo.envs.remote import ensure_liberoplus_assets

            ensure_liberoplus_assets(self.assets)
        return VariantLiberoEnv(self.libero, self.tasks[task_id], task_id)
