"""Fixtures for the policy tests: small real policies (tiny configs of the real classes, no mocks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from policy_helpers import tiny_config

from srpo.policies.compact import CompactVLA


@pytest.fixture
def tiny_policy() -> CompactVLA:
    torch.manual_seed(0)
    return CompactVLA(tiny_config())


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    # These models are tiny: on a shared 2-core machine a second intra-op thread only adds contention
    # (a 150-step SFT run took 86 s with 2 threads under load and 11 s with 1).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
