"""srpo.envs."""
