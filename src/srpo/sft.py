"""Behaviour cloning (SFT): cross-entropy over action tokens from N demonstrations per task.

N = 1 is the paper's one-shot setting (OpenVLA*-One, LIBERO avg 48.9 %), the start point of online SRPO.

Every demo step t becomes one sample: the image and state seen before action t, the instruction, and the
chunk of actions t .. t + chunk_size − 1 as chunk_size × action_dim tokens (step-major). The last chunks of a
demo run past its end; they are padded by repeating the final action, i.e. the policy learns to hold still
once the task is done, rather than those samples being dropped (which would leave the end of every demo
under-trained with one demonstration per task).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srpo.config.sft import SFTConfig, SFTRunConfig
from srpo.errors import InputFileError
from srpo.policies.base import PolicyInput
from srpo.policies.compact import CompactVLA
from srpo.policies.tokenizer import ActionTokenizer
from srpo.types import Demo


@dataclass
class SFTDataset:
    """All (observation, action-chunk) samples of the selected demonstrations.

    Attributes:
        images: (N, H, W, 3) uint8.
        states: (N, S) float32.
        instructions: N strings.
        tokens: (N, chunk_size · action_dim) int64 target bins, step-major.
        task_keys: N (suite, task_id) pairs, for per-task metrics.
    """

    images: np.ndarray
    states: np.ndarray
    instructions: list[str]
    tokens: np.ndarray
    task_keys: list[tuple[str, int]]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def batch(self, idx: np.ndarray) -> tuple[PolicyInput, torch.Tensor]:
        inputs = PolicyInput(self.images[idx], self.states[idx], [self.instructions[i] for i in idx])
        return inputs, torch.from_numpy(self.tokens[idx])


@dataclass
class SFTResult:
    """What `train_sft` returns.

    Attributes:
        policy: The trained policy (the same object that was passed in).
        metrics: Final scalar metrics (`loss/sft`, `sft/token_accuracy`, `time/sft_s`, ...).
        history: Per logged step: step, loss and token accuracy.
        checkpoint: Directory of the final checkpoint, if one was written.
    """

    policy: CompactVLA
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None


def select_demos(demos: Sequence[Demo], num_per_task: int, only_successful: bool = True) -> list[Demo]:
    """The first `num_per_task` (successful) demos of every (suite, task_id), in input order.

    Raises:
        ValueError: A task has fewer usable demos than requested (names the task and the counts).
    """
    by_task: dict[tuple[str, int], list[Demo]] = defaultdict(list)
    skipped: dict[tuple[str, int], int] = defaultdict(int)
    for d in demos:
        key = (d.suite, d.task_id)
        if only_successful and not d.success:
            skipped[key] += 1
            by_task.setdefault(key, [])
            continue
        by_task[key].append(d)
    if not by_task:
        raise InputFileError("no demonstrations given")
    chosen: list[Demo] = []
    for key, items in by_task.items():
        if len(items) < num_per_task:
            raise InputFileError(
                f"task {key} has {len(items)} usable demos ({skipped[key]} unsuccessful skipped) but "
                f"sft.num_demos_per_task={num_per_task}: record more demos or lower sft.num_demos_per_task"
            )
        chosen.extend(items[:num_per_task])
    return chosen


def action_chunks(actions: np.ndarray, chunk_size: int) -> np.ndarray:
    """(T, A) demo actions → (T, chunk_size, A): chunk t = actions[t : t + chunk_size], padded by repeating
    the final action past the end of the demo."""
    t = actions.shape[0]
    idx = np.minimum(np.arange(t)[:, None] + np.arange(chunk_size)[None, :], t - 1)
    return actions[idx]


def build_dataset(demos: Sequence[Demo], tokenizer: ActionTokenizer, chunk_size: int) -> SFTDataset:
    """Turn demos into per-step samples with tokenised action chunks."""
    images, states, instructions, tokens, keys = [], [], [], [], []
    for d in demos:
        if d.actions.shape[0] == 0:
            continue
        images.append(d.images)
        states.append(np.asarray(d.states, dtype=np.float32))
        instructions += [d.instruction] * d.actions.shape[0]
        tokens.append(tokenizer.encode_chunk(action_chunks(d.actions, chunk_size)))
        keys += [(d.suite, d.task_id)] * d.actions.shape[0]
    if not tokens:
        raise InputFileError("the selected demonstrations hold no steps")
    return SFTDataset(np.concatenate(images), np.concatenate(states), instructions, np.concatenate(tokens), keys)


def augment_images(
    pixels: torch.Tensor, crop_scale: float, jitter: float, generator: torch.Generator
) -> torch.Tensor:
    """Random resized crop + colour jitter, per image, in torch (no torchvision).

    Args:
        pixels: (B, 3, S, S) float in [0, 1].
        crop_scale: Minimum kept area fraction of the square crop (resized back to S).
        jitter: Maximum relative change of brightness, contrast and saturation.
        generator: CPU generator for the random parameters.

    Returns:
        (B, 3, S, S) float in [0, 1].
    """
    b = pixels.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(b, generator=generator)).to(pixels.device, pixels.dtype)

    if crop_scale < 1.0:
        side = uniform(crop_scale, 1.0).sqrt()  # crop side as a fraction of the image side
        # Affine grid: scale by `side`, shift the crop centre anywhere that keeps it inside the image.
        shift_x = (uniform(-1.0, 1.0)) * (1.0 - side)
        shift_y = (uniform(-1.0, 1.0)) * (1.0 - side)
        theta = torch.zeros(b, 2, 3, device=pixels.device, dtype=pixels.dtype)
        theta[:, 0, 0] = side
        theta[:, 1, 1] = side
        theta[:, 0, 2] = shift_x
        theta[:, 1, 2] = shift_y
        grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
        pixels = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if jitter > 0:
        view = (b, 1, 1, 1)
        pixels = pixels * uniform(1 - jitter, 1 + jitter).view(view)  # brightness
        mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
        pixels = (pixels - mean) * uniform(1 - jitter, 1 + jitter).view(view) + mean  # contrast
        gray = (0.299 * pixels[:, 0:1] + 0.587 * pixels[:, 1:2] + 0.114 * pixels[:, 2:3])
        pixels = (pixels - gray) * uniform(1 - jitter, 1 + jitter).view(view) + gray  # saturation
    return pixels.clamp(0.0, 1.0)


def train_sft(policy: CompactVLA, demos: Sequence[Demo], config: SFTConfig) -> SFTResult:
    """Behaviour-clone `policy` on `config.num_demos_per_task` demos per task.

    Args:
        policy: The policy to train in place (its tokenizer stats are refitted unless
            config.fit_action_stats is False).
        demos: Demonstrations of one or more tasks (grouped by (suite, task_id)).
        config: Steps, batch size, optimiser, augmentation, checkpoints.

    Returns:
        SFTResult with the trained policy, final metrics and the final checkpoint directory.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    chosen = select_demos(demos, config.num_demos_per_task, config.only_successful_demos)
    if config.fit_action_stats:
        policy.tokenizer = ActionTokenizer.fit(
            chosen, num_bins=policy.num_bins, gripper_dim=policy.tokenizer.gripper_dim
        )
    data = build_dataset(chosen, policy.tokenizer, policy.chunk_size)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    aug_gen = torch.Generator().manual_seed(config.seed)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    def transform(pixels: torch.Tensor) -> torch.Tensor:
        return augment_images(pixels, config.crop_scale, config.color_jitter, aug_gen)

    checkpoint_root = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    history: list[dict[str, float]] = []
    order = rng.permutation(len(data))
    cursor = 0
    policy.train()
    bar = tqdm(range(1, config.num_steps + 1), desc="sft", disable=not config.progress, dynamic_ncols=True)
    loss_sum = acc_sum = 0.0
    num_in_window = 0
    for step in bar:
        if cursor + config.batch_size > len(order):  # shuffled epochs; the tail joins the next epoch
            order = np.concatenate([order[cursor:], rng.permutation(len(data))])
            cursor = 0
        idx = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        inputs, targets = data.batch(idx)
        targets = targets.to(policy.device)
        logits = policy.action_logits(inputs, image_transform=transform if config.augment else None)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()

        loss_sum += float(loss.detach())
        acc_sum += float((logits.detach().argmax(-1) == targets).float().mean())
        num_in_window += 1
        if step % config.log_every == 0 or step == config.num_steps:
            record = {"step": float(step), "loss/sft": loss_sum / num_in_window,
                      "sft/token_accuracy": acc_sum / num_in_window}
            history.append(record)
            bar.set_postfix(loss=f"{record['loss/sft']:.3f}", acc=f"{record['sft/token_accuracy']:.2f}")
            loss_sum = acc_sum = 0.0
            num_in_window = 0
        if checkpoint_root and config.checkpoint_every and step % config.checkpoint_every == 0 \
                and step < config.num_steps:
            policy.save_pretrained(checkpoint_root / f"step_{step:06d}")
    bar.close()
    policy.train(False)

    metrics = {
        "loss/sft": history[-1]["loss/sft"],
        "sft/token_accuracy": history[-1]["sft/token_accuracy"],
        "sft/num_demos": float(len(chosen)),
        "sft/num_tasks": float(len({(d.suite, d.task_id) for d in chosen})),
        "sft/num_samples": float(len(data)),
        "time/sft_s": time.perf_counter() - start,
    }
    final = None
    if checkpoint_root is not None:
        final = policy.save_pretrained(checkpoint_root / "final")
        (checkpoint_root / "sft_metrics.json").write_text(
            json.dumps({"metrics": metrics, "history": history}, indent=2)
        )
    return SFTResult(policy=policy, metrics=metrics, history=history, checkpoint=final)


