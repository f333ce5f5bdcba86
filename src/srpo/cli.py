"""The `srpo` command line: score, train, eval, sft, reward-eval, record, offline, report, compare, diversity (heavy
imports inside each)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srpo.errors import SrpoError

if TYPE_CHECKING:
    from srpo.config.reward_eval import RewardEvalConfig
    from srpo.config.sft import SFTRunConfig
    from srpo.config.train import TrainConfig


def _score(args: argparse.Namespace) -> int:
    import numpy as np

    from srpo.config.reward import RewardConfig
    from srpo.scoring import load_batch, make_synthetic_batch, score_batch, summary_table, to_csv

    config = RewardConfig.preset(args.preset, reference_scope=args.group_by)
    if args.batch is None:
        arrays = make_synthetic_batch(seed=args.seed)
        print(
            f"No batch file given: scoring a synthetic batch of {arrays['success'].size} trajectories × "
            f"{arrays['embeddings'].shape[1]}-d embeddings, 10 tasks, groups of 8 (failures placed at known "
            "progress along a start→goal path).",
            file=sys.stderr,
        )
        if args.save_batch:
            np.savez(args.save_batch, **{k: v for k, v in arrays.items() if k != "progress"})
            print(f"wrote {args.save_batch}", file=sys.stderr)
    else:
        arrays = load_batch(args.batch)
    scored = score_batch(arrays, config, binary=args.binary)
    table = to_csv(scored)
    if args.out:
        Path(args.out).write_text(table)
        print(f"wrote {scored.rewards.size} rows to {args.out}", file=sys.stderr)
    elif args.batch is not None:
        sys.stdout.write(table)
    kind = "binary GRPO" if args.binary else f"SRPO ({args.preset} preset, per {args.group_by})"
    print(f"\n{kind} rewards\n{summary_table(scored)}", file=sys.stderr if args.batch and not args.out else sys.stdout)
    if "progress" in arrays and not args.binary:
        from scipy.stats import spearmanr

        fails = ~scored.success
        rho = spearmanr(arrays["progress"][fails], scored.rewards[fails]).statistic
        print(f"Spearman(true progress, reward) over failures: {rho:.3f}")
    return 0


def _load_train_config(args: argparse.Namespace) -> TrainConfig:
    from srpo.config.train import load_config

    overrides = list(args.set or [])
    if getattr(args, "algo", None):
        overrides.append(f"algo_name={args.algo}")
    if getattr(args, "run_dir", None):
        overrides.append(f"run_dir={args.run_dir}")
    if getattr(args, "steps", None) is not None:
        overrides.append(f"num_steps={args.steps}")
    return load_config(args.config, preset=args.preset, overrides=overrides)


def _train(args: argparse.Namespace) -> int:
    from srpo.run_dir import resume_config
    from srpo.trainer import Trainer

    if args.resume:
        _check_resume_flags(args)
        overrides = list(args.set or [])
        if args.steps is not None:
            overrides.append(f"num_steps={args.steps}")
        cfg = resume_config(args.resume, overrides)
    else:
        cfg = _load_train_config(args)
    from srpo.interrupt import Interrupted, StopOnSignal

    # Ctrl-C / SIGTERM: the first stops after the step in flight (checkpointed), a second abandons it; either
    # way the trainer closes its workers on the way out and one line says how to resume.
    with StopOnSignal("srpo train") as stop:
        try:
            with Trainer(cfg, resume=bool(args.resume)) as trainer:
                history = trainer.train(should_stop=stop.requested)
        except Interrupted:
            pass
    if stop.requested():
        from srpo.interrupt import interrupted_message
        from srpo.run_dir import checkpoint_step, list_checkpoints

        ckpts = list_checkpoints(Path(cfg.run_dir))
        print(interrupted_message("srpo train", stop.signal_name, str(cfg.run_dir),
                                  checkpoint_step(ckpts[-1]) if ckpts else None, cfg.num_steps), file=sys.stderr)
        return stop.exit_code
    if history:
        last = history[-1]
        print(f"finished {cfg.num_steps} steps in {cfg.run_dir}: rollout success {last['rollout/success_rate']:.3f}"
              + (f", eval success {last['eval/success_rate']:.3f}" if "eval/success_rate" in last else ""))
    from srpo.evaluate import before_after_line
    from srpo.run_dir import read_metrics

    line = before_after_line(read_metrics(cfg.run_dir))
    if line is not None:
        print(line)
    if args.report:
        from srpo.report import build_report

        print(f"report: {build_report(cfg.run_dir)}")
    return 0


def _check_resume_flags(args: argparse.Namespace) -> None:
    """--resume continues a run with its saved config.yaml: flags that would pick another config are refused."""
    from srpo.config.base import ConfigError

    given = [flag for flag, value in (("--algo", args.algo), ("--preset", args.preset), ("--config", args.config),
                                      ("--run-dir", args.run_dir)) if value]
    if given:
        raise ConfigError(
            f"{', '.join(given)} cannot be combined with --resume: the run continues with {args.resume}/config.yaml "
            "as it was started; drop them (change single fields with --set KEY=VALUE, more steps with --steps), or "
            "start a new run without --resume"
        )


def _eval(args: argparse.Namespace) -> int:
    from srpo.evaluate import evaluate_checkpoint

    if args.benchmark is not None:  # robustness benchmarks (srpo.robustness)
        return _eval_robustness(args)
    cfg = _load_train_config(args)
    result = evaluate_checkpoint(cfg, args.checkpoint, args.episodes, args.videos, args.out,
                                 args.sample_temperature)
    print(f"{result.mode} success on held-out init states:\n{result.table()}")
    return 0


def _eval_robustness(args: argparse.Namespace) -> int:
    """`srpo eval --benchmark ...`: the flags are shorthands for `robustness.*` fields of the config tree."""
    import json
    import time

    from srpo.robustness import run_robustness

    out_dir = json.dumps(str(Path(args.out) / args.benchmark))
    overrides = [*(args.set or []), f"robustness.benchmark={args.benchmark}", f"robustness.out_dir={out_dir}"]
    flags = {"dimensions": args.dimensions, "tasks_per_dimension": args.tasks_per_dimension,
             "episodes_per_task": args.episodes_per_task, "assets": args.assets}
    overrides += [f"robustness.{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    cfg = _load_train_config(argparse.Namespace(config=args.config, preset=args.preset, set=overrides))
    start = time.perf_counter()
    result = run_robustness(cfg, args.checkpoint)
    print(result.table)
    state = "complete" if result.complete else "INCOMPLETE: rerun the same command to resume"
    print(f"{state} ({time.perf_counter() - start:.0f} s): {result.out_dir / 'results.json'}, "
          f"{result.out_dir / 'success.png'}")
    return 0


def _add_robustness_arguments(parser: argparse.ArgumentParser) -> None:
    """The `srpo eval` flags of the robustness benchmarks (shorthands for `robustness.*` fields)."""
    group = parser.add_argument_group("robustness benchmarks (README: Robustness)")
    group.add_argument("--benchmark", choices=["libero-plus", "libero-pro"], default=None,
                       help="greedy success on perturbed variants of the configured LIBERO tasks, per dimension, "
                            "with Wilson 95%% intervals; writes OUT/<benchmark>/{results.json,table.txt,success.png}")
    group.add_argument("--dimensions", nargs="+", default=None, metavar="DIM",
                       help="libero-plus: camera robot language light background noise layout; libero-pro: object "
                            "swap language task (default: all)")
    group.add_argument("--tasks-per-dimension", type=int, default=None,
                       help="libero-plus tasks drawn per dimension (robustness.tasks_per_dimension, default 4)")
    group.add_argument("--episodes-per-task", type=int, default=None,
                       help="episodes per perturbed task on held-out init states (default 2)")
    group.add_argument("--assets", default=None,
                       help="local LIBERO-Plus asset directory: runs light, background and added-object layouts")


def _report(args: argparse.Namespace) -> int:
    from srpo.report import build_report

    print(build_report(args.run_dir, args.out))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from srpo.compare import run_compare
    from srpo.interrupt import Interrupted, StopOnSignal

    cfg = _load_train_config(args)
    # Ctrl-C / SIGTERM: the first checkpoints the step in flight, starts no further run and summarises what is on
    # disk; a second abandons the step in flight (the newest checkpoint stays). Re-running resumes either way.
    with StopOnSignal("srpo compare") as stop:
        try:
            result = run_compare(cfg, args.out, seeds=args.seeds, algos=tuple(args.algos), target=args.target,
                                 metric=args.metric, train=not args.no_train, should_stop=stop.requested)
        except Interrupted:
            print("srpo compare: abandoned the step in flight; re-run the same command to resume", file=sys.stderr)
            return stop.exit_code
    print(result.table())
    print(f"plot: {Path(args.out) / 'compare.png'}, data: {Path(args.out) / 'compare.json'}")
    if stop.requested():
        print(f"srpo compare: stopped on {stop.signal_name}; re-run the same command to resume", file=sys.stderr)
    return stop.exit_code


def _diversity(args: argparse.Namespace) -> int:
    from srpo.config.diversity import DiversityConfig
    from srpo.diversity_eval import DIVERSITY_JSON, DIVERSITY_PLOT, run_diversity

    cfg = DiversityConfig(episodes_per_state=args.episodes_per_state, states_per_task=args.states_per_task,
                          temperature=args.temperature, num_cells=args.num_cells, out_dir=args.out)
    result = run_diversity(args.run_dirs, cfg)
    print(result.table())
    print(f"plot: {Path(args.out) / DIVERSITY_PLOT}, data: {Path(args.out) / DIVERSITY_JSON}")
    return 0


def sft_config_from_args(args: argparse.Namespace) -> SFTRunConfig:
    """`srpo sft` flags → its typed config."""
    from srpo.config.sft import SFTConfig, SFTRunConfig

    return SFTRunConfig(
        out=str(args.out), demos=str(args.demos) if args.demos is not None else None, env=args.env,
        suite=args.suite, tasks=tuple(args.tasks) if args.tasks else None,
        init=str(args.init) if args.init is not None else None, vision_encoder=args.vision_encoder,
        fine_tune_vision=args.fine_tune_vision, text_encoder=args.text_encoder, chunk_size=args.chunk_size,
        image_size=args.image_size, d_model=args.d_model, num_layers=args.num_layers, num_heads=args.num_heads,
        ff_dim=args.ff_dim, device=args.device, demo_noise=args.demo_noise,
        random_prefix=args.random_prefix, demo_layouts=args.demo_layouts, object_state=args.object_state,
        num_eval_init_states=args.num_eval_init_states, num_eval_episodes_per_task=args.eval_episodes,
        num_eval_videos_per_task=args.eval_videos,
        sft=SFTConfig(num_demos_per_task=args.num_demos_per_task, num_steps=args.steps, batch_size=args.batch_size,
                      learning_rate=args.lr, augment=not args.no_augment, seed=args.seed,
                      checkpoint_every=args.checkpoint_every, progress=not args.no_progress),
    )


def _sft(args: argparse.Namespace) -> int:
    from srpo.sft import run_sft

    cfg = sft_config_from_args(args)
    result = run_sft(cfg)
    if cfg.num_eval_episodes_per_task > 0 and result.checkpoint is not None:
        from srpo.config.train import load_config
        from srpo.evaluate import evaluate_checkpoint

        if cfg.env == "tabletop":
            overrides = [f"policy.image_size={result.policy.config.image_size}",
                         f"env.tabletop.object_state={str(cfg.object_state).lower()}"]
            if cfg.tasks:
                overrides.append(f"env.tabletop.num_tasks={max(cfg.tasks) + 1}")
            eval_cfg = load_config(preset="tabletop", overrides=overrides)
        else:
            suite = cfg.suite or "libero_spatial"
            tasks = sorted(set(cfg.tasks)) if cfg.tasks else None
            overrides = [f"env.libero.suite={suite}", f"env.libero.task_ids={tasks if tasks else 'null'}",
                         f"env.libero.image_size={result.policy.config.image_size}",
                         f"policy.image_size={result.policy.config.image_size}"]
            eval_cfg = load_config(preset="cpu", overrides=overrides)
        ev = evaluate_checkpoint(eval_cfg, str(result.checkpoint), cfg.num_eval_episodes_per_task,
                                 cfg.num_eval_videos_per_task, Path(cfg.out) / "eval")
        print(f"greedy success on held-out init states of {result.checkpoint}:\n{ev.table()}")
    return 0


def _scripted_demos(args: argparse.Namespace) -> int:
    from srpo.envs.libero_scripted import measure_scripted_expert

    measure_scripted_expert(args.suite or ["libero_spatial", "libero_object"], args.task_ids, args.num_episodes,
                            args.json, args.demo_dir, args.image_size, args.render_quality)
    return 0


def _record(args: argparse.Namespace) -> int:
    from srpo.record import record_dataset

    overrides = list(args.set or [])
    if args.checkpoint:
        overrides.append(f"policy.checkpoint={args.checkpoint}")
    cfg = _load_train_config(argparse.Namespace(config=args.config, preset=args.preset, set=overrides))
    result = record_dataset(cfg, args.out, args.episodes_per_task, args.temperature, args.split, args.batch_episodes,
                            args.fps)
    print(f"LeRobot v3 dataset: {result.root}\n{result.table()}")
    return 0


def _offline(args: argparse.Namespace) -> int:
    from srpo.offline import OfflineTrainer
    from srpo.run_dir import resume_config

    overrides = list(args.set or [])
    for flag, key in (("dataset", "offline.dataset"), ("arm", "offline.arm"), ("beta", "offline.beta"),
                      ("policy", "policy.checkpoint"), ("out", "run_dir"), ("steps", "num_steps")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.resume:
        from srpo.config.base import ConfigError

        given = [f"--{name}" for name in ("preset", "config", "out", "dataset", "arm", "beta", "policy")
                 if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} cannot be combined with --resume: the run continues with "
                              f"{args.resume}/config.yaml (change fields with --set, or start a new --out)")
        cfg = resume_config(args.resume, overrides)
    else:
        cfg = _load_train_config(argparse.Namespace(config=args.config, preset=args.preset, set=overrides))
    with OfflineTrainer(cfg, resume=bool(args.resume)) as trainer:
        history = trainer.train()
    last = history[-1] if history else {}
    print(f"finished {cfg.num_steps} offline steps ({cfg.offline.arm}) in {cfg.run_dir}"
          + (f": eval success {last['eval/success_rate']:.3f}" if "eval/success_rate" in last else ""))
    if args.report:
        from srpo.report import build_report

        print(f"report: {build_report(cfg.run_dir)}")
    return 0


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=["cpu", "tabletop", "paper"], default=None,
                   help="starting config (default: none, the config's field defaults: tabletop env, a fresh "
                        "compact VLA, the official SRPO values; `make run` uses --preset cpu)")
    p.add_argument("--config", help="YAML file of config fields, applied over the preset (or the field defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one field, e.g. --set algo.lr=1e-5 --set env.libero.task_ids=[0,1] (repeatable)")


def add_sft_parser(subparsers: Any) -> argparse.ArgumentParser:
    """`srpo sft`; its flags map onto `srpo.config.sft.SFTRunConfig` (`sft_config_from_args`)."""
    from srpo.config.sft import SFTConfig, SFTRunConfig

    run_defaults = {f.name: f.default for f in dataclasses.fields(SFTRunConfig)}

    def run_default(name: str) -> Any:
        return run_defaults[name]

    p: argparse.ArgumentParser = subparsers.add_parser(
        "sft",
        help="behaviour cloning (one-shot SFT) of the compact VLA from demonstrations",
        description=(
            "Trains the compact VLA by cross-entropy over action tokens on N demos per task, read from LIBERO/"
            "robomimic HDF5 files (--demos FILE_OR_DIR) or recorded with the scripted expert of the built-in "
            "tabletop env (--env tabletop), and writes <out>/final (safetensors + config + action stats)."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--demos", type=Path, help="an .hdf5 demo file or a folder of them (one file per task)")
    src.add_argument("--env", choices=["tabletop"], help="record demos with this env's scripted expert")
    p.add_argument("--suite", default=None, help="suite name for HDF5 files that do not record one")
    p.add_argument("--tasks", type=int, nargs="*", default=None, help="task ids to train on (default: all)")
    p.add_argument("--num-demos-per-task", type=int, default=SFTConfig.num_demos_per_task)
    p.add_argument("--steps", type=int, default=SFTConfig.num_steps)
    p.add_argument("--batch-size", type=int, default=SFTConfig.batch_size)
    p.add_argument("--lr", type=float, default=SFTConfig.learning_rate)
    p.add_argument("--no-augment", action="store_true", help="disable random crop + colour jitter")
    p.add_argument("--seed", type=int, default=SFTConfig.seed)
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory (writes <out>/final)")
    p.add_argument("--checkpoint-every", type=int, default=SFTConfig.checkpoint_every)
    p.add_argument("--init", type=Path, default=None, help="start from this CompactVLA checkpoint")
    p.add_argument("--vision-encoder", choices=["efficientnet_lite0", "conv", "conv_keypoints"],
                   default=run_default("vision_encoder"))
    p.add_argument("--chunk-size", type=int, default=None, help="actions per chunk (default: policy default, 8)")
    p.add_argument("--fine-tune-vision", action="store_true", help="train the image encoder too")
    p.add_argument("--text-encoder", choices=["minilm", "hashed"], default=run_default("text_encoder"))
    p.add_argument("--image-size", type=int, default=None, help="policy image side (default: 128; tabletop 64)")
    p.add_argument("--d-model", type=int, default=None,
                   help="width of a fresh policy's action transformer (default: policy default, 128)")
    p.add_argument("--num-layers", type=int, default=None,
                   help="transformer layers of a fresh policy (default: policy default, 3)")
    p.add_argument("--num-heads", type=int, default=None,
                   help="attention heads of a fresh policy, dividing --d-model (default: policy default, 4)")
    p.add_argument("--ff-dim", type=int, default=None,
                   help="MLP width of a fresh policy's transformer (default: policy default, 256)")
    p.add_argument("--demo-noise", type=float, default=run_default("demo_noise"),
                   help="tabletop: expert translation noise std")
    p.add_argument("--random-prefix", type=int, default=run_default("random_prefix"),
                   help="tabletop: start each demo after an unrecorded random walk of up to N steps (recovery data)")
    p.add_argument("--demo-layouts", type=int, default=None,
                   help="tabletop: record demos in layouts 0..N-1 (minus the held-out ones) instead of the "
                        "training init states only")
    p.add_argument("--object-state", action="store_true",
                   help="tabletop: block and plate centres in the proprioception (env.tabletop.object_state)")
    p.add_argument("--num-eval-init-states", type=int, default=run_default("num_eval_init_states"),
                   help="tabletop: the last N initial states are held out for evaluation and never used for demos "
                        "(keep equal to env.tabletop_num_eval_init_states)")
    p.add_argument("--device", default=run_default("device"))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--eval-episodes", type=int, default=run_default("num_eval_episodes_per_task"),
                   help="greedy evaluation episodes per task on held-out init states after SFT (0 = skip)")
    p.add_argument("--eval-videos", type=int, default=run_default("num_eval_videos_per_task"),
                   help="evaluation videos per task")
    p.set_defaults(func=_sft)
    return p


def reward_eval_config_from_args(args: argparse.Namespace) -> RewardEvalConfig:
    """`srpo reward-eval` flags → its typed config."""
    from srpo.config.reward_eval import RewardEvalConfig

    return RewardEvalConfig(
        data=args.data, hdf5=tuple(args.hdf5) if args.hdf5 is not None else None, record=args.record,
        record_dir=args.record_dir, tasks=tuple(args.tasks), num_success=args.num_success,
        num_failure=args.num_failure, seed=args.seed, suite=args.suite, embed_size=args.embed_size,
        frame_stride=args.frame_stride, init_split=args.init_split, image_key=args.image_key,
        encoders=tuple(args.encoders), weights=args.weights, num_frames=args.num_frames, num_cuts=args.num_cuts,
        rotate_180=args.rotate_180, segments=args.segments, crop_size=args.crop_size, device=args.device,
        batch_size=args.batch_size, reward_preset=args.reward_preset, whiten=args.whiten,
        centres=args.centres, alpha=args.alpha, max_trajectories=args.max_trajectories,
        output_dir=args.output_dir, plots=not args.no_plots,
    )


def _reward_eval(args: argparse.Namespace) -> int:
    from srpo.reward_eval import run_reward_eval

    return run_reward_eval(reward_eval_config_from_args(args))


def add_reward_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """`srpo reward-eval`; its flags map onto `srpo.config.reward_eval.RewardEvalConfig`."""
    from srpo.config.encoder import ENCODER_NAMES
    from srpo.config.reward_eval import RECORD_SOURCES, RewardEvalConfig

    d = RewardEvalConfig(record="tabletop")  # the field defaults (a source is required, any will do here)
    p: argparse.ArgumentParser = subparsers.add_parser(
        "reward-eval",
        help="reward quality (SC, Mono, MMD, JS, SMD, AUROC, stage Spearman) of world-model encoders on labelled "
        "trajectories",
        description="For each encoder: embed growing prefixes of every labelled trajectory, SRPO reward and score "
        "against the task's successes, progress curves; prints the metric table and writes reward_eval.json "
        "(+ .png). Module docstring of srpo.reward_eval: the definitions.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="folder with labels.csv (path,success,task_id[,kind,stage]) and .npz/.mp4 "
                        "files")
    source.add_argument("--hdf5", nargs="+", help="LIBERO / robomimic demo files (one task per file)")
    source.add_argument("--record", choices=RECORD_SOURCES, help="record a labelled set with a scripted expert first")
    p.add_argument("--record-dir", help="where --record writes the labelled set (default: OUTPUT_DIR/labelled)")
    p.add_argument("--tasks", type=int, nargs="+", default=list(d.tasks), help="--record: task ids")
    p.add_argument("--num-success", type=int, default=d.num_success, help="--record: successes per task")
    p.add_argument("--num-failure", type=int, default=d.num_failure, help="--record: failures per task")
    p.add_argument("--seed", type=int, default=d.seed, help="--record: seed")
    p.add_argument("--suite", default=d.suite, help="--record libero: suite (pick-and-place tasks)")
    p.add_argument("--embed-size", type=int, default=d.embed_size, help="--record libero: side of the recorded frames")
    p.add_argument("--frame-stride", type=int, default=d.frame_stride,
                   help="--record libero: render a frame every N control steps (episodes resume per episode)")
    p.add_argument("--init-split", choices=["train", "eval"],
                   help="--record libero: draw initial states from this split (eval: held out from training)")
    p.add_argument("--image-key", default=d.image_key, help="--hdf5: obs dataset with the frames")
    p.add_argument("--encoders", nargs="+", choices=ENCODER_NAMES, default=list(d.encoders))
    p.add_argument("--weights", help="V-JEPA 2 weights: local transformers dir, cached model id or vjepa2 .pt")
    p.add_argument("--num-frames", type=int, default=d.num_frames, help="frames sampled per (prefix) video")
    p.add_argument("--num-cuts", type=int, default=d.num_cuts, help="points on each progress curve")
    p.add_argument("--rotate-180", action="store_true", help="rotate frames by 180° (raw LIBERO renders)")
    p.add_argument("--segments", type=int, default=d.segments, help="EfficientNet temporal segments")
    p.add_argument("--crop-size", type=int, default=None,
                   help="input side of EfficientNet / V-JEPA 2 (encoder.crop_size; default: the model's own)")
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda[:N]")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="trajectories per forward (0: automatic)")
    p.add_argument("--reward-preset", choices=["official", "paper"], default=d.reward_preset)
    p.add_argument("--whiten", action="store_true",
                   help="standardise embeddings with each task's successes' mean and std first (reward.whiten)")
    p.add_argument("--centres", choices=["dbscan", "nearest", "mean"],
                   help="reference centres (reward.centres; default: the preset's, dbscan)")
    p.add_argument("--alpha", type=float, help="weight of the progress value for failures (reward.alpha; "
                   "default: the preset's)")
    p.add_argument("--max-trajectories", type=int, help="evaluate only the first N trajectories")
    p.add_argument("--output-dir", default=d.output_dir, help="where the JSON and the plot go")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figure")
    p.set_defaults(func=_reward_eval)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srpo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser(
        "score",
        help="SRPO rewards and group advantages for a batch of embeddings (.npz) from any RL stack",
        description=(
            "Reads embeddings (N, D), success (N,), task_ids (N,) and group_ids (N,) from an .npz and writes one "
            "CSV row per trajectory in input order. Without BATCH, scores a synthetic batch and prints a table."
        ),
    )
    score.add_argument("batch", nargs="?", help=".npz with embeddings, success, task_ids, group_ids")
    score.add_argument("--preset", choices=["official", "paper"], default="official")
    score.add_argument("--group-by", choices=["task", "group"], default="task", help="reference set scope")
    score.add_argument("--out", help="CSV output file (default: stdout)")
    score.add_argument("--binary", action="store_true", help="plain 0/1 rewards (GRPO) for comparison")
    score.add_argument("--seed", type=int, default=0, help="seed of the synthetic batch")
    score.add_argument("--save-batch", help="also write the synthetic batch to this .npz")
    score.set_defaults(func=_score)

    train = sub.add_parser("train", help="online SRPO (or GRPO) training", description=(
        "Rollout groups, embed, reward, advantages, PPO-clip update, evaluate, checkpoint. Ctrl-C or kill at any "
        "time and continue with --resume RUN_DIR."))
    _add_config_args(train)
    train.add_argument("--algo", choices=["srpo", "grpo"], help="reward: world-model progress or binary outcome")
    train.add_argument("--run-dir", help="output directory (config, metrics, checkpoints, videos)")
    train.add_argument("--steps", type=int, help="number of training steps (num_steps)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest complete checkpoint")
    train.add_argument("--report", action="store_true", help="write the HTML report at the end")
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="per-task success on held-out init states (greedy by default), with videos")
    _add_config_args(ev)
    ev.add_argument("--checkpoint", help="policy checkpoint directory (default: policy.checkpoint of the config)")
    ev.add_argument("--episodes", type=int, default=10, help="episodes per task")
    ev.add_argument("--videos", type=int, default=2, help="videos per task")
    ev.add_argument("--out", default="runs/eval", help="directory for eval.json and videos")
    ev.add_argument("--sample-temperature", type=float, default=None, metavar="T",
                    help="sample actions at temperature T (e.g. the training temperature) instead of taking the "
                         "arg-max bins; seeded by the config's seed (--set seed=N); more --episodes than held-out "
                         "states then draw new episodes instead of repeating greedy ones")
    _add_robustness_arguments(ev)
    ev.set_defaults(func=_eval)

    add_sft_parser(sub)
    add_reward_eval_parser(sub)

    scripted = sub.add_parser(
        "scripted-demos", help="LIBERO: success rate of the privileged scripted controller; optionally record demos",
        description="Runs srpo.envs.libero_scripted's pick-and-place controller on train init states 0..n-1 of "
                    "every task, prints and saves per-task success, and records the successful episodes as HDF5.")
    scripted.add_argument("--suite", action="append", default=None,
                          choices=["libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90"],
                          help="suite(s) to run; repeatable (default: libero_spatial and libero_object)")
    scripted.add_argument("--task-ids", type=int, nargs="*", default=None, help="suite task ids (default: all)")
    scripted.add_argument("--num-episodes", type=int, default=3,
                          help="episodes per task (train init states 0..n-1)")
    scripted.add_argument("--json", type=Path, default=None, help="merge per-task success rates into this JSON")
    scripted.add_argument("--demo-dir", type=Path, default=None,
                          help="record the successful episodes as <suite>/task<id>_demo.hdf5 here (renders every "
                               "step)")
    scripted.add_argument("--image-size", type=int, default=128, help="image side of recorded demos")
    scripted.add_argument("--render-quality", choices=["full", "fast", "lean"], default="full",
                          help="libero.render_quality of the recorded images: the one the policy will run under "
                               "(a policy cloned on full frames loses success under fast ones; README)")
    scripted.set_defaults(func=_scripted_demos)

    rec = sub.add_parser("record", help="roll out a policy and write the episodes as a LeRobot v3 dataset",
                         description="Sampled episodes (successes and failures) of every task of the config's env, "
                         "one row per policy decision; run again with the same arguments to continue a killed one.")
    _add_config_args(rec)
    rec.add_argument("--out", required=True, help="dataset folder")
    rec.add_argument("--checkpoint", help="policy checkpoint (default: policy.checkpoint of the config)")
    rec.add_argument("--episodes-per-task", type=int, default=50)
    rec.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (> 0)")
    rec.add_argument("--split", choices=["train", "eval"], default="train", help="init states to start from")
    rec.add_argument("--batch-episodes", type=int, default=32, help="episodes per rollout batch / appended file")
    rec.add_argument("--fps", type=int, default=10, help="nominal frame rate stored in the dataset")
    rec.set_defaults(func=_record)

    off = sub.add_parser("offline", help="offline SRPO: advantage-weighted behaviour cloning on a recorded dataset",
                         description="Per task: embed every episode, SRPO reward for failures against the dataset's "
                         "successes, advantage over the task mean, AWR weights exp(A/beta) clipped, weighted BC on "
                         "the policy's action tokens. Arms: bc, filtered_bc, awr_binary, awr_srpo.")
    _add_config_args(off)
    off.add_argument("--dataset", help="LeRobot v3 folder, LIBERO HDF5 file or folder of them (offline.dataset)")
    off.add_argument("--arm", choices=["bc", "filtered_bc", "awr_binary", "awr_srpo"], help="offline.arm")
    off.add_argument("--beta", type=float, help="AWR temperature (offline.beta)")
    off.add_argument("--policy", help="starting policy checkpoint (policy.checkpoint)")
    off.add_argument("--out", help="run directory (run_dir)")
    off.add_argument("--steps", type=int, help="optimiser steps (num_steps)")
    off.add_argument("--resume", metavar="RUN_DIR", help="continue an offline run from its newest checkpoint")
    off.add_argument("--report", action="store_true", help="write the HTML report at the end")
    off.set_defaults(func=_offline)

    rep = sub.add_parser("report", help="HTML report (+ PNGs) of a run directory")
    rep.add_argument("run_dir")
    rep.add_argument("--out", help="output directory (default RUN_DIR/report)")
    rep.set_defaults(func=_report)

    cmp_ = sub.add_parser("compare", help="SRPO vs GRPO from the same initial policy, seeds and tasks")
    _add_config_args(cmp_)
    cmp_.add_argument("--steps", type=int, help="training steps per run")
    cmp_.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    cmp_.add_argument("--algos", nargs="+", default=["srpo", "grpo"], choices=["srpo", "grpo"],
                      help="arms, run in this order (all seeds of one before the next); re-run to resume")
    cmp_.add_argument("--target", type=float, default=0.5, help="success level for 'steps to target'")
    cmp_.add_argument("--metric", default="eval/success_rate")
    cmp_.add_argument("--out", default="runs/compare")
    cmp_.add_argument("--no-train", action="store_true",
                      help="summarise the runs on disk as they are (plot, slopes, JSON) without training: a look at "
                           "a long comparison while it runs, from another shell")
    cmp_.set_defaults(func=_compare)

    from srpo.config.diversity import DiversityConfig

    div = sub.add_parser("diversity", help="end-effector path diversity of runs' final policies, by algo",
                         description="Samples K episodes per held-out init state with each run's final checkpoint at "
                         "its training temperature; prints coverage, spread and pairwise path distance per run and "
                         "per algo (mean, bootstrap 95% CI over runs); writes diversity.json and diversity.png.")
    div.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="`srpo train` run directories")
    div.add_argument("--episodes-per-state", type=int, default=DiversityConfig.episodes_per_state,
                     help="sampled episodes per held-out (task, init state)")
    div.add_argument("--states-per-task", type=int, default=None,
                     help="the first N held-out init states of each task (default: all)")
    div.add_argument("--temperature", type=float, default=None, help="default: each run's algo.temperature")
    div.add_argument("--num-cells", type=int, default=DiversityConfig.num_cells, help="coverage grid cells per axis")
    div.add_argument("--out", default=DiversityConfig.out_dir, help="directory for diversity.json and diversity.png")
    div.set_defaults(func=_diversity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SrpoError as err:
        # Input the user can fix: one clear line, exit status 2. Anything else is a bug and keeps its traceback.
        print(f"srpo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
