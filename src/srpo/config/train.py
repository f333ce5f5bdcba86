"""The root of the typed config tree for online SRPO training, its presets, YAML loading and CLI overrides.

    cfg = TrainConfig.preset("cpu")                          # the README's main job
    cfg = load_config("run.yaml", overrides=["algo.lr=1e-5", "env.libero.task_ids=[0,1]"])
    save_config(cfg, run_dir / "config.yaml")               # what the run used, reloadable
"""

from __future__ import annotations

import contextlib
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from srpo.config.base import ConfigError, require, require_choice
from srpo.config.distributed import DistributedConfig
from srpo.config.encoder import EncoderConfig
from srpo.config.env import TabletopConfig
from srpo.config.libero import LiberoConfig
from srpo.config.offline import OfflineConfig
from srpo.config.policy import PolicyConfig
from srpo.config.reference import ExternalReferenceConfig
from srpo.config.reward import RewardConfig
from srpo.config.robustness import RobustnessConfig
from srpo.config.rollout import RolloutConfig
from srpo.config.watchdog import WatchdogConfig
from srpo.types import Aggregation, KLEstimator, LRSchedule, StdKind

Algo = Literal["srpo", "grpo"]
EnvKind = Literal["tabletop", "libero"]
TrainPreset = Literal["cpu", "tabletop", "paper"]


@dataclass(frozen=True)
class EnvConfig:
    """Which simulator the run uses, and its settings."""

    kind: EnvKind = "tabletop"
    """"libero" (the benchmark; needs `pip install 'srpo[libero]'`) or "tabletop" (built-in, fast, for tests
    and quick learning-efficiency experiments)."""
    tabletop: TabletopConfig = field(default_factory=TabletopConfig)
    """Settings of the built-in env (used when kind = "tabletop")."""
    libero: LiberoConfig = field(default_factory=LiberoConfig)
    """Settings of LIBERO (used when kind = "libero")."""
    tabletop_num_eval_init_states: int = 10
    """Tabletop only: the last this many init states of every task are held out for evaluation (LIBERO has its
    own split in env.libero)."""

    def __post_init__(self) -> None:
        require_choice(self.kind, "env.kind", get_args(EnvKind))
        require(
            0 < self.tabletop_num_eval_init_states < self.tabletop.num_init_states,
            "env.tabletop_num_eval_init_states",
            self.tabletop_num_eval_init_states,
            f"an int in [1, env.tabletop.num_init_states - 1 = {self.tabletop.num_init_states - 1}]",
        )