def imitation_accuracy(policy: CompactVLA, demos: Sequence[Demo], batch_size: int = 64) -> float:
    """Share of demo action tokens the policy reproduces greedily (on un-augmented demo observations)."""
    data = build_dataset(demos, policy.tokenizer, policy.chunk_size)
    correct = 0
    for s in range(0, len(data), batch_size):
        idx = np.arange(s, min(s + batch_size, len(data)))
        inputs, targets = data.batch(idx)
        tokens = policy.sample(inputs, temperature=1.0, greedy=True).tokens
        correct += int((tokens == targets.numpy()).sum())
    return correct / data.tokens.size


# ---------------------------------------------------------------------------------------------------------
# `srpo sft`


def load_demos(cfg: SFTRunConfig) -> list[Demo]:
    """Demos for `srpo sft`: from HDF5 (file or folder) or recorded on the tabletop env."""
    if cfg.demos is not None:
        from srpo.demos import demo_files, read_demo_files

        try:
            files = demo_files(cfg.demos)
            demos: list[Demo] = [d for file_demos in read_demo_files(files, suite=cfg.suite) for d in file_demos]
        except InputFileError as err:
            raise type(err)(f"--demos: {err}") from err
    else:
        from srpo.config.env import TabletopConfig
        from srpo.envs.tabletop import demo_layout_pool, record_tabletop_demos

        config = TabletopConfig(image_size=cfg.image_size or 64, object_state=cfg.object_state)
        # Demos never come from the held-out evaluation states, so the evaluation after SFT is on unseen layouts.
        factory, demo_states = demo_layout_pool(config, cfg.num_eval_init_states, cfg.demo_layouts)
        # Spare demos per task: a noisy expert may fail one (filtered by success), a lucky random walk is dropped.
        demos = record_tabletop_demos(factory, list(cfg.tasks or range(config.num_tasks)),
                                      cfg.sft.num_demos_per_task + 4, seed=cfg.sft.seed, noise_std=cfg.demo_noise,
                                      max_random_prefix_steps=cfg.random_prefix, init_state_ids=demo_states)
    if cfg.tasks:
        demos = [d for d in demos if d.task_id in set(cfg.tasks)]
    return demos


