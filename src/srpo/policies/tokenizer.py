"""Discretise continuous 7-D robot actions into 256 bins per dimension, and back (the OpenVLA scheme).

Encoding, per action dimension d (except the gripper):
    x = clip(2 · (a − q01) / (q99 − q01) − 1, −1, 1)        (1st/99th percentiles of the demonstrations)
    bin = clip(digitize(x, edges) − 1, 0, num_bins − 1)    with edges = linspace(−1, 1, num_bins)
Decoding:
    x̂ = centre[min(bin, num_bins − 2)]                      (num_bins − 1 = 255 bin centres)
    â = 0.5 · (x̂ + 1) · (q99 − q01) + q01                  (srpo_reference.md §3)

This is exactly OpenVLA's `ActionTokenizer`: 256 edges make 255 intervals, so bin 255 only holds x = +1.0
and decodes to the last centre. Keeping the same layout means a bin index means the same thing for the compact
model and for a real OpenVLA-OFT checkpoint.

Out-of-range actions are clipped to [q01, q99] (that is what the percentile normalisation is for: the extreme
1 % of demonstration actions saturate the first/last bin); a NaN or infinite action raises ValueError because
no bin can represent it and silently mapping it to a bin would train on garbage.

Gripper (dimension `GRIPPER_DIM`): never percentile-normalised (OpenVLA's stats mask it out too), binarised
before encoding (so a demonstration's gripper is always one of two bins) and again on decode (a sampled bin
anywhere in between still yields a valid open/close command). Two conventions:
    "env":     the token value is the env command itself in [−1, 1]: −1 open, +1 close (LIBERO / robosuite).
               Used by the compact model trained on our own demos, which are recorded in env convention.
    "openvla": the token value is OpenVLA's training-data gripper in [0, 1] with 1 = open, 0 = close (the
               RLDS LIBERO datasets flipped the sign). Decode maps it to [−1, 1] with 2g − 1, binarises with
               sign, and inverts (× −1) so the env receives −1 open / +1 close, as the reference requires.
Binarisation puts an exact 0 on the "open" side (−1): an undecided gripper should not grasp.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from srpo.types import ACTION_DIM, DEFAULT_NUM_BINS, GRIPPER_DIM, Demo

GripperConvention = Literal["env", "openvla"]
TOKENIZER_FILE = "action_tokenizer.json"
# Guards q99 == q01 (a dimension the demonstrations never move).
_NORM_EPS = 1e-8


@dataclass
class ActionTokenizer:
    """Per-dimension percentile normalisation + uniform binning of actions.

    Attributes:
        q01: (action_dim,) 1st percentile of each action dimension over the demonstrations.
        q99: (action_dim,) 99th percentile of each action dimension.
        num_bins: Number of bins per dimension (256 for OpenVLA).
        gripper_dim: Index of the gripper dimension (binarised, not normalised); None for no gripper.
        gripper_convention: "env" or "openvla" (see the module docstring).
    """

    q01: np.ndarray
    q99: np.ndarray
    num_bins: int = DEFAULT_NUM_BINS
    gripper_dim: int | None = GRIPPER_DIM
    gripper_convention: GripperConvention = "env"

    def __post_init__(self) -> None:
        self.q01 = np.asarray(self.q01, dtype=np.float64).reshape(-1)
        self.q99 = np.asarray(self.q99, dtype=np.float64).reshape(-1)
        if self.q01.shape != self.q99.shape:
            raise ValueError(f"q01 {self.q01.shape} and q99 {self.q99.shape} must have the same shape")
        if not (np.all(np.isfinite(self.q01)) and np.all(np.isfinite(self.q99))):
            raise ValueError("tokenizer stats q01/q99 must be finite")
        if np.any(self.q99 < self.q01):
            raise ValueError(f"q99 must be >= q01 in every dimension, got q01={self.q01}, q99={self.q99}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins={self.num_bins} is invalid: use at least 2 (OpenVLA: 256)")
        if self.gripper_dim is not None and not 0 <= self.gripper_dim < self.action_dim:
            raise ValueError(f"gripper_dim={self.gripper_dim} outside 0..{self.action_dim - 1}")
        if self.gripper_convention not in ("env", "openvla"):
            raise ValueError(f"gripper_convention={self.gripper_convention!r}: choose 'env' or 'openvla'")
        self.edges = np.linspace(-1.0, 1.0, self.num_bins)
        self.centres = (self.edges[:-1] + self.edges[1:]) / 2.0

    @property
    def action_dim(self) -> int:
        return int(self.q01.shape[0])

    @property
    def _norm_mask(self) -> np.ndarray:
        """(action_dim,) True for dimensions that are percentile-normalised (all but the gripper)."""
        mask = np.ones(self.action_dim, dtype=bool)
        if self.gripper_dim is not None:
            mask[self.gripper_dim] = False
        return mask

    @classmethod
    def fit(
        cls,
        data: Sequence[Demo] | np.ndarray,
        num_bins: int = DEFAULT_NUM_BINS,
        gripper_dim: int | None = GRIPPER_DIM,
    ) -> ActionTokenizer:
        """Fit the 1st/99th percentile stats on demonstration actions (env gripper convention).

        Args:
            data: Demonstrations, or an (N, action_dim) array of actions.
            num_bins: Bins per dimension.
            gripper_dim: Gripper dimension (None: no gripper).
        """
        if isinstance(data, np.ndarray):
            actions = data
        else:
            if len(data) == 0:
                raise ValueError("cannot fit action stats on zero demonstrations")
            actions = np.concatenate([d.actions for d in data], axis=0)
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"expected (N, action_dim) actions with N > 0, got shape {actions.shape}")
        _check_finite(actions)
        return cls(
            q01=np.quantile(actions, 0.01, axis=0),
            q99=np.quantile(actions, 0.99, axis=0),
            num_bins=num_bins,
            gripper_dim=gripper_dim,
        )

    @classmethod
    def identity(cls, action_dim: int = ACTION_DIM, num_bins: int = DEFAULT_NUM_BINS) -> ActionTokenizer:
        """Stats that leave [−1, 1] actions unchanged (q01 = −1, q99 = 1): for an unfitted model. The gripper is
        dimension GRIPPER_DIM as in LIBERO's 7-D actions; an action of GRIPPER_DIM dimensions or fewer has none."""
        return cls(q01=-np.ones(action_dim), q99=np.ones(action_dim), num_bins=num_bins,
                   gripper_dim=GRIPPER_DIM if action_dim > GRIPPER_DIM else None)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Map env actions (..., action_dim) to the token space [−1, 1], clipping out-of-range values."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape[-1] != self.action_dim:
            raise ValueError(f"actions have {actions.shape[-1]} dimensions, tokenizer has {self.action_dim}")
        _check_finite(actions)
        span = np.maximum(self.q99 - self.q01, _NORM_EPS)
        x = 2.0 * (actions - self.q01) / span - 1.0
        x = np.where(self._norm_mask, x, actions)
        if self.gripper_dim is not None:
            g = _binarize(actions[..., self.gripper_dim])
            # env −1 open / +1 close → OpenVLA data 1 open / 0 close.
            x[..., self.gripper_dim] = (1.0 - g) / 2.0 if self.gripper_convention == "openvla" else g
        return np.clip(x, -1.0, 1.0)

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        """Map token-space values (..., action_dim) in [−1, 1] back to env actions; binarises the gripper."""
        x = np.asarray(x, dtype=np.float64)
        a = 0.5 * (x + 1.0) * (self.q99 - self.q01) + self.q01
        a = np.where(self._norm_mask, a, x)
        if self.gripper_dim is not None:
            g = x[..., self.gripper_dim]
            # "openvla": [0, 1] (1 open) → [−1, 1] → binarise → invert, so the env gets −1 open / +1 close.
            openvla = self.gripper_convention == "openvla"
            a[..., self.gripper_dim] = -_binarize(2.0 * g - 1.0) if openvla else _binarize(g)
        return a

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(..., action_dim) float actions → (..., action_dim) int64 bins in [0, num_bins)."""
        x = self.normalize(actions)
        bins = np.digitize(x, self.edges) - 1
        return np.clip(bins, 0, self.num_bins - 1).astype(np.int64)

    def decode(self, bins: np.ndarray) -> np.ndarray:
        """(..., action_dim) int bins → (..., action_dim) float32 env actions (bin centre, un-normalised)."""
        bins = np.asarray(bins)
        if bins.shape[-1] != self.action_dim:
            raise ValueError(f"bins have {bins.shape[-1]} dimensions, tokenizer has {self.action_dim}")
        if bins.size and (bins.min() < 0 or bins.max() >= self.num_bins):
            raise ValueError(f"bins must lie in [0, {self.num_bins}), got [{bins.min()}, {bins.max()}]")
        x = self.centres[np.clip(bins, 0, self.num_bins - 2)]
        return self.unnormalize(x).astype(np.float32)

    def encode_chunk(self, actions: np.ndarray) -> np.ndarray:
        """(..., chunk, action_dim) actions → (..., chunk · action_dim) step-major tokens."""
        bins = self.encode(actions)
        return bins.reshape(*bins.shape[:-2], -1)

    def decode_tokens(self, tokens: np.ndarray, chunk_size: int) -> np.ndarray:
        """(..., chunk · action_dim) step-major tokens → (..., chunk, action_dim) float32 actions."""
        tokens = np.asarray(tokens)
        if tokens.shape[-1] != chunk_size * self.action_dim:
            raise ValueError(
                f"expected {chunk_size} × {self.action_dim} = {chunk_size * self.action_dim} tokens, "
                f"got {tokens.shape[-1]}"
            )
        return self.decode(tokens.reshape(*tokens.shape[:-1], chunk_size, self.action_dim))

    def to_dict(self) -> dict[str, object]:
        return {
            "q01": self.q01.tolist(),
            "q99": self.q99.tolist(),
            "num_bins": self.num_bins,
            "gripper_dim": self.gripper_dim,
            "gripper_convention": self.gripper_convention,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ActionTokenizer:
        return cls(
            q01=np.asarray(d["q01"], dtype=np.float64),
            q99=np.asarray(d["q99"], dtype=np.float64),
            num_bins=int(d["num_bins"]),  # type: ignore[call-overload]
            gripper_dim=None if d.get("gripper_dim") is None else int(d["gripper_dim"]),  # type: ignore[call-overload]
            gripper_convention=str(d.get("gripper_convention", "env")),  # type: ignore[arg-type]
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ActionTokenizer:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _binarize(g: np.ndarray) -> np.ndarray:
    """+1 where g > 0, −1 elsewhere (an exact 0 counts as open)."""
    return np.where(g > 0, 1.0, -1.0)


def _check_finite(actions: np.ndarray) -> None:
    if not np.all(np.isfinite(actions)):
        bad = np.argwhere(~np.isfinite(actions))
        raise ValueError(
            f"actions contain NaN/inf at {len(bad)} positions (first index {bad[0].tolist()}); "
            "fix the demonstration or controller that produced them, they cannot be tokenised"
        )