@dataclass(frozen=True)
class AlgoConfig:
    """The policy-optimisation settings (official SRPO values in brackets)."""

    group_size: int = 8
    """Rollouts per (task, init state) prompt: the GRPO group [8]."""
    num_prompts_per_step: int = 64
    """Prompts (groups) kept per training step after dynamic sampling [64 → 512 trajectories]."""
    dynamic_sampling: bool = True
    """Keep only groups whose success rate lies in [filter_low, filter_high], refilling the batch with more
    rollouts until full or `max_sampling_rounds` is reached [on]."""
    filter_low: float = 0.1
    """Lowest group success rate kept by dynamic sampling [0.1]."""
    filter_high: float = 0.9
    """Highest group success rate kept by dynamic sampling [0.9]."""
    max_sampling_rounds: int = 3
    """Rollout rounds per step at most when refilling; the step trains on what it has after them (and logs how
    many groups it kept) rather than stalling when a policy succeeds on everything or nothing."""
    keep_referenced_failure_groups: bool = False
    """SRPO only: also keep an all-failure group that dynamic sampling drops when its task has a
    reference success (elsewhere in the batch or in the memory bank) and its shaped rewards spread by at least
    `failure_group_min_reward_std`; SRPO then ranks the failures of groups that binary GRPO cannot learn from.
    Such groups come from the rollouts dynamic sampling made anyway (they do not count towards
    `num_prompts_per_step`, so the refill is unchanged), join the reward phase, and are dropped after it unless
    they qualify. No effect under GRPO (binary rewards never spread in an all-failure group) [off: the official
    filter]."""
    failure_group_adv_weight: float = 1.0
    """SRPO only: factor on the advantages of every all-failure group that reaches the update (kept by a widened
    dynamic-sampling window or by `keep_referenced_failure_groups`). The group z-score gives such a group's shaped
    rewards unit-scale advantages however little they differ; 1 keeps them (SRPO as written), 0 gives those
    groups no policy-gradient signal, as binary GRPO has there, while groups holding a success keep their
    shaped advantages (srpo.algo.advantages.weight_failure_groups) [1.0]."""
    failure_group_min_reward_std: float = 0.05
    """Smallest std (estimator `adv_std`) of an all-failure group's shaped rewards for it to be kept by
    `keep_referenced_failure_groups`. The group z-score divides by std + `adv_eps`, so a near-zero spread would
    be blown up to unit-scale advantages that rank noise; 0.05 is about a tenth of the official failure-reward
    range (0.004 to 0.596)."""
    temperature: float = 1.6
    """Sampling temperature in rollout and in the training log-probs [1.6]; evaluation is greedy."""
    lr: float = 5e-6
    """AdamW base learning rate [5e-6]; `lr_schedule` scales it per step."""
    lr_schedule: LRSchedule = "constant"
    """"constant", "linear" or "cosine" decay of the learning rate over the run's `num_steps`, from `lr` at the
    first step after warm-up towards `lr` × `lr_min_ratio` at the last (srpo.algo.schedule.lr_factor). A pure
    function of the step, so a resumed run continues it; changing `num_steps` on resume changes the remaining
    rates [constant, as the paper and the official code]."""
    lr_warmup_steps: int = 0
    """Steps of linear warm-up from lr / W to lr before the schedule starts (W = this; 0 = none) [0]."""
    lr_min_ratio: float = 0.0
    """Fraction of `lr` the linear and cosine schedules decay towards [0]."""
    weight_decay: float = 0.0
    """AdamW weight decay [0]."""
    grad_clip: float = 1.0
    """Global gradient-norm clip [1.0]."""
    ppo_epochs: int = 1
    """Passes over the batch per step [1]."""
    num_minibatches: int = 16
    """Optimiser steps per epoch: the batch's chunks are split into this many mini-batches [16]."""
    clip_low: float = 0.2
    """PPO ε_low [0.2]."""
    clip_high: float = 0.28
    """PPO ε_high, clip-higher [0.28]."""
    dual_clip: float | None = None
    """Dual-clip constant c > 1, None for off [10000, effectively off]."""
    aggregation: Aggregation = "token-mean"
    """Loss aggregation over tokens: "token-mean" (an episode weighs its number of tokens, so time-limit failures
    outweigh successes), "seq-mean-token-mean" (per chunk, nearly the same), or "traj-mean-token-mean" (every
    episode weighs the same) ["token-mean"]."""
    kl_coef: float = 0.0
    """β of the KL term to the reference (initial) policy; 0 turns it off and skips the reference pass
    [the code: 0; the paper: KL regularisation]."""
    log_reference_kl: bool = False
    """With kl_coef = 0, still build the reference and log loss/kl (the KL of the trained policy to it, without its
    gradient), to see how far a KL-free run moves from its start; costs one reference pass per step. Always on
    with kl_coef > 0 [False]."""
    kl_estimator: KLEstimator = "k3"
    """KL estimator: "k1" or the low-variance "k3"."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus [0]."""
    adv_eps: float = 1e-6
    """ε in (r − mean) / (std + ε) [1e-6]."""
    adv_std: StdKind = "unbiased"
    """Group std estimator ["unbiased"]."""

    def __post_init__(self) -> None:
        require(self.group_size >= 2, "algo.group_size", self.group_size, "an int >= 2 (GRPO needs a group), e.g. 8")
        require(self.num_prompts_per_step >= 1, "algo.num_prompts_per_step", self.num_prompts_per_step,
                "an int >= 1, e.g. 64")
        require(0.0 <= self.filter_low <= self.filter_high <= 1.0, "algo.filter_low", self.filter_low,
                f"a value in [0, algo.filter_high={self.filter_high}], e.g. 0.1")
        require(self.max_sampling_rounds >= 1, "algo.max_sampling_rounds", self.max_sampling_rounds, "an int >= 1")
        require(0.0 <= self.failure_group_adv_weight <= 1.0, "algo.failure_group_adv_weight",
                self.failure_group_adv_weight, "a float in [0, 1] (1 = SRPO as written, 0 = none, as in GRPO)")
        if self.keep_referenced_failure_groups and self.failure_group_adv_weight == 0.0:
            require(False, "algo.keep_referenced_failure_groups", True,
                    "false when algo.failure_group_adv_weight=0 (it keeps all-failure groups only to train on "
                    "their shaped advantages, which a weight of 0 removes)")
        require(self.failure_group_min_reward_std >= 0, "algo.failure_group_min_reward_std",
                self.failure_group_min_reward_std, "a float >= 0, e.g. 0.05")
        require(self.temperature > 0, "algo.temperature", self.temperature, "a float > 0, e.g. 1.6")
        require(self.lr > 0, "algo.lr", self.lr, "a float > 0, e.g. 5e-6")
        require_choice(self.lr_schedule, "algo.lr_schedule", get_args(LRSchedule))
        require(self.lr_warmup_steps >= 0, "algo.lr_warmup_steps", self.lr_warmup_steps, "an int >= 0 (0 = off)")
        require(0.0 <= self.lr_min_ratio <= 1.0, "algo.lr_min_ratio", self.lr_min_ratio,
                "a float in [0, 1], e.g. 0.1")
        require(self.weight_decay >= 0, "algo.weight_decay", self.weight_decay, "a float >= 0")
        require(self.grad_clip > 0, "algo.grad_clip", self.grad_clip, "a float > 0, e.g. 1.0")
        require(self.ppo_epochs >= 1, "algo.ppo_epochs", self.ppo_epochs, "an int >= 1")
        require(self.num_minibatches >= 1, "algo.num_minibatches", self.num_minibatches, "an int >= 1, e.g. 16")
        require(0 <= self.clip_low < 1, "algo.clip_low", self.clip_low, "a float in [0, 1), e.g. 0.2")
        require(self.clip_high >= 0, "algo.clip_high", self.clip_high, "a float >= 0, e.g. 0.28")
        require(self.dual_clip is None or self.dual_clip > 1, "algo.dual_clip", self.dual_clip, "None or a float > 1")
        require_choice(self.aggregation, "algo.aggregation", get_args(Aggregation))
        require(self.kl_coef >= 0, "algo.kl_coef", self.kl_coef, "a float >= 0 (0 = off)")
        require_choice(self.kl_estimator, "algo.kl_estimator", get_args(KLEstimator))
        require(self.entropy_coef >= 0, "algo.entropy_coef", self.entropy_coef, "a float >= 0")
        require(self.adv_eps > 0, "algo.adv_eps", self.adv_eps, "a float > 0, e.g. 1e-6")
        require_choice(self.adv_std, "algo.adv_std", get_args(StdKind))

    @property
    def uses_reference(self) -> bool:
        """Whether a run builds the frozen reference policy: for the KL term, or only to log the KL to it."""
        return self.kl_coef > 0 or self.log_reference_kl


