"""srpo.policies."""
