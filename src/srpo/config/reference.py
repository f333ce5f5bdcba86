"""Configuration of the external reference set: expert trajectories embedded once, the paper's ablation of the
self-referential (batch) reference. Used when `reward.reference_source == "external"`."""

from __future__ import annotations

from dataclasses import dataclass

from srpo.config.base import require


@dataclass(frozen=True)
class ExternalReferenceConfig:
    """Where the fixed per-task expert successes come from, when `reward.reference_source="external"`.

    By default srpo records them with the env's scripted expert (tabletop: `tabletop_expert_action`; LIBERO:
    the privileged pick-and-place controller) from *training* initial states only, embeds them once with the
    run's world-model encoder and keeps the (M, D) embeddings per task in RUN_DIR/external_reference.npz, which a
    resumed run reads back. `demos` replaces the recording by the successes of LIBERO / robomimic HDF5 files.
    """

    episodes_per_task: int = 8
    """Expert successes per task (recording stops at this many successes; failed expert runs are skipped)."""
    expert_noise: float = 0.1
    """Std of the translation noise added to the expert's actions (varied references, as real demos are)."""
    seed: int = 0
    """Seeds the initial states drawn for the expert and its noise."""
    demos: str | None = None
    """An .hdf5 demo file or a folder of them (one task per file, LIBERO layout, task id from the file's
    `srpo_task_id` or its position): their successful demos' `image_key` frames are the reference."""
    image_key: str = "agentview_rgb"
    """`demos`: obs dataset holding the frames."""

    def __post_init__(self) -> None:
        require(self.episodes_per_task >= 1, "external_reference.episodes_per_task", self.episodes_per_task,
                "an int >= 1, e.g. 8")
        require(self.expert_noise >= 0.0, "external_reference.expert_noise", self.expert_noise,
                "a float >= 0, e.g. 0.1")
