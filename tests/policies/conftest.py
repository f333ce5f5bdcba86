"""Fixtures for the policy tests: small real policies (tiny configs of the real classes, no mocks)."""

from __future__ import annotations

import pytest
import torch
from policy_helpers import tiny_config

from srpo.policies.compact import CompactVLA


@pytest.fixture
def tiny_policy() -> CompactVLA:
    torch.manual_seed(0)
    return CompactVLA(tiny_config())
