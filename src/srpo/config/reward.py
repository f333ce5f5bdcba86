"""Configuration of the self-referential progress reward (docs/reward.md has the formulas)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

from srpo.config.base import ConfigError, require, require_choice

RewardPreset = Literal["official", "paper"]
ReferenceScope = Literal["task", "group"]
ReferenceSource = Literal["batch", "external"]
CentreMethod = Literal["dbscan", "nearest", "mean"]
DistanceKind = Literal["euclidean", "squared"]
Normalization = Literal["minmax", "zscore"]


@dataclass(frozen=True)
class RewardConfig:
    """How a failed trajectory's progress reward is computed from world-model embeddings.

    Failure reward = alpha · scale · sigmoid(steepness · (offset − d_norm)) + (1 − alpha) · 0, where d_norm is
    the failure's distance to the nearest success centre, normalised over the failures of its reference set.
    Success reward = `success_reward`. The default is the `official` preset (the form that produced the
    published LIBERO runs); `paper` is the form written in the paper.
    """

    reference_scope: ReferenceScope = "task"
    """Which successes a failure is compared with: all successes of the same task in the batch (official) or
    only those of its own GRPO group."""
    reference_source: ReferenceSource = "batch"
    """"batch": the current batch's own successes (self-referential, SRPO). "external": a fixed set of expert
    embeddings per task passed by the caller (the paper's ablation)."""
    memory_size: int = 0
    """Successes per task kept in a memory bank of earlier batches, used only for a task with no success in the
    current batch (the paper's cold-start limitation). 0 turns the bank off (official behaviour)."""
    centres: CentreMethod = "dbscan"
    """"dbscan": StandardScaler + DBSCAN over the successes, centre = mean of each cluster's raw members.
    "nearest": every success is a centre (nearest-success ablation). "mean": one centre, the mean success."""
    dbscan_eps: float = 0.5
    """DBSCAN neighbourhood radius in standardised units (official: 0.5)."""
    dbscan_min_samples: int = 2
    """DBSCAN core-point size (official: 2)."""
    distance: DistanceKind = "euclidean"
    """Distance to the nearest centre: "euclidean" (official) or "squared" (the paper's ||h − c||²)."""
    normalization: Normalization = "minmax"
    """Normalisation of distances over the reference set's failures: "minmax" (official) or "zscore" (paper)."""
    degenerate_spread: float = 1e-6
    """Below this spread (max − min, or std) all failures get the neutral normalised distance (minmax: 0.5,
    zscore: 0)."""
    sigmoid_steepness: float = 10.0
    """k in scale · sigmoid(k · (offset − d_norm)); official 10, paper 1."""
    sigmoid_offset: float = 0.5
    """offset in the sigmoid; official 0.5 (middle of [0, 1]), paper 0 (mean of the z-scores)."""
    sigmoid_scale: float = 0.6
    """Upper bound of a failure's progress value; official 0.6 keeps every failure below a success."""
    whiten: bool = False
    """Standardise every embedding dimension with the mean and std of the reference set's successes (each std
    floored at the median std over dimensions, so near-constant dimensions are not blown up) before clustering
    and distances; the scale then follows how the successes vary, not the encoder's raw units. Off in both
    presets (the official code has no such step)."""
    alpha: float = 1.0
    """Weight of the progress value against the binary outcome (0) for failures; the paper's best is 0.8,
    the official code has none (1.0). alpha = 0 gives plain binary rewards."""
    success_reward: float = 1.0
    """Reward of a successful trajectory."""
    no_reference_reward: float = 0.0
    """Reward of a failure whose task has no reference success anywhere (batch, memory or external)."""

    def __post_init__(self) -> None:
        require_choice(self.reference_scope, "reward.reference_scope", get_args(ReferenceScope))
        require_choice(self.reference_source, "reward.reference_source", get_args(ReferenceSource))
        require_choice(self.centres, "reward.centres", get_args(CentreMethod))
        require_choice(self.distance, "reward.distance", get_args(DistanceKind))
        require_choice(self.normalization, "reward.normalization", get_args(Normalization))
        require(self.memory_size >= 0, "reward.memory_size", self.memory_size, "0 (off) or a positive count")
        require(self.dbscan_eps > 0, "reward.dbscan_eps", self.dbscan_eps, "a float > 0, e.g. 0.5")
        require(self.dbscan_min_samples >= 1, "reward.dbscan_min_samples", self.dbscan_min_samples,
                "an int >= 1, e.g. 2")
        require(self.degenerate_spread >= 0, "reward.degenerate_spread", self.degenerate_spread,
                "a float >= 0, e.g. 1e-6")
        require(self.sigmoid_steepness > 0, "reward.sigmoid_steepness", self.sigmoid_steepness,
                "a float > 0 (official 10, paper 1)")
        require(0 < self.sigmoid_scale <= self.success_reward, "reward.sigmoid_scale", self.sigmoid_scale,
                f"a float in (0, success_reward={self.success_reward}] so that no failure outscores a success")
        require(0.0 <= self.alpha <= 1.0, "reward.alpha", self.alpha, "a float in [0, 1] (paper best: 0.8)")
        require(self.no_reference_reward <= self.success_reward, "reward.no_reference_reward",
                self.no_reference_reward, "a value <= success_reward, e.g. 0.0")
        if self.reference_source == "external" and self.memory_size > 0:
            require(False, "reward.memory_size", self.memory_size,
                    "0 when reward.reference_source='external' (the external set never runs empty)")

    @classmethod
    def preset(cls, name: RewardPreset, **overrides: object) -> RewardConfig:
        """The `official` or `paper` form, optionally with fields overridden."""
        if name == "official":
            base = cls()
        elif name == "paper":
            base = cls(
                distance="squared",
                normalization="zscore",
                sigmoid_steepness=1.0,
                sigmoid_offset=0.0,
                sigmoid_scale=1.0,
                alpha=0.8,
            )
        else:
            raise ConfigError(f"reward preset {name!r} is invalid: choose one of 'official', 'paper'")
        return replace(base, **overrides)  # type: ignore[arg-type]
