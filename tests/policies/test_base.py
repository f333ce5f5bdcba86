"""The TrainablePolicy contract: both policies are real nn.Modules implementing it, incompletely implemented
policies cannot be built, and checkpoints round-trip through the one `from_checkpoint` entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from policy_helpers import make_batch, tiny_config
from torch import nn

from srpo.config.policy import PolicyConfig
from srpo.policies.base import ActionSample, PolicyInput, TrainablePolicy, torch_dtype
from srpo.policies.compact import CompactVLA
from srpo.policies.openvla_oft import build_tiny_vla


def test_both_policies_are_modules_implementing_the_contract(tiny_policy: CompactVLA) -> None:
    oft = build_tiny_vla(hidden=32, num_layers=1)
    for policy in (tiny_policy, oft):
        assert isinstance(policy, TrainablePolicy) and isinstance(policy, nn.Module)
        # parameters, train/eval and requires_grad_ are the module's own, so they reach every weight.
        assert sum(p.numel() for p in policy.parameters()) > 0
        policy.train(True)
        assert policy.training  # (the compact VLA keeps its vision encoder's batch-norm in eval mode)
        policy.train(False)
        assert not any(m.training for m in policy.modules())
        policy.requires_grad_(False)
        assert not any(p.requires_grad for p in policy.parameters())
        policy.requires_grad_(True)
        # The action tokenizer is part of the contract (SFT and offline training encode actions with it).
        assert policy.tokenizer.num_bins == policy.num_bins and policy.tokenizer.action_dim == policy.action_dim
    assert tiny_policy.input_image_size == tiny_policy.config.image_size and oft.input_image_size is None
    oft.train(True)
    assert all(m.training for m in oft.model.modules())
    # The adapter's weights are its model's, under the "model." prefix of its one child.
    assert set(oft.state_dict()) == {f"model.{k}" for k in oft.model.state_dict()}


def test_a_policy_missing_part_of_the_contract_cannot_be_built() -> None:
    class SamplesOnly(TrainablePolicy):
        def sample(self, batch: PolicyInput, temperature: float, greedy: bool = False) -> ActionSample:
            raise NotImplementedError

        def token_log_probs(
            self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
            raise NotImplementedError

    with pytest.raises(TypeError, match="save_pretrained"):
        SamplesOnly()  # type: ignore[abstract]


def test_from_checkpoint_round_trips_the_compact_policy(tiny_policy: CompactVLA, tmp_path: Path) -> None:
    tiny_policy.save_pretrained(tmp_path / "p")
    loaded = CompactVLA.from_checkpoint(tmp_path / "p", PolicyConfig(kind="compact", device="cpu"))
    batch = make_batch()
    tokens = torch.as_tensor(tiny_policy.sample(batch, 1.0, greedy=True).tokens)
    want, _ = tiny_policy.token_log_probs(batch, tokens, 1.0)
    got, _ = loaded.token_log_probs(batch, tokens, 1.0)
    torch.testing.assert_close(got, want)


def test_load_state_dict_drops_cached_features_of_frozen_vision() -> None:
    policy = CompactVLA(tiny_config(freeze_vision=True))
    other = CompactVLA(tiny_config(freeze_vision=True, seed=1))
    batch = make_batch()
    tokens = torch.zeros((4, policy.num_action_tokens), dtype=torch.long)
    policy.token_log_probs(batch, tokens, 1.0)  # fills the feature cache with the old vision weights
    policy.load_state_dict(other.state_dict())
    got, _ = policy.token_log_probs(batch, tokens, 1.0)
    want, _ = other.token_log_probs(batch, tokens, 1.0)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_torch_dtype_names_the_valid_values() -> None:
    assert torch_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="'float32', 'bfloat16' or 'float16'"):
        torch_dtype("float64")
