"""srpo.reward."""
