"""Building the parts of a run from its config: the env factory, the policy (fresh or from a checkpoint), the
frozen KL reference, the world-model encoder and the rollout engine (local processes or Ray).

Each choice is a `Literal` field dispatched here with `if/elif/else raise`; heavy and optional dependencies
(LIBERO, transformers, Ray) are imported inside the branch that needs them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from srpo.config.train import TrainConfig
from srpo.envs.base import EnvFactory
from srpo.errors import InputFileError
from srpo.policies.base import TrainablePolicy
from srpo.reward.encoders import make_encoder
from srpo.reward.encoders.base import VideoEncoder
from srpo.rollout import RolloutEngine
from srpo.run_dir import REFERENCE_DIR


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
