"""Building the parts of a run from its config: the env factory, the policy (fresh or from a checkpoint), the
frozen KL reference, the world-model encoder and the rollout engine (local processes or Ray).

Each choice is a `Literal` field dispatched here with `if/elif/else raise`; heavy and optional dependencies
(LIBERO, transformers, Ray) are imported inside the branch that needs them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.config.base import ConfigError
from srpo.config.train import TrainConfig
from srpo.envs.base import EnvFactory
from srpo.errors import InputFileError, SrpoError
from srpo.policies.base import TrainablePolicy
from srpo.provenance import provenance
from srpo.resume import newest_intact
from srpo.reward.encoders import make_encoder
from srpo.reward.encoders.base import VideoEncoder
from srpo.rollout import RolloutEngine
from srpo.run_dir import (
    POLICY_DIR,
    PROVENANCE_FILE,
    REFERENCE_DIR,
    MetricsLog,
    list_checkpoints,
    read_trainer_state,
    resumable_checkpoints,
    save_run_config,
    update_run_config,
)
from srpo.update import make_optimizer

log = logging.getLogger(__name__)

def make_env_factory(cfg: TrainConfig) -> EnvFactory:
    """The env factory named by cfg.env.kind."""
    if cfg.env.kind == "tabletop":
        from srpo.envs.tabletop import TabletopEnvFactory

        return TabletopEnvFactory(cfg.env.tabletop)
    elif cfg.env.kind == "libero":
        from srpo.envs.libero import LiberoEnvFactory

        return LiberoEnvFactory(cfg.env.libero)
    else:
        raise ValueError(f"unknown env.kind {cfg.env.kind!r}: choose 'tabletop' or 'libero'")


def make_policy(cfg: TrainConfig) -> TrainablePolicy:
    """The policy named by cfg.policy.kind, from its checkpoint when one is given."""
    if cfg.policy.kind == "compact":
        from srpo.policies.compact import CompactVLA

        if cfg.policy.checkpoint:
            path = Path(cfg.policy.checkpoint)
            if not path.exists():
                raise InputFileError(
                    f"policy.checkpoint={cfg.policy.checkpoint!r} does not exist: run `srpo sft` to make one "
                    "(see README), or set policy.checkpoint=null to start from a randomly initialised policy"
                )
            return CompactVLA.from_pretrained(path, device=cfg.policy.device)
        return CompactVLA(cfg.policy)
    elif cfg.policy.kind == "openvla_oft":
        from srpo.policies.openvla_oft import OpenVLAOFTPolicy

        return OpenVLAOFTPolicy.from_config(cfg.policy)
    else:
        raise ValueError(f"unknown policy.kind {cfg.policy.kind!r}: choose 'compact' or 'openvla_oft'")


def load_policy_checkpoint(cfg: TrainConfig, path: Path) -> TrainablePolicy:
    """A policy saved by `save_pretrained` (checkpoints, the KL reference), of kind cfg.policy.kind."""
    return policy_class(cfg).from_checkpoint(path, cfg.policy)


def policy_class(cfg: TrainConfig) -> type[TrainablePolicy]:
    """The TrainablePolicy implementation named by cfg.policy.kind."""
    if cfg.policy.kind == "compact":
        from srpo.policies.compact import CompactVLA

        return CompactVLA
    elif cfg.policy.kind == "openvla_oft":
        from srpo.policies.openvla_oft import OpenVLAOFTPolicy

        return OpenVLAOFTPolicy
    else:
        raise ValueError(f"unknown policy.kind {cfg.policy.kind!r}: choose 'compact' or 'openvla_oft'")


def load_or_make_reference(cfg: TrainConfig, policy: TrainablePolicy, run_dir: Path, step: int) -> TrainablePolicy:
    """The frozen KL reference: the policy the run started from, kept in the run dir so a resume finds it.

    Args:
        cfg: The run's config (policy.kind, device, dtype).
        policy: The policy at `step`; saved as the reference when the run starts (step 0).
        run_dir: The run directory.
        step: Completed steps; after step 0 the saved reference must exist.
    """
    path = run_dir / REFERENCE_DIR
    if not path.exists():
        if step > 0:
            raise InputFileError(f"{path} is missing: the KL reference of this run cannot be recovered")
        policy.save_pretrained(path)
    ref = load_policy_checkpoint(cfg, path)
    ref.requires_grad_(False)
    ref.train(False)
    return ref


def make_reward_encoder(cfg: TrainConfig) -> VideoEncoder | None:
    """The world-model encoder of an SRPO run (None for GRPO, which embeds nothing); in a Ray actor when
    distributed.backend is "ray".

    Building an encoder may draw from torch's global RNG (EfficientNet and V-JEPA 2 initialise randomly before
    loading weights), which rollout sampling also uses: built under a forked RNG, SRPO and GRPO runs of one seed
    sample the same first batch whatever the encoder, and a resumed run continues the stream its checkpoint saved.
    """
    if cfg.algo_name != "srpo":
        return None
    with torch.random.fork_rng():
        if cfg.distributed.backend == "ray":
            from srpo.distributed.encoder import RayEncoder

            return RayEncoder(cfg.encoder, cfg.distributed)
        return make_encoder(cfg.encoder)


EXTERNAL_REFERENCE_FILE = "external_reference.npz"


def make_external_reference(
    cfg: TrainConfig, encoder: VideoEncoder, factory: EnvFactory, init_state_ids: dict[int, list[int]],
    run_dir: Path,
) -> dict[int, np.ndarray]:
    """Task id → (M, D) embeddings of expert successes, the fixed reference of `reward.reference_source="external"`.

    Read back from RUN_DIR/external_reference.npz when it exists (a resumed run compares with the same set);
    otherwise recorded with the env's scripted expert from `init_state_ids[task]` (the training states: the
    reference never sees an evaluation layout) at the rollout's frame stride, or read from the successes of
    `external_reference.demos`, embedded once and written there.

    Args:
        cfg: The run's config (`external_reference`, `env.kind`, the embed frame stride).
        encoder: The run's world-model encoder.
        factory: The run's env factory (task specs; envs for the expert).
        init_state_ids: Task id → the initial states the expert may start from.
        run_dir: Where the embeddings are kept.
    """
    path = run_dir / EXTERNAL_REFERENCE_FILE
    specs = factory.task_specs()
    if path.exists():
        with np.load(path) as data:
            reference = {int(k.removeprefix("task_")): np.asarray(data[k], dtype=np.float32) for k in data.files}
    else:
        ext = cfg.external_reference
        videos: dict[int, list[np.ndarray]] = {}
        if ext.demos is not None:
            from srpo.demos import demo_files, read_demo_files

            try:
                per_file = read_demo_files(demo_files(ext.demos), image_key=ext.image_key)
            except InputFileError as err:
                raise type(err)(f"external_reference.demos: {err}") from err
            for demo in (d for demos in per_file for d in demos):
                if demo.success:
                    videos.setdefault(demo.task_id, []).append(demo.images)
        else:
            from srpo.recording import record_labelled_set, scripted_expert

            stride = cfg.rollout.embed_stride or cfg.policy.chunk_size
            for position, spec in enumerate(specs):
                try:
                    data = record_labelled_set(
                        factory, scripted_expert(cfg.env.kind), [position], ext.episodes_per_task, 0,
                        seed=ext.seed, success_noise=ext.expert_noise,
                        init_state_ids=init_state_ids[spec.task_id], frame_stride=stride,
                    )
                except RuntimeError as err:  # the expert kept failing (its budget of attempts ran out)
                    raise SrpoError(
                        f"external reference, task {spec.task_id}: {err}; the scripted expert needs a longer "
                        "horizon or less noise (env max_steps, external_reference.expert_noise), or pass "
                        "external_reference.demos"
                    ) from err
                videos[spec.task_id] = list(data.videos)
        reference = {}
        for task, clips in videos.items():
            clips = clips[: ext.episodes_per_task]
            reference[task] = np.asarray(encoder.encode(clips), dtype=np.float32)
    missing = sorted({spec.task_id for spec in specs} - set(reference))
    if missing:
        demos = cfg.external_reference.demos
        fix = f"add their successful demos to {demos}" if demos else "the scripted expert failed every attempt"
        raise InputFileError(f"the external reference has no success for task(s) {missing}: {fix}")
    dims = {v.shape[1] for v in reference.values()}
    if dims != {encoder.dim}:
        raise InputFileError(f"{path} holds {sorted(dims)}-dim embeddings but encoder {cfg.encoder.name} gives "
                             f"{encoder.dim}: it was made with another encoder; delete it to re-embed")
    if not path.exists():  # kept only once it is complete and matches the encoder
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"task_{k}": v for k, v in reference.items()})
        tmp.replace(path)
    return reference


def make_rollout_engine(cfg: TrainConfig, factory: EnvFactory) -> RolloutEngine:
    """Local worker processes, or Ray actors (after checking that the cluster can host the whole run)."""
    if cfg.distributed.backend == "ray":
        # Imported here: Ray is an optional extra.
        from srpo.distributed.cluster import check_cluster_resources, ensure_ray, run_demands
        from srpo.distributed.ray_rollout import RayRolloutEngine

        num_rollout_workers = cfg.distributed.num_rollout_workers or max(1, cfg.rollout.num_workers)
        check_cluster_resources(run_demands(cfg.distributed, num_rollout_workers, cfg.algo_name == "srpo"),
                                ensure_ray(cfg.distributed))
        return RayRolloutEngine(factory, cfg.rollout, cfg.distributed)
    return RolloutEngine(factory, cfg.rollout)


@dataclass
class RunStart:
    """What a training loop (`srpo train`, `srpo offline`) starts from: a fresh run or the resumed one."""

    policy: TrainablePolicy
    optimizer: torch.optim.AdamW
    metrics_log: MetricsLog
    step: int
    """Completed steps: 0 for a fresh run, the checkpoint's step when resumed."""
    state: dict[str, Any] | None
    """The resumed checkpoint's trainer state (None for a fresh run); optimizer, torch RNG and step are already
    restored from it, the loop restores what else it saved (e.g. the success memory)."""


