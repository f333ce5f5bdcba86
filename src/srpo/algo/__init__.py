"""srpo.algo."""