@dataclass(frozen=True)
class TrainConfig:
    """Everything an online SRPO run needs. `srpo train --preset cpu` is the README's main job."""

    algo_name: Algo = "srpo"
    """"srpo" (world-model progress reward) or "grpo" (binary outcome). Only the reward differs, so SRPO vs
    GRPO comparisons are this one flag."""
    seed: int = 0
    """Seed of torch, numpy and the prompt sampler."""
    run_dir: str = "runs/srpo"
    """Where config, metrics (JSONL + TensorBoard), checkpoints and videos go."""
    num_steps: int = 10
    """Training steps (rollout → reward → update)."""
    eval_every: int = 5
    """Evaluate on held-out init states every this many steps (0 = only before and after training)."""
    num_eval_episodes_per_task: int = 10
    """Greedy evaluation episodes per task (one per held-out init state, cycling)."""
    checkpoint_every: int = 1
    """Write a checkpoint every this many steps (and at the end)."""
    keep_last_checkpoints: int = 2
    """Checkpoints kept on disk; older ones are deleted after a newer one is complete."""
    keep_checkpoint_every: int = 0
    """Also keep the checkpoints of steps divisible by this (0 = none), for evaluating a run's history after it
    (`benchmarks/checkpoint_curve.py`); each costs the policy and the trainer state (~21 MB for the compact VLA)."""
    num_videos_per_step: int = 2
    """Rollout videos (mp4) saved per step, labelled with success and reward (0 = none)."""
    torch_num_threads: int = 0
    """Intra-op threads of torch in the driver (0 = torch's default). On a small CPU shared with env worker
    processes, 1 avoids spinning threads competing with the simulators."""
    torch_learner_threads: int = 0
    """Intra-op threads of torch in the driver during the embed, reward and update phases (0 = torch_num_threads).
    The env worker processes wait during those phases, so the cores they use while rolling out are free then: on
    a 2-core machine with env workers, 2 here and torch_num_threads=1 uses both cores for the encoder and the PPO
    update. Rollout and every evaluation keep torch_num_threads (a greedy evaluation must repeat the in-run one);
    the learner's log-probs then differ from the rollout's by float round-off (~1e-5, logged as
    `ppo/rollout_learner_logprob_gap`). A run's numbers depend on both counts, not on the machine's cores. Use
    it on a machine the run has to itself: with 2 threads on 2 cores, any other busy process stalls torch's
    parallel regions (a LIBERO step's update took 101 s beside a niced test run, 21-31 s alone)."""
    tensorboard: bool = True
    """Also write TensorBoard event files (needs the `logging` extra; skipped with a warning if absent)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    """Optional Ray backend: rollout actors and an encoder actor on a cluster (single machine by default)."""
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    """`srpo offline` only: the recorded dataset and the advantage weighting (num_steps counts optimiser steps
    there, algo.lr and algo.grad_clip apply, the env is used for evaluation alone)."""
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    """`srpo eval --benchmark libero-plus|libero-pro`: perturbed LIBERO tasks (unused by training)."""
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    """Time limits of the embed and update phases: a hang becomes an error naming the phase."""
    external_reference: ExternalReferenceConfig = field(default_factory=ExternalReferenceConfig)
    """With `reward.reference_source="external"`: the expert successes every failure is compared with."""

    def __post_init__(self) -> None:
        require_choice(self.algo_name, "algo_name", get_args(Algo))
        require(self.num_steps >= 1, "num_steps", self.num_steps, "an int >= 1")
        # numpy refuses negative seeds and torch ones of 2**64 and above; derived seeds add small offsets.
        require(0 <= self.seed < 2**63, "seed", self.seed, "an int in [0, 2**63), e.g. 0")
        require(self.eval_every >= 0, "eval_every", self.eval_every, "0 or a positive int")
        require(self.num_eval_episodes_per_task >= 0, "num_eval_episodes_per_task", self.num_eval_episodes_per_task,
                "an int >= 0")
        require(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, "an int >= 1")
        require(self.keep_last_checkpoints >= 1, "keep_last_checkpoints", self.keep_last_checkpoints, "an int >= 1")
        require(self.keep_checkpoint_every >= 0, "keep_checkpoint_every", self.keep_checkpoint_every,
                "0 (keep only the newest keep_last_checkpoints) or a step interval, e.g. 10")
        require(self.num_videos_per_step >= 0, "num_videos_per_step", self.num_videos_per_step, "an int >= 0")
        require(self.torch_num_threads >= 0, "torch_num_threads", self.torch_num_threads,
                "0 (torch's default) or a positive thread count, e.g. 1")
        require(self.torch_learner_threads >= 0, "torch_learner_threads", self.torch_learner_threads,
                "0 (the same as torch_num_threads) or a positive thread count, e.g. 2")
        require(self.algo.lr_warmup_steps <= self.num_steps, "algo.lr_warmup_steps", self.algo.lr_warmup_steps,
                f"an int <= num_steps={self.num_steps} (a longer warm-up never reaches algo.lr)")
        if self.policy.kind == "openvla_oft" and self.env.kind == "tabletop":
            raise ConfigError(
                "policy.kind='openvla_oft' with env.kind='tabletop' is invalid: the OpenVLA-OFT checkpoints are "
                "trained on LIBERO; set env.kind=libero or policy.kind=compact"
            )

    @classmethod
    def preset(cls, name: TrainPreset) -> TrainConfig:
        """Named starting points; override fields with `dataclasses.replace` or `--set a.b=value`."""
        if name == "tabletop":
            return tabletop_preset()
        if name == "cpu":
            return cpu_preset()
        if name == "paper":
            return paper_preset()
        raise ConfigError(f"preset={name!r} is invalid: choose one of 'cpu', 'tabletop', 'paper'")


def tabletop_preset() -> TrainConfig:
    """Fast built-in env, a small compact VLA with a conv image encoder: quick experiments.

    The reward's world model is EfficientNet-lite0 at its native 224² input on 8 frames per rollout: on the graded
    tabletop set its success curves rise (SC 0.93, README "Reward quality on graded failures"), where the pixel
    encoder's run backwards (SC −0.58) and lite0 at 64² or 128² input does not reach SC 0.8. It is the step's
    largest cost on CPU; `--set encoder.name=pixel` trades that reward for speed."""
    return TrainConfig(
        run_dir="runs/tabletop",
        num_steps=30,
        # One intra-op thread: a run's numbers then do not depend on the machine's core count.
        torch_num_threads=1,
        eval_every=5,
        num_eval_episodes_per_task=10,
        env=EnvConfig(kind="tabletop", tabletop=TabletopConfig(num_tasks=4)),
        rollout=RolloutConfig(num_workers=0, num_envs_per_worker=64),
        policy=PolicyConfig(vision_encoder="conv", text_encoder="hashed", image_size=64, d_model=64,
                            num_layers=2, ff_dim=128),
        encoder=EncoderConfig(name="efficientnet", num_frames=8, pixel_size=8, device="cpu", dtype="float32"),
        algo=AlgoConfig(group_size=8, num_prompts_per_step=8, temperature=1.0, lr=3e-4, num_minibatches=4,
                        filter_low=0.0, filter_high=1.0, max_sampling_rounds=1),
    )


def cpu_preset() -> TrainConfig:
    """The README's main job: two LIBERO-Spatial tasks, the compact VLA from its SFT checkpoint cloned on `lean`
    frames, the offline EfficientNet-lite0 encoder; 4 steps of 32 episodes, ~20 min on 2 cores.

    Chosen by measurement (benchmarks/cpu_recipe.py, recipe "b32_trajmean_s4"; docs/libero_runs.md "Choosing the cpu
    recipe"): the long runs' recipe, cut to the steps that fit the budget. Each step samples 4 prompts × groups of 8
    at T = 0.7 and takes 4 epochs × 4 mini-batches at lr 5e-5 (PPO's trust region: the earlier recipe's steps moved
    the policy by approx KL ~1e-4 with no clipping), every episode weighted the same in the loss
    (traj-mean-token-mean: under token-mean, failures that run to the time limit outweigh successes and push the
    sampled tokens down), near the SFT policy (KL 0.05), with a memory bank of earlier successes for a batch
    without one. The start was behaviour-cloned on the `lean` frames it is rolled out on. Evaluation uses 20
    held-out init states per task (40 episodes; training never sees states 30-49).
    """
    return TrainConfig(
        run_dir="runs/cpu",
        num_steps=4,
        torch_num_threads=1,
        eval_every=0,
        num_eval_episodes_per_task=20,
        num_videos_per_step=2,
        env=EnvConfig(
            kind="libero",
            libero=LiberoConfig(suite="libero_spatial", task_ids=(0, 1), image_size=128, embed_image_size=128,
                                num_train_init_states=30, num_eval_init_states=20, render_quality="lean"),
        ),
        # Timeouts well above the defaults: on a shared, oversubscribed 2-core machine building a LIBERO env took
        # over the default 300 s of wall time, and a worker killed for it rebuilt the env from scratch, in a loop.
        rollout=RolloutConfig(num_workers=2, num_envs_per_worker=4, step_timeout_s=120.0, reset_timeout_s=1800.0),
        policy=PolicyConfig(checkpoint="checkpoints/compact_libero_spatial_sft_lean/final", image_size=128),
        encoder=EncoderConfig(name="efficientnet", num_frames=16, dtype="float32", device="cpu"),
        reward=RewardConfig(memory_size=8),
        algo=AlgoConfig(group_size=8, num_prompts_per_step=4, temperature=0.7, lr=5e-5, kl_coef=0.05, ppo_epochs=4,
                        num_minibatches=4, aggregation="traj-mean-token-mean", filter_low=0.0, filter_high=1.0,
                        max_sampling_rounds=1),
    )


def paper_preset() -> TrainConfig:
    """The published setting for GPU users: OpenVLA-OFT from its one-demo SFT checkpoint, V-JEPA 2 ViT-g/384,
    n = 8, 64 prompts per step, temperature 1.6, lr 5e-6, clip 0.2/0.28, 512 steps per episode."""
    return TrainConfig(
        run_dir="runs/paper",
        num_steps=200,
        eval_every=10,
        num_eval_episodes_per_task=50,
        env=EnvConfig(kind="libero", libero=LiberoConfig(suite="libero_spatial", horizon="official")),
        rollout=RolloutConfig(num_workers=16, num_envs_per_worker=4, embed_stride=1),
        policy=PolicyConfig(kind="openvla_oft", checkpoint="checkpoints/openvla-oft-libero-spatial-1shot",
                            device="cuda", dtype="bfloat16", image_size=224),
        encoder=EncoderConfig(name="vjepa2", weights="weights/vjepa2-vitg-fpc64-384", num_frames=64,
                              device="cuda", dtype="float16"),
        reward=RewardConfig.preset("official"),
        algo=AlgoConfig(),
    )


# ---------------------------------------------------------------------------------------------------------------
# YAML and command-line overrides.


def config_to_dict(cfg: Any) -> Any:
    """A plain nested dict (tuples as lists) of a config dataclass, for YAML/JSON."""
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [config_to_dict(v) for v in cfg]
    return cfg


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or raise ConfigError naming the field."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(value, non_none[0], name)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{name}={value!r} is invalid: " + "; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}={value!r} is invalid: choose one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}={value!r} is invalid: set it to a list, e.g. [0, 1]")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, name) for v in value)
    if is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping of its fields, got {value!r}")
        return _from_dict(annotation, value, name)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}={value!r} is invalid: set it to true or false")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}={value!r} is invalid: set it to an integer")
        return value
    if annotation is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-5" (no dot) as a string; accept it as the number the user meant.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}={value!r} is invalid: set it to a number")
        if not math.isfinite(value):  # NaN or inf passes most range checks; no field means it
            raise ConfigError(f"{name}={float(value)} is invalid: set it to a finite number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} is invalid: set it to a string")
        return value
    return value


def _from_dict(cls: Any, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = prefix or "the config root"
        raise ConfigError(
            f"unknown field(s) {', '.join(unknown)} in {where}; valid fields: {', '.join(sorted(known))}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[: i + 1])} is not a config section")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(
            f"--set {dotted}: unknown field {parts[-1]!r}; valid fields here: {', '.join(sorted(node))}"
        )
    node[parts[-1]] = value


def _yaml_problem(err: yaml.YAMLError) -> str:
    """The parser's complaint and where, on one line: "expected ',' or ']' (line 2, column 8)"."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else str(problem)


