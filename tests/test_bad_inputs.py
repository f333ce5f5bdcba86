"""The bad-input matrix of docs/reliability.md, through the real CLI entry point (`srpo.cli.main`, in-process):
every cell gets exit status 2, one line on stderr that names the input and what is wrong, an SrpoError (not a
ValueError the CLI happens to catch), and nothing written or overwritten.

Cell ids are `<command>-<input>-<fault>`; docs/reliability.md lists each one with its message.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import srpo.cli as cli
from srpo.errors import SrpoError

TINY = [
    "env.tabletop.num_tasks=2", "env.tabletop.max_steps=8", "env.tabletop.image_size=32", "policy.image_size=32",
    "policy.d_model=32", "policy.num_layers=1", "policy.num_heads=2", "policy.ff_dim=64", "policy.chunk_size=4",
    "algo_name=grpo", "algo.group_size=2", "algo.num_prompts_per_step=2", "num_eval_episodes_per_task=0",
    "num_videos_per_step=0", "tensorboard=false",
]


def sets(*items: str) -> list[str]:
    out = []
    for item in [*TINY, *items]:
        out += ["--set", item]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Inputs, good and bad, built once.


@dataclass
class Inputs:
    root: Path
    checkpoint: Path  # a tiny CompactVLA matching TINY
    run: Path  # a 2-step run with checkpoints at steps 1 and 2
    labelled: Path  # a labelled set folder (labels.csv + .npz)
    batch: Path  # a valid score batch


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    return build_inputs(tmp_path_factory.mktemp("inputs"))


def build_inputs(root: Path) -> Inputs:
    from srpo.config.train import load_config
    from srpo.policies.compact import CompactVLA
    from srpo.reward_eval import LabelledSet, save_folder
    from srpo.scoring import make_synthetic_batch
    from srpo.trainer import Trainer

    cfg = load_config(preset="tabletop", overrides=[*TINY, "num_steps=2", "checkpoint_every=1",
                                                     f"run_dir={root / 'run'}"])
    CompactVLA(cfg.policy).save_pretrained(root / "ckpt")
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8) for _ in range(4)]
    save_folder(LabelledSet(videos, np.array([True, False, True, False]), np.zeros(4, np.int64),
                            [f"t{i}" for i in range(4)]), root / "labelled")
    arrays = make_synthetic_batch(num_tasks=2, num_groups_per_task=2, group_size=4, dim=8)
    np.savez(root / "batch.npz", **{k: v for k, v in arrays.items() if k != "progress"})
    return Inputs(root, root / "ckpt", root / "run", root / "labelled", root / "batch.npz")


def copy_of(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    return dst


def truncate(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def strip_manifest(ckpt: Path) -> Path:
    """A checkpoint as an older srpo (or a copy tool that dropped it) leaves it: no manifest.json."""
    (ckpt / "manifest.json").unlink()
    return ckpt


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def labelled_with(inputs: Inputs, work: Path, labels: str | None = None,
                  files: dict[str, bytes | np.ndarray] | None = None) -> Path:
    folder = copy_of(inputs.labelled, work / "labelled")
    if labels is not None:
        (folder / "labels.csv").write_text(labels)
    for name, content in (files or {}).items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            np.savez(folder / name, frames=content)
    return folder


def npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def batch_with(inputs: Inputs, work: Path, **changes: np.ndarray | None) -> Path:
    with np.load(inputs.batch) as data:
        arrays = {k: data[k] for k in data.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return npz(work / "batch.npz", **arrays)


def hdf5_without_data_group(path: Path) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group("something_else")
    return path


# ---------------------------------------------------------------------------------------------------------------
# The matrix: id → (argv builder, expected message fragment).

Argv = Callable[[Inputs, Path], list[str]]

TRAIN = ["train", "--preset", "tabletop"]
EVAL = ["eval", "--preset", "tabletop", "--episodes", "1", "--videos", "0"]


def ev(ckpt: Callable[[Inputs, Path], Path]) -> Argv:
    return lambda i, w: [*EVAL, "--checkpoint", str(ckpt(i, w)), "--out", str(w / "eval"), *sets()]


def tr(*extra: str, config: Callable[[Inputs, Path], Path] | None = None) -> Argv:
    def build(i: Inputs, w: Path) -> list[str]:
        argv = [*TRAIN, "--run-dir", str(w / "newrun"), *sets(*extra)]
        return argv + (["--config", str(config(i, w))] if config else [])
    return build


def resume(damage: Callable[[Path], None], *extra: str) -> Argv:
    def build(i: Inputs, w: Path) -> list[str]:
        run = copy_of(i.run, w / "run")
        damage(run)
        return ["train", "--resume", str(run), *extra]
    return build


def ckpt_policy(run: Path, step: int) -> Path:
    return run / f"ckpt-{step:06d}" / "policy"


def sft(*extra: str) -> Argv:
    return lambda i, w: ["sft", "--out", str(w / "sft"), "--steps", "1", "--eval-episodes", "0", *extra]


def re(*extra: str) -> Argv:
    return lambda i, w: ["reward-eval", "--encoders", "pixel", "--output-dir", str(w / "re"), "--no-plots", *extra]


def re_data(labels: str | None = None, **files: bytes | np.ndarray) -> Argv:
    return lambda i, w: re("--data", str(labelled_with(i, w, labels, files)))(i, w)


def sc(batch: Callable[[Inputs, Path], Path], *extra: str) -> Argv:
    return lambda i, w: ["score", str(batch(i, w)), "--out", str(w / "scores.csv"), *extra]


HEADER = "path,success,task_id\n"
GOOD_ROW = "traj_00000.npz,1,0\n"

CELLS: dict[str, tuple[Argv, str]] = {
    # -- train: YAML config, --set overrides, flags
    "train-config-missing": (tr(config=lambda i, w: w / "nope.yaml"), "nope.yaml does not exist"),
    "train-config-yaml-syntax": (tr(config=lambda i, w: write(w / "bad.yaml", "algo:\n  lr: [1e-5\n")),
                                 "bad.yaml is not valid YAML"),
    "train-config-not-a-mapping": (tr(config=lambda i, w: write(w / "list.yaml", "- 1\n- 2\n")),
                                   "must hold a mapping of config fields"),
    "train-config-unknown-key": (tr(config=lambda i, w: write(w / "k.yaml", "algo:\n  learning_rate: 1\n")),
                                 "unknown field(s) learning_rate in algo"),
    "train-config-wrong-type": (tr(config=lambda i, w: write(w / "t.yaml", "algo:\n  lr: fast\n")),
                                "algo.lr='fast' is invalid"),
    "train-config-binary-file": (tr(config=lambda i, w: i.batch), "batch.npz is not a text YAML file"),
    "train-config-is-a-directory": (tr(config=lambda i, w: i.labelled), "labelled is a directory, not a YAML file"),
    "train-set-no-equals": (tr("algo.lr"), "write it as key.path=value"),
    "train-set-unknown-field": (tr("algo.learning_rate=1"), "unknown field 'learning_rate'"),
    "train-set-bad-yaml-value": (tr("algo.lr=[1e-5"), "--set algo.lr=[1e-5: the value is not valid YAML"),
    "train-set-nan": (tr("algo.lr=.nan"), "algo.lr=nan is invalid"),
    "train-set-inf": (tr("algo.lr=.inf"), "algo.lr=inf is invalid: set it to a finite number"),
    "train-set-negative": (tr("algo.lr=-1"), "algo.lr=-1.0 is invalid"),
    "train-steps-zero": (tr("num_steps=0"), "num_steps=0 is invalid"),
    "train-set-not-an-integer": (tr("num_steps=2.5"), "num_steps=2.5 is invalid: set it to an integer"),
    "train-set-bool-as-integer": (tr("num_steps=true"), "num_steps=True is invalid: set it to an integer"),
    "train-set-not-a-bool": (tr("tensorboard=maybe"), "tensorboard='maybe' is invalid: set it to true or false"),
    "train-set-bad-choice": (tr("algo_name=ppo"), "algo_name='ppo' is invalid: choose one of 'srpo', 'grpo'"),
    "train-set-not-a-list": (tr("env.libero.task_ids=3"), "env.libero.task_ids=3 is invalid: set it to a list"),
    "train-set-not-a-string": (tr("policy.checkpoint=3"), "policy.checkpoint=3 is invalid: set it to a string"),
    "train-set-into-a-value": (tr("algo.lr.x=1"), "--set algo.lr.x: algo.lr is not a config section"),
    "train-config-section-not-a-mapping": (tr(config=lambda i, w: write(w / "s.yaml", "reward: 3\n")),
                                           "reward must be a mapping of its fields, got 3"),
    "train-openvla-on-tabletop": (lambda i, w: tr("policy.kind=openvla_oft", f"policy.checkpoint={i.labelled}")(i, w),
                                  "the OpenVLA-OFT checkpoints are trained on LIBERO; set env.kind=libero"),
    "train-run-dir-holds-checkpoints": (lambda i, w: [*TRAIN, "--run-dir", str(copy_of(i.run, w / "run")), *sets()],
                                        "already holds checkpoints: pass --resume"),
    "train-run-dir-is-a-file": (lambda i, w: [*TRAIN, "--run-dir", str(write(w / "f", "x")), *sets()],
                                "run_dir"),
    "train-policy-checkpoint-missing": (tr("policy.checkpoint=/nonexistent/ckpt"), "does not exist: run `srpo sft`"),
    "train-policy-checkpoint-is-a-file": (lambda i, w: tr(f"policy.checkpoint={i.batch}")(i, w),
                                          "is not a CompactVLA checkpoint directory (it is a file)"),
    "train-policy-checkpoint-truncated": (
        lambda i, w: tr(f"policy.checkpoint={_truncated_ckpt(i, w)}")(i, w), "is 100 bytes but its manifest says"),
    # -- train --resume: run directories and checkpoints
    "resume-run-dir-missing": (lambda i, w: ["train", "--resume", str(w / "norun")], "is not an srpo run directory"),
    "resume-no-checkpoint": (lambda i, w: ["train", "--resume", str(_config_only_run(i, w))], "nothing to resume"),
    "resume-config-yaml-syntax": (resume(lambda r: write(r / "config.yaml", "seed: [0\n")),
                                  "config.yaml is not valid YAML"),
    "resume-all-checkpoints-damaged": (
        resume(lambda r: [write(c / "trainer_state.pt", b"garbage\n") for c in sorted(r.glob("ckpt-*"))]),
        "no intact checkpoint to resume from: ckpt-000002: "),
    "resume-trainer-state-not-srpo": (
        resume(lambda r: [_torch_save(c / "trainer_state.pt", {"weights": 1}) for c in sorted(r.glob("ckpt-*"))]
               and [strip_manifest(c) for c in sorted(r.glob("ckpt-*"))]),
        "is not an srpo trainer state: expected keys step, optimizer, torch_rng"),
    "resume-trainer-state-pickled-code": (
        resume(lambda r: [_torch_save(c / "trainer_state.pt", {"step": 1, "hook": print}) and strip_manifest(c)
                          for c in sorted(r.glob("ckpt-*"))]),
        "is not a readable trainer state (Weights only load failed"),
    "resume-policy-weights-truncated": (
        resume(lambda r: [truncate(c / "policy" / "model.safetensors") for c in sorted(r.glob("ckpt-*"))]),
        "model.safetensors is 100 bytes but its manifest says"),
    "resume-steps-zero": (resume(lambda r: None, "--steps", "0"), "num_steps=0 is invalid"),
    "resume-trainer-state-missing": (
        resume(lambda r: [(c / "trainer_state.pt").unlink() or strip_manifest(c) for c in sorted(r.glob("ckpt-*"))]),
        "trainer_state.pt is missing: the checkpoint is incomplete"),
    "resume-trainer-state-negative-step": (
        resume(lambda r: [_torch_save(c / "trainer_state.pt", {"step": -1, "optimizer": {}, "torch_rng": 0})
                          and strip_manifest(c) for c in sorted(r.glob("ckpt-*"))]),
        "trainer_state.pt: step -1 is not a non-negative int"),
    # -- eval: checkpoints
    "eval-checkpoint-missing": (ev(lambda i, w: w / "nockpt"), "does not exist: run `srpo sft`"),
    "eval-checkpoint-truncated-weights": (ev(lambda i, w: _truncated_ckpt(i, w)),
                                          "model.safetensors is 100 bytes but its manifest says"),
    "eval-checkpoint-altered-weights": (
        ev(lambda i, w: _damaged(i, w, lambda p: p.write_bytes(p.read_bytes()[:-1] + b"\x00"))),
        "model.safetensors does not match the checksum in its manifest"),
    "eval-checkpoint-truncated-no-manifest": (
        ev(lambda i, w: strip_manifest(_damaged(i, w, truncate))),
        "model.safetensors is not a readable safetensors file"),
    "eval-checkpoint-config-not-json": (
        ev(lambda i, w: strip_manifest(_damaged(i, w, lambda p: write(p.parent / "config.json", "{")))),
        "config.json is not valid JSON"),
    "eval-checkpoint-config-other-tool": (
        ev(lambda i, w: strip_manifest(_damaged(i, w, lambda p: write(p.parent / "config.json", '{"model": 1}')))),
        "has format None, expected 'srpo.compact_vla'"),
    "eval-checkpoint-wrong-version": (
        ev(lambda i, w: strip_manifest(_damaged(i, w, lambda p: _set_version(p.parent / "config.json", 99)))),
        "is checkpoint version 99"),
    "eval-checkpoint-file-missing": (
        ev(lambda i, w: _damaged(i, w, lambda p: (p.parent / "action_tokenizer.json").unlink())),
        "action_tokenizer.json is missing (listed in"),
    "eval-checkpoint-manifest-not-json": (
        ev(lambda i, w: _damaged(i, w, lambda p: write(p.parent / "manifest.json", "{"))),
        "manifest.json is not valid JSON"),
    "eval-checkpoint-is-a-run-checkpoint": (ev(lambda i, w: copy_of(i.run, w / "run") / "ckpt-000001"),
                                            "did you mean"),
    "eval-episodes-zero": (lambda i, w: [*EVAL[:3], "--episodes", "0", "--checkpoint", str(i.checkpoint),
                                         "--out", str(w / "eval"), *sets()], "--episodes=0 is invalid"),
    "eval-videos-negative": (lambda i, w: [*EVAL[:5], "--videos", "-1", "--checkpoint", str(i.checkpoint),
                                           "--out", str(w / "eval"), *sets()], "--videos=-1 is invalid"),
    "eval-sample-temperature-zero": (lambda i, w: [*EVAL, "--sample-temperature", "0", "--checkpoint",
                                                   str(i.checkpoint), "--out", str(w / "eval"), *sets()],
                                     "temperature=0.0 is invalid for a sampled evaluation"),
    # -- sft: demos and the initial checkpoint
    "sft-demos-missing": (sft("--demos", "/nonexistent/demos.hdf5"), "/nonexistent/demos.hdf5 does not exist"),
    "sft-demos-empty-folder": (lambda i, w: sft("--demos", str(_mkdir(w / "empty")))(i, w), "no .hdf5 files found"),
    "sft-demos-not-hdf5": (lambda i, w: sft("--demos", str(write(w / "d.hdf5", b"not hdf5")))(i, w),
                           "d.hdf5 is not a readable LIBERO / robomimic demo file"),
    "sft-demos-other-layout": (lambda i, w: sft("--demos", str(hdf5_without_data_group(w / "o.hdf5")))(i, w),
                               "o.hdf5 is not a readable LIBERO / robomimic demo file"),
    "sft-init-truncated": (lambda i, w: sft("--env", "tabletop", "--init", str(_truncated_ckpt(i, w)))(i, w),
                           "is 100 bytes but its manifest says"),
    # -- reward-eval: labelled sets
    "reward-eval-data-missing-labels": (lambda i, w: re("--data", str(_mkdir(w / "nolabels")))(i, w),
                                        "no labels.csv"),
    "reward-eval-labels-missing-column": (re_data("path,success\ntraj_00000.npz,1\n"), "missing column(s)"),
    "reward-eval-labels-bad-success": (re_data(HEADER + "traj_00000.npz,maybe,0\n"),
                                       "success must be 1/0/true/false, got 'maybe'"),
    "reward-eval-labels-bad-task-id": (re_data(HEADER + "traj_00000.npz,1,zero\n"),
                                       "task_id must be an integer, got 'zero'"),
    "reward-eval-labels-file-missing": (re_data(HEADER + "gone.npz,1,0\n"), "gone.npz does not exist"),
    "reward-eval-labels-short-row": (re_data(HEADER + "traj_00000.npz,1\n"), "no cell for column(s) ['task_id']"),
    "reward-eval-labels-extra-cell": (re_data(HEADER + "traj_00000.npz,1,0,7\n"), "4 cells for 3 header columns"),
    "reward-eval-labels-header-only": (re_data(HEADER), "the labelled set is empty"),
    "reward-eval-npz-empty-file": (re_data(HEADER + "x.npz,1,0\n", **{"x.npz": b""}),
                                   "x.npz is not a readable .npz file (EOFError"),
    "reward-eval-npz-object-frames": (re_data(HEADER + "o.npz,1,0\n", **{"o.npz": np.array([None, 1], dtype=object)}),
                                      "o.npz: 'frames' is not a plain array"),
    "reward-eval-npz-no-frames": (lambda i, w: re("--data", str(_npz_without_frames(i, w)))(i, w),
                                  "no 'frames' array (found ['pixels'])"),
    "reward-eval-npz-truncated": (
        lambda i, w: re("--data", str(_truncated_npz_set(i, w)))(i, w), "traj_00000.npz is not a readable .npz"),
    "reward-eval-frames-wrong-shape": (re_data(HEADER + "bad.npz,1,0\n",
                                               **{"bad.npz": np.zeros((4, 16, 16), np.uint8)}),
                                       "frames must be (T, H, W, 3) uint8"),
    "reward-eval-num-cuts": (lambda i, w: re("--data", str(i.labelled), "--num-cuts", "1")(i, w),
                             "--num-cuts=1 is invalid"),
    # -- score: npz batches
    "score-batch-missing": (sc(lambda i, w: w / "none.npz"), "none.npz does not exist"),
    "score-batch-not-npz": (sc(lambda i, w: write(w / "b.npz", "a,b\n1,2\n")),
                            "b.npz is not a readable .npz file: not a zip archive of arrays"),
    "score-batch-is-npy": (sc(lambda i, w: _npy_named_npz(w / "b.npz")),
                           "b.npz is not a readable .npz file: not a zip"),
    "score-batch-truncated": (sc(lambda i, w: _truncated_copy(i.batch, w / "t.npz")), "t.npz is not a readable .npz"),
    "score-batch-missing-key": (sc(lambda i, w: batch_with(i, w, success=None)), "lacks success"),
    "score-batch-nan-embedding": (sc(lambda i, w: batch_with(i, w, embeddings=_with_nan(i))),
                                  "batch.npz: embeddings contain NaN or inf"),
    "score-batch-length-mismatch": (sc(lambda i, w: batch_with(i, w, success=np.ones(3, bool))), "batch.npz: "),
    # -- report: run directories
    "report-run-dir-missing": (lambda i, w: ["report", str(w / "norun")], "norun has no metrics.jsonl records"),
    "report-not-a-run-dir": (lambda i, w: ["report", str(i.labelled)], "has no metrics.jsonl records"),
    # -- compare: shares train's config path
    "compare-config-yaml-syntax": (lambda i, w: ["compare", "--preset", "tabletop", "--config",
                                                 str(write(w / "c.yaml", "a: [\n")), "--out", str(w / "cmp")],
                                   "c.yaml is not valid YAML"),
    "compare-steps-zero": (lambda i, w: ["compare", "--preset", "tabletop", "--steps", "0", "--out", str(w / "cmp")],
                           "num_steps=0 is invalid"),
}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _damaged(inputs: Inputs, work: Path, damage: Callable[[Path], object]) -> Path:
    ckpt = copy_of(inputs.checkpoint, work / "ckpt")
    damage(ckpt / "model.safetensors")
    return ckpt


def _truncated_ckpt(inputs: Inputs, work: Path) -> Path:
    return _damaged(inputs, work, truncate)


def _set_version(path: Path, version: int) -> None:
    meta = json.loads(path.read_text())
    meta["version"] = version
    path.write_text(json.dumps(meta))


def _npy_named_npz(path: Path) -> Path:
    with path.open("wb") as f:
        np.save(f, np.zeros((2, 3), np.float32))  # np.load reads it back as one array, not an archive
    return path


def _torch_save(path: Path, obj: object) -> Path:
    import torch

    torch.save(obj, path)
    return path


def _config_only_run(inputs: Inputs, work: Path) -> Path:
    run = _mkdir(work / "run")
    shutil.copy2(inputs.run / "config.yaml", run / "config.yaml")
    return run


def _truncated_copy(src: Path, dst: Path) -> Path:
    shutil.copy2(src, dst)
    truncate(dst, 200)
    return dst


def _truncated_npz_set(inputs: Inputs, work: Path) -> Path:
    folder = copy_of(inputs.labelled, work / "labelled")
    truncate(folder / "traj_00000.npz", 50)
    return folder


def _npz_without_frames(inputs: Inputs, work: Path) -> Path:
    folder = copy_of(inputs.labelled, work / "labelled")
    np.savez(folder / "traj_00000.npz", pixels=np.zeros((2, 16, 16, 3), np.uint8))
    return folder


def _with_nan(inputs: Inputs) -> np.ndarray:
    with np.load(inputs.batch) as data:
        emb = data["embeddings"].copy()
    emb[3, 0] = np.nan
    return emb


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[BaseException]]:
    """srpo.cli.main(argv), recording the exception each command function raised (if any)."""
    raised: list[BaseException] = []
    real_build = cli.build_parser

    def spying_build() -> object:
        parser = real_build()
        for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
            for sub in action.choices.values():
                func = sub.get_default("func")

                def spy(args: object, func: Callable[[object], int] = func) -> int:
                    try:
                        return func(args)
                    except BaseException as err:
                        raised.append(err)
                        raise

                sub.set_defaults(func=spy)
        return parser

    monkeypatch.setattr(cli, "build_parser", spying_build)
    return cli.main(argv), raised


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cell: str, inputs: Inputs, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    build, expected = CELLS[cell]
    monkeypatch.chdir(tmp_path)  # commands whose defaults write to runs/... write under the test's own folder
    argv = build(inputs, tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    inputs_before = snapshot(inputs.root)
    rc, raised = run_main(argv, monkeypatch)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"srpo {argv[0]}: error:")]
    assert rc == 2, f"exit status {rc}, stderr: {err}"
    assert raised and isinstance(raised[0], SrpoError), f"{type(raised[0]).__name__ if raised else None}: {err}"
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert snapshot(tmp_path) == before, "the failed command wrote or changed files"
    assert snapshot(inputs.root) == inputs_before


def test_resume_falls_back_to_the_newest_intact_checkpoint(inputs: Inputs, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The issue's case: the newest trainer_state.pt is damaged, the previous checkpoint is intact."""
    run = copy_of(inputs.run, tmp_path / "run")
    write(run / "ckpt-000002" / "trainer_state.pt", b"garbage\n")
    with caplog.at_level(logging.WARNING):
        rc = cli.main(["train", "--resume", str(run), "--steps", "2"])
    assert rc == 0
    assert f"checkpoint {run / 'ckpt-000002'} is damaged, skipping it" in caplog.text
    assert "resuming from" in caplog.text and "ckpt-000001" in caplog.text
    from srpo.manifest import verify_manifest

    verify_manifest(run / "ckpt-000002", required=True)  # step 2 re-run and written again, intact