def run_sft(cfg: SFTRunConfig) -> SFTResult:
    """Run `srpo sft`: load or record the demos, build (or load) the policy, clone; writes `<cfg.out>/final`."""
    from srpo.config.policy import PolicyConfig

    demos = load_demos(cfg)
    if cfg.init is not None:
        policy = CompactVLA.from_pretrained(cfg.init, device=cfg.device)
    else:
        state_dim = int(demos[0].states.shape[1]) if demos else 0
        image_size = cfg.image_size or (64 if cfg.env == "tabletop" else 128)
        policy_config = PolicyConfig(
            vision_encoder=cfg.vision_encoder, freeze_vision=not cfg.fine_tune_vision,
            text_encoder=cfg.text_encoder, image_size=image_size, state_dim=state_dim, device=cfg.device,
            seed=cfg.sft.seed,
        )
        policy = CompactVLA(cfg.sized(policy_config))
    config = dataclasses.replace(cfg.sft, checkpoint_dir=cfg.out)
    result = train_sft(policy, demos, config)
    print(
        f"sft: {int(result.metrics['sft/num_demos'])} demos of {int(result.metrics['sft/num_tasks'])} tasks, "
        f"{config.num_steps} steps in {result.metrics['time/sft_s']:.1f} s, final loss "
        f"{result.metrics['loss/sft']:.3f}, token accuracy {result.metrics['sft/token_accuracy']:.3f}; "
        f"checkpoint {result.checkpoint}",
        file=sys.stderr,
    )
    return result