def _read_yaml(path: Path) -> Any:
    """The parsed content of a YAML config file; every way the file can be wrong is a ConfigError."""
    if path.is_dir():
        raise ConfigError(f"--config {path} is a directory, not a YAML file")
    if not path.exists():
        raise ConfigError(f"--config {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ConfigError(f"--config {path} is not a text YAML file (undecodable bytes at offset {err.start})") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(err)}") from err


def load_config(
    path: str | Path | None = None, preset: TrainPreset | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Build a validated TrainConfig: the named preset, or the fields' defaults when none is named (the
    built-in tabletop env, a fresh compact VLA, the official SRPO and PPO values) ← YAML file ←
    `key.path=value` overrides.

    Override values are parsed as YAML scalars/lists (`algo.lr=1e-5`, `env.libero.task_ids=[0,1]`,
    `algo.dual_clip=null`).
    """
    base = TrainConfig.preset(preset) if preset is not None else TrainConfig()
    tree = config_to_dict(base)
    if path is not None:
        loaded = _read_yaml(Path(path)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of config fields at the top level")
        tree = _merge(tree, loaded)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: write it as key.path=value, e.g. algo.lr=1e-5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({_yaml_problem(err)}); quote strings "
                              "and close brackets, e.g. env.libero.task_ids=[0,1]") from err
        _set_dotted(tree, key.strip(), value)
    cfg = _from_dict(TrainConfig, tree)
    assert isinstance(cfg, TrainConfig)
    return cfg


__all__ = [
    "AlgoConfig",
    "EnvConfig",
    "TrainConfig",
    "config_to_dict",
    "load_config",
    "save_config",
]
