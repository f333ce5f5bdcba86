"""The world-model encoder as a Ray actor (on a GPU node when configured), or colocated in the driver.

`RayEncoder` implements `srpo.reward.encoders.base.VideoEncoder`, so the trainer's embed phase does not change:
`encoder.encode([t.frames for t in trajs])`. With placement "actor" the encoder's weights load once in the actor
and each step ships only the videos; with "driver" it is the plain `make_encoder(config)` in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from srpo.config.distributed import DistributedConfig
from srpo.config.encoder import EncoderConfig
from srpo.distributed.cluster import ActorDemand, check_cluster_resources, ensure_ray, wait_ready


class _EncoderActor:
    """Holds one encoder built by `make_encoder`; returns its embeddings as numpy."""

    def __init__(self, config: EncoderConfig) -> None:
        from srpo.reward.encoders import make_encoder

        self.encoder = make_encoder(config)

    def dim(self) -> int:
        return int(self.encoder.dim)

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.encoder.encode(videos), dtype=np.float32)


class RayEncoder:
    """`make_encoder(config)` run in a Ray actor (or in the driver), exposing `encode(videos)` and `dim`.

    Args:
        config: The encoder to build. With `distributed.encoder_num_gpus` > 0 and device "auto", the actor's
            GPU (which Ray exposes to it as cuda:0) is used.
        distributed: encoder_placement ("actor" or "driver"), encoder_num_gpus, encoder_num_cpus.

    Raises:
        ClusterResourceError: No node has the GPU / CPUs the encoder actor asks for.
    """

    def __init__(self, config: EncoderConfig, distributed: DistributedConfig) -> None:
        self._local: Any = None
        self._actor: Any = None
        if distributed.encoder_placement == "driver":
            from srpo.reward.encoders import make_encoder

            self._local = make_encoder(config)
            self.dim = int(self._local.dim)
            return
        elif distributed.encoder_placement != "actor":
            raise ValueError(f"unknown distributed.encoder_placement {distributed.encoder_placement!r}: "
                             "choose 'actor' or 'driver'")
        ray = ensure_ray(distributed)
        self._ray = ray
        resources = {"CPU": distributed.encoder_num_cpus, "GPU": distributed.encoder_num_gpus}
        check_cluster_resources([ActorDemand("encoder actors", 1, resources,
                                             "distributed.encoder_num_gpus or distributed.encoder_num_cpus")], ray)
        self._actor = ray.remote(_EncoderActor).options(
            num_cpus=distributed.encoder_num_cpus, num_gpus=distributed.encoder_num_gpus, max_restarts=1
        ).remote(config)
        try:
            (self.dim,) = wait_ready([self._actor.dim.remote()], distributed.actor_start_timeout_s,
                                     "the encoder actor", ray)
        except BaseException:
            self.close()
            raise

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """Embed each (T, H, W, 3) uint8 video into a (len(videos), dim) float32 array."""
        if self._local is not None:
            return np.asarray(self._local.encode(videos), dtype=np.float32)
        return np.asarray(self._ray.get(self._actor.encode.remote(list(videos))), dtype=np.float32)

    def close(self) -> None:
        """End the actor (no-op when colocated)."""
        if self._actor is not None:
            with contextlib.suppress(Exception):  # already dead
                self._ray.kill(self._actor, no_restart=True)
            self._actor = None
