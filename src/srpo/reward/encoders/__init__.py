"""srpo.reward.encoders."""
