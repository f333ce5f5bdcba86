"""The typed config tree. Each section lives in its own module; `srpo.config.train` holds the root."""

from srpo.config.base import ConfigError, require, require_choice
from srpo.config.reward import RewardConfig

__all__ = ["ConfigError", "RewardConfig", "require", "require_choice"]