def test_matrix_has_at_least_40_cells() -> None:
    assert len(CELLS) >= 40
    assert len({cell.split("-")[0] for cell in CELLS}) >= 8  # train, resume, eval, sft, reward-eval, score, ...


def test_reliability_doc_lists_every_cell_with_its_message() -> None:
    """docs/reliability.md's table is generated from CELLS (`python tests/test_bad_inputs.py`); a cell added or a
    message changed without regenerating it leaves the doc wrong, which this catches without running the cells."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    rows = {}
    for line in doc.splitlines():
        if line.startswith("| `") and line.count(" | ") >= 4:
            cell, message = line.split(" | ")[0].strip("| `"), line.split(" | ", 4)[4]
            rows[cell] = message.replace("\\|", "|")
    assert sorted(rows) == sorted(CELLS), "regenerate the table: PYTHONPATH=src python tests/test_bad_inputs.py"
    for cell, (_, expected) in CELLS.items():
        assert expected in rows[cell], f"{cell}: the doc's message lacks {expected!r}; regenerate the table"


def markdown_table() -> str:
    """The matrix as docs/reliability.md shows it: each cell's exact one-line message (temp paths as <tmp>)."""
    import contextlib
    import io
    import tempfile

    rows = ["| test id | command | input × fault | exit | message (stderr, one line) |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        built = build_inputs(_mkdir(Path(tmp) / "inputs"))
        for i, cell in enumerate(sorted(CELLS)):
            work = Path(tmp) / f"cell{i}"
            work.mkdir()
            build, _ = CELLS[cell]
            argv = build(built, work)
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.chdir(work):
                rc = cli.main(argv)
            line = next(x for x in err.getvalue().splitlines() if x.startswith(f"srpo {argv[0]}: error:"))
            line = line.replace(str(work), "<tmp>").replace(str(built.root), "<inputs>").replace("|", "\\|")
            command = "reward-eval" if cell.startswith("reward-eval") else cell.split("-")[0]
            rest = cell[len(command) + 1:]
            rows.append(f"| `{cell}` | {command} | {rest} | {rc} | `{line}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    print(markdown_table())
