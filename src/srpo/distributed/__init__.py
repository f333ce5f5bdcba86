"""Scale-out on Ray: rollout actors, an encoder actor and a torch.distributed learner group.

Ray is an optional dependency (`pip install 'srpo[distributed]'`): nothing in this package imports it at module
level, so `import srpo` and the single-machine path work without it. Import the parts from their modules:

    from srpo.distributed.ray_rollout import RayRolloutEngine
    from srpo.distributed.encoder import RayEncoder
    from srpo.distributed.learner import RayLearnerGroup
"""