def apply_torch_threads(cfg: TrainConfig) -> None:
    """Set torch's intra-op threads to `cfg.torch_num_threads` (0 keeps torch's default).

    Training and every evaluation of its checkpoints should agree: logits computed with 1 and 2 threads differ by
    ~1e-5 (another reduction order), which can flip a near-tied greedy argmax and send a LIBERO episode down
    another path.
    """
    if cfg.torch_num_threads > 0:
        torch.set_num_threads(cfg.torch_num_threads)


@contextmanager
def learner_threads(cfg: TrainConfig) -> Iterator[None]:
    """Run the block with `cfg.torch_learner_threads` intra-op threads (0: unchanged), then restore the count it
    found. The trainer's embed, reward and update phases run inside it; rollout and evaluation outside."""
    if cfg.torch_learner_threads <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_learner_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def start_run(cfg: TrainConfig, resume: bool, policy: TrainablePolicy | None) -> RunStart:
    """Open cfg.run_dir for a new run, or resume the newest intact checkpoint in it.

    A new run refuses a folder that already holds checkpoints; a resumed one skips damaged checkpoints with a
    warning that names them (`newest_intact`). Seeds torch, builds or loads the policy and its AdamW optimizer,
    writes config.yaml for a new run, and appends the commit and command to provenance.jsonl at every start.
    """
    run_dir = Path(cfg.run_dir)
    if not resume and list_checkpoints(run_dir):
        raise InputFileError(
            f"{run_dir} already holds checkpoints: pass --resume {run_dir} to continue that run, or choose another "
            "run_dir"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise InputFileError(f"run_dir={run_dir} is a file, not a directory: choose another run_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    apply_torch_threads(cfg)
    torch.manual_seed(cfg.seed)
    state: dict[str, Any] | None = None
    if resume:
        _, (saved, policy) = newest_intact(resumable_checkpoints(run_dir), lambda ckpt: (
            read_trainer_state(ckpt), load_policy_checkpoint(cfg, ckpt / POLICY_DIR)))
        state = saved
        if int(saved["step"]) > cfg.num_steps:
            # The loop would run no step and say nothing: a run extended once (--set num_steps=40) and resumed
            # with its old length, say.
            raise ConfigError(
                f"{run_dir} is at step {saved['step']}, past num_steps={cfg.num_steps}: pass --set num_steps=N "
                f"with N > {saved['step']} to continue it"
            )
    built = policy if policy is not None else make_policy(cfg)
    params = [p for p in built.parameters() if p.requires_grad]
    if not params:
        raise SrpoError("the policy has no trainable parameters: unfreeze some (e.g. policy.freeze_vision=false "
                        "for a checkpoint whose only weights are its vision encoder)")
    optimizer = make_optimizer(params, cfg.algo)
    metrics_log = MetricsLog(run_dir, cfg.tensorboard)
    step = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        metrics_log.truncate_after(step)
        update_run_config(cfg, run_dir, step)
        log.info("resumed %s at step %d", run_dir, step)
    else:
        save_run_config(cfg, run_dir)
        # A fresh start (the folder holds no checkpoint): records left by an earlier attempt that was stopped
        # before its first checkpoint are not this run's, and would otherwise precede its own step 0.
        metrics_log.truncate_after(-1)
    # One line per start or resume: the commit and command behind this run's results.
    with open(run_dir / PROVENANCE_FILE, "a") as f:
        f.write(json.dumps({"step": step, **provenance()}) + "\n")
    return RunStart(built, optimizer, metrics_log, step, state)
