"""`srpo reward-eval`: the evaluation maths on hand-made embeddings, data loading, recording, and the command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from srpo.cli import build_parser, reward_eval_config_from_args
from srpo.config.encoder import EncoderConfig
from srpo.config.reward import RewardConfig
from srpo.config.reward_eval import RewardEvalConfig
from srpo.errors import SrpoError
from srpo.reward.encoders import make_encoder
from srpo.reward_eval import (
    METRIC_NAMES,
    TABLETOP_FAILURE_KINDS,
    LabelledSet,
    embed_prefixes,
    evaluate_embeddings,
    format_table,
    load_folder,
    prefix_lengths,
    record_tabletop,
    run_reward_eval,
    save_folder,
)


def _moving_square(num_frames: int, stop_at: float, size: int = 16) -> np.ndarray:
    """A white square moving left → right on black; it stops at fraction `stop_at` of the way."""
    video = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = round(min(t / (num_frames - 1), stop_at) * (size - 4))
        video[t, 6:10, x : x + 4] = 255
    return video


def _synthetic_set(seed: int = 0) -> LabelledSet:
    rng = np.random.default_rng(seed)
    videos, success, tasks = [], [], []
    for task in (0, 1):
        for i in range(3):
            videos.append(_moving_square(10 + i, 1.0))
            success.append(True)
            tasks.append(task)
        for stop in (0.2, 0.5):
            videos.append(_moving_square(12 + int(rng.integers(3)), stop))
            success.append(False)
            tasks.append(task)
    names = [f"traj{i}" for i in range(len(videos))]
    return LabelledSet(videos, np.array(success), np.array(tasks, dtype=np.int64), names)


def _parse(argv: list[str]) -> RewardEvalConfig:
    """The typed config `srpo reward-eval ARGV` runs with (flags parsed and mapped by srpo.cli)."""
    return reward_eval_config_from_args(build_parser().parse_args(["reward-eval", *argv]))


def test_prefix_lengths_by_hand() -> None:
    assert prefix_lengths(10, 4).tolist() == [3, 5, 8, 10]  # ceil(2.5), 5, ceil(7.5), 10
    assert prefix_lengths(2, 4).tolist() == [1, 1, 2, 2]
    assert prefix_lengths(7, 1).tolist() == [7]


def test_metrics_on_hand_made_embeddings() -> None:
    # 1-D embeddings: successes walk 0 → 1 (prefix j of C at j / C), failures stay near 0. Every success curve
    # rises strictly (SC = Mono = 1) and the scores separate completely.
    num_cuts = 5
    n_succ, n_fail = 4, 3
    walk = np.arange(1, num_cuts + 1) / num_cuts
    succ = walk[None, :, None] + 0.01 * np.arange(n_succ)[:, None, None]
    fail = 0.05 * np.ones((n_fail, num_cuts, 1)) + 0.01 * np.arange(n_fail)[:, None, None]
    prefixes = np.concatenate([succ, fail]).astype(np.float32)
    success = np.array([True] * n_succ + [False] * n_fail)
    data = LabelledSet(
        [np.zeros((1, 2, 2, 3), np.uint8)] * 7, success, np.zeros(7, dtype=np.int64), [str(i) for i in range(7)]
    )
    report = evaluate_embeddings(prefixes, data, RewardConfig(), name="hand")
    assert report.metrics["sc"] == pytest.approx(1.0)
    assert report.metrics["mono"] == pytest.approx(1.0)
    assert report.rewards[success].tolist() == [1.0] * n_succ
    assert (report.rewards[~success] < 0.6).all()
    # Successes score near the top of (0, 0.6), failures near the bottom: every failure below every success.
    assert report.scores[~success].max() < report.scores[success].min()
    assert report.metrics["smd"] > 5.0
    assert report.metrics["js"] == pytest.approx(1.0)  # disjoint histograms
    assert report.metrics["mmd"] > 0.5
    # A constant failure curve (the failure prefixes all sit at 0.05 + offset) has SC 0 and Mono 1.
    assert report.extra["sc_failures"] == pytest.approx(0.0)
    assert "hand" in format_table([report])


def test_curve_that_walks_away_then_returns_has_negative_sc() -> None:
    # Success prefixes start at the success point (1.0), walk away to 3.0 and the whole trajectory is back at 1.0
    # (the last cut is always the whole trajectory). Progress: high, mid, low, high.
    prefixes = np.array(
        [[1.0, 2.0, 3.0, 1.0], [1.01, 2.01, 3.01, 1.01], [3.0, 3.0, 3.0, 3.0]], dtype=np.float32
    )[..., None]
    data = LabelledSet([np.zeros((1, 2, 2, 3), np.uint8)] * 3, np.array([True, True, False]),
                       np.zeros(3, dtype=np.int64), ["a", "b", "c"])
    report = evaluate_embeddings(prefixes, data, RewardConfig())
    curve = report.curves[0]
    assert curve[0] == pytest.approx(curve[3]) and curve[0] > curve[1] > curve[2]
    # Spearman of ranks (3.5, 2, 1, 3.5) with (1, 2, 3, 4): cov −0.5 / sqrt(5 · 4.5).
    assert report.metrics["sc"] == pytest.approx(-0.5 / np.sqrt(22.5))
    assert report.metrics["mono"] == pytest.approx(1 / 3)  # down, down, up


def test_nearest_centres_score_each_success_leave_one_out() -> None:
    """With nearest centres a success would be its own centre (distance 0, the top score); reward-eval scores it
    against the other successes. 1-D whole embeddings: successes 0, 0.1, 10 and a failure at 5 (official
    constants: d_norm = min-max of nearest distances, score 0.6 · sigmoid(10 · (0.5 − d_norm)))."""
    whole = np.array([0.0, 0.1, 10.0, 5.0])
    prefixes = np.repeat(whole[:, None, None], 2, axis=1).astype(np.float32)  # (4, 2 cuts, 1)
    data = LabelledSet([np.zeros((1, 2, 2, 3), np.uint8)] * 4, np.array([True, True, True, False]),
                       np.zeros(4, dtype=np.int64), ["a", "b", "c", "f"])
    report = evaluate_embeddings(prefixes, data, RewardConfig(centres="nearest"))

    def shaped(d: np.ndarray) -> np.ndarray:
        d_norm = (d - d.min()) / (d.max() - d.min())
        return 0.6 / (1 + np.exp(-10 * (0.5 - d_norm)))

    # The outlier success (10) against {0, 0.1}: nearest distances of the task's rows 0.1, 0, 9.9, 4.9.
    expected_outlier = shaped(np.array([0.1, 0.0, 9.9, 4.9]))[2]
    # The failure keeps the full reference set: distances 0, 0.1, 0, 4.9 → the farthest, the lowest score.
    expected_failure = shaped(np.array([0.0, 0.1, 0.0, 4.9]))[3]
    assert report.scores[2] == pytest.approx(expected_outlier)
    assert report.scores[3] == pytest.approx(expected_failure)
    assert report.scores[2] < 0.01 < 0.3 < report.scores[0]  # no success scores the maximum by construction
    # The outlier and the failure are each the farthest row of their scoring (d_norm 1): a tie, counted 1/2.
    assert report.scores[2] == pytest.approx(report.scores[3])
    assert report.metrics["auroc"] == pytest.approx(2.5 / 3)


def test_task_without_success_is_unreferenced() -> None:
    prefixes = np.array([[[0.0], [1.0]], [[0.0], [0.5]], [[2.0], [2.0]]], dtype=np.float32)
    data = LabelledSet([np.zeros((1, 2, 2, 3), np.uint8)] * 3, np.array([True, False, False]),
                       np.array([0, 0, 1]), ["a", "b", "c"])
    report = evaluate_embeddings(prefixes, data, RewardConfig())
    assert np.isnan(report.scores[2]) and np.isnan(report.curves[2]).all()
    assert report.extra["num_unreferenced"] == 1.0
    assert report.rewards[2] == 0.0  # no reference: the failure keeps the no-reference reward


def test_fast_prefix_path_equals_encoding_prefix_videos() -> None:
    encoder = make_encoder(EncoderConfig(name="pixel", num_frames=6, pixel_size=4))

    class Plain:
        dim = encoder.dim

        def encode(self, videos: list[np.ndarray]) -> np.ndarray:
            return encoder.encode(videos)

    videos = _synthetic_set().videos[:3]
    np.testing.assert_allclose(embed_prefixes(encoder, videos, 4), embed_prefixes(Plain(), videos, 4), atol=1e-6)


def test_folder_round_trip_and_label_errors(tmp_path: Path) -> None:
    data = _synthetic_set()
    save_folder(data, tmp_path / "set", extra={"kind": ["x"] * len(data.videos)})
    loaded = load_folder(tmp_path / "set")
    assert loaded.success.tolist() == data.success.tolist()
    assert loaded.task_ids.tolist() == data.task_ids.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(loaded.videos, data.videos, strict=True))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "labels.csv").write_text("path,success\nx.npz,1\n")
    with pytest.raises(ValueError, match="missing column"):
        load_folder(tmp_path / "bad")
    np.savez(tmp_path / "bad" / "empty.npz", frames=np.zeros((0, 4, 4, 3), np.uint8))
    (tmp_path / "bad" / "labels.csv").write_text("path,success,task_id\nempty.npz,maybe,0\n")
    with pytest.raises(ValueError, match="success must be"):
        load_folder(tmp_path / "bad")
    (tmp_path / "bad" / "labels.csv").write_text("path,success,task_id\nempty.npz,0,0\n")
    with pytest.raises(ValueError, match="zero frames"):
        load_folder(tmp_path / "bad")


def _aligned_fields() -> dict[str, object]:
    """Every field of a two-trajectory LabelledSet, aligned: "a" has 3 frames, "b" has 2."""
    videos = [np.zeros((3, 2, 2, 3), np.uint8), np.zeros((2, 2, 2, 3), np.uint8)]
    return {
        "videos": videos, "success": np.array([True, False]), "task_ids": np.zeros(2, dtype=np.int64),
        "names": ["a", "b"], "kinds": ["success", "stall"], "stages": np.array([4, 1]),
        "frame_stages": [np.array([0, 2, 4]), np.array([0, 1])],
        "gripper_pos": [np.zeros((3, 3), np.float32), np.zeros((2, 3), np.float32)],
        "object_pos": [np.zeros((3, 3), np.float32), np.zeros((2, 3), np.float32)],
    }


def test_aligned_labelled_set_is_accepted() -> None:
    data = LabelledSet(**_aligned_fields())  # type: ignore[arg-type]
    first = data.head(1)
    assert first.names == ["a"] and first.kinds == ["success"]
    assert first.stages is not None and first.stages.tolist() == [4]
    assert first.frame_stages is not None and first.frame_stages[0].tolist() == [0, 2, 4]


@pytest.mark.parametrize(("field", "value", "message"), [
    # The per-trajectory arrays must each hold one entry per video.
    ("success", np.array([True, False, True]), r"2 videos but success \(3,\), task_ids \(2,\), 2 names"),
    ("success", np.array([[True], [False]]), r"2 videos but success \(2, 1\)"),
    ("task_ids", np.zeros(1, dtype=np.int64), r"2 videos but success \(2,\), task_ids \(1,\), 2 names"),
    ("names", ["a", "b", "c"], r"task_ids \(2,\), 3 names"),
    ("kinds", ["success"], r"labelled set: 2 videos but 1 kinds"),
    ("kinds", ["success", "stall", "drop"], r"labelled set: 2 videos but 3 kinds"),
    ("stages", np.array([4, 1, 0]), r"labelled set: 2 videos but stages of shape \(3,\)"),
    ("stages", np.array([[4], [1]]), r"labelled set: 2 videos but stages of shape \(2, 1\)"),
    # A list of per-frame arrays must hold one array per video ...
    ("frame_stages", [np.array([0, 2, 4])], r"labelled set: 2 videos but 1 frame_stages arrays"),
    ("gripper_pos", [np.zeros((3, 3))] * 3, r"labelled set: 2 videos but 3 gripper_pos arrays"),
    ("object_pos", [], r"labelled set: 2 videos but 0 object_pos arrays"),
    # ... and each array one row per frame of its video.
    ("frame_stages", [np.array([0, 2]), np.array([0, 1])],
     r"a: frame_stages must have shape \(3,\) \(one row per frame\), got \(2,\)"),
    ("frame_stages", [np.array([0, 2, 4]), np.zeros((2, 1))],
     r"b: frame_stages must have shape \(2,\) \(one row per frame\), got \(2, 1\)"),
    ("gripper_pos", [np.zeros((3, 3)), np.zeros((2, 2))],
     r"b: gripper_pos must have shape \(2, 3\) \(one row per frame\), got \(2, 2\)"),
    ("object_pos", [np.zeros(3), np.zeros((2, 3))],
     r"a: object_pos must have shape \(3, 3\) \(one row per frame\), got \(3,\)"),
])
def test_misaligned_labelled_set_names_the_bad_field(field: str, value: object, message: str) -> None:
    fields = _aligned_fields()
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        LabelledSet(**fields)  # type: ignore[arg-type]


def test_reward_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _synthetic_set()
    save_folder(data, tmp_path / "set")
    args = _parse([
        "--data", str(tmp_path / "set"), "--encoders", "pixel", "--num-frames", "8", "--num-cuts", "4",
        "--output-dir", str(tmp_path / "out"), "--device", "cpu",
    ])
    assert run_reward_eval(args) == 0
    printed = capsys.readouterr().out
    assert "SC" in printed and "pixel" in printed
    result = json.loads((tmp_path / "out" / "reward_eval.json").read_text())
    assert result["num_trajectories"] == 10 and result["num_success"] == 6 and result["num_tasks"] == 2
    pixel = result["encoders"]["pixel"]
    assert set(pixel["metrics"]) == set(METRIC_NAMES)
    # Without stage labels the stage metrics are undefined (null); the rest are numbers.
    label_free = {"sc", "mono", "mmd", "js", "smd", "auroc"}
    assert all(pixel["metrics"][k] is not None for k in label_free)
    assert all(pixel["metrics"][k] is None for k in set(METRIC_NAMES) - label_free)
    rows = pixel["trajectories"]
    assert [r["reward"] for r in rows if r["success"]] == [1.0] * 6
    assert all(0.0 <= r["reward"] < 0.6 for r in rows if not r["success"])
    assert all(len(r["curve"]) == 4 for r in rows)
    # The stopped squares are farther from the success cluster than any success in pixel space.
    assert pixel["extra"]["score_mean_success"] > pixel["extra"]["score_mean_failure"]
    assert (tmp_path / "out" / "reward_eval.png").stat().st_size > 10_000


def test_record_tabletop_labels_follow_the_env(tmp_path: Path) -> None:
    num_failure = len(TABLETOP_FAILURE_KINDS)
    data = record_tabletop([0], num_success=1, num_failure=num_failure, seed=0)
    assert data.kinds == ["success", *TABLETOP_FAILURE_KINDS]
    assert data.success.tolist() == [True] + [False] * num_failure
    assert data.task_ids.tolist() == [0] * (1 + num_failure)
    # Every failure runs to the horizon: reset frame + 64 steps.
    assert all(v.shape[0] == 65 for v in data.videos[1:])
    assert data.videos[0].shape[0] < 65 and data.videos[0].dtype == np.uint8
    assert data.stages is not None and data.frame_stages is not None
    assert data.gripper_pos is not None and data.object_pos is not None
    stage = dict(zip(data.kinds, data.stages.tolist(), strict=True))
    # The env's stages (none 0, reach 1, grasp 2, carry 3, place 4): a success places, the graded failures
    # stop where their script stops.
    assert stage["success"] == 4
    assert stage["reach_only"] == 1
    assert stage["drop"] == 2 and stage["next_to_target"] == 2
    assert stage["random"] <= 1 and stage["wrong_object"] <= 1
    for i in range(len(data.videos)):
        assert data.frame_stages[i].max() == data.stages[i]
        assert data.gripper_pos[i].shape == data.object_pos[i].shape == (data.videos[i].shape[0], 3)
    # The block moves only while held: then it sits under the gripper (same x, y, z); at rest its z is 0.
    drop = data.kinds.index("drop")
    held = data.frame_stages[drop] == 2
    np.testing.assert_allclose(data.object_pos[drop][held], data.gripper_pos[drop][held], atol=1e-6)
    assert (data.object_pos[drop][~held][:, 2] == 0).all()
    # The labels survive the folder round trip.
    loaded = load_folder(save_folder(data, tmp_path / "set"))
    assert loaded.kinds == data.kinds and loaded.stages is not None
    assert loaded.stages.tolist() == data.stages.tolist()
    assert loaded.frame_stages is not None and loaded.object_pos is not None
    np.testing.assert_array_equal(loaded.object_pos[drop], data.object_pos[drop])


def test_stage_metrics_follow_the_reward_order() -> None:
    # One task, 1-D embeddings: two successes at 1.0; failures at 0.0, 0.3, 0.6 whose stages are 0, 1, 2 — the
    # reward (closer to the success centre is higher) ranks them exactly as the stages do.
    whole = np.array([1.0, 1.02, 0.0, 0.3, 0.6])
    prefixes = np.repeat(whole[:, None, None], 3, axis=1).astype(np.float32)
    # Failure 3 moves towards the successes during cut 0 → 1 while its stage rises 0 → 1, then stops.
    prefixes[3, 0, 0] = 0.0
    frame_stages = [np.array([4, 4, 4, 4]), np.array([4, 4, 4, 4]), np.zeros(4, dtype=np.int64),
                    np.array([0, 0, 1, 1]), np.array([2, 2, 2, 2])]
    data = LabelledSet(
        [np.zeros((4, 2, 2, 3), np.uint8)] * 5, np.array([True, True, False, False, False]),
        np.zeros(5, dtype=np.int64), list("abcde"), stages=np.array([4, 4, 0, 1, 2]), frame_stages=frame_stages,
    )
    report = evaluate_embeddings(prefixes, data, RewardConfig())
    assert report.metrics["stage_rho"] == pytest.approx(1.0)
    assert report.metrics["stage_rho_task"] == pytest.approx(1.0)
    assert report.metrics["auroc"] == 1.0
    # Only failure 3 made progress (cuts of 4 frames in 3: lengths 2, 3, 4 → stages 0, 1, 1): its curve rose
    # with the stage (rho 1: the two equal stages tie, as do the two equal curve points) and stayed flat after.
    assert report.metrics["fail_curve_rho"] == pytest.approx(1.0)
    curve = report.curves[3]
    assert curve[1] > curve[0] and report.metrics["fail_rise"] == pytest.approx(curve[1] - curve[0])
    assert report.metrics["fail_after"] == pytest.approx(0.0)
    # Reversed stages: the reward now orders failures against their progress.
    reversed_data = LabelledSet(data.videos, data.success, data.task_ids, data.names,
                                stages=np.array([4, 4, 2, 1, 0]))
    assert evaluate_embeddings(prefixes, reversed_data, RewardConfig()).metrics["stage_rho"] == pytest.approx(-1.0)


def test_record_then_evaluate_through_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse([
        "--record", "tabletop", "--tasks", "1", "--num-success", "2", "--num-failure", "3", "--encoders", "pixel",
        "--num-frames", "8", "--num-cuts", "3", "--output-dir", str(tmp_path), "--no-plots",
    ])
    assert run_reward_eval(args) == 0
    with (tmp_path / "labelled" / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["kind"] for r in rows] == ["success", "success", *TABLETOP_FAILURE_KINDS[:3]]
    assert [r["stage"] for r in rows][:2] == ["4", "4"]
    assert not (tmp_path / "reward_eval.png").exists()
    assert "AUROC" in capsys.readouterr().out
    result = json.loads((tmp_path / "reward_eval.json").read_text())
    assert result["encoders"]["pixel"]["metrics"]["stage_rho"] is not None
    assert result["encoders"]["pixel"]["trajectories"][2]["kind"] == TABLETOP_FAILURE_KINDS[0]


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(SrpoError, match="--num-cuts"):
        run_reward_eval(_parse(["--data", str(tmp_path), "--num-cuts", "1"]))
    with pytest.raises(SrpoError, match="out of range"):
        run_reward_eval(_parse(["--record", "tabletop", "--tasks", "99", "--output-dir", str(tmp_path)]))


@pytest.mark.libero
@pytest.mark.slow
def test_record_libero_labels_follow_the_env() -> None:
    pytest.importorskip("libero")
    from srpo.reward_eval import record_libero

    data = record_libero("libero_spatial", [0], num_success=1, num_failure=1, seed=0, embed_size=64)
    assert data.kinds == ["success", "stall"]
    assert data.success.tolist() == [True, False]
    assert data.task_ids.tolist() == [0, 0]
    assert data.videos[0].shape[1:] == (64, 64, 3)


def test_flags_map_onto_the_typed_config() -> None:
    # The parser's defaults are the config's defaults, and every flag lands on its field.
    assert _parse(["--record", "tabletop"]) == RewardEvalConfig(record="tabletop")
    cfg = _parse(["--hdf5", "a.hdf5", "b.hdf5", "--encoders", "pixel", "--num-cuts", "4", "--no-plots",
                  "--crop-size", "64", "--reward-preset", "paper", "--max-trajectories", "3"])
    assert cfg.hdf5 == ("a.hdf5", "b.hdf5") and cfg.encoders == ("pixel",) and cfg.num_cuts == 4
    assert not cfg.plots and cfg.crop_size == 64 and cfg.reward_preset == "paper" and cfg.max_trajectories == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one source"),
    ({"data": "d", "record": "tabletop"}, "exactly one source"),
    ({"data": "d", "encoders": ("pixel", "pixel")}, "without duplicates"),
    ({"data": "d", "encoders": ("clip",)}, "--encoders"),
    ({"data": "d", "tasks": ()}, "--tasks"),
    ({"data": "d", "crop_size": 4}, "--crop-size"),
    ({"data": "d", "centres": "median"}, "--centres"),
    ({"data": "d", "alpha": 1.5}, "--alpha"),
    ({"record": "tabletop", "num_success": 0, "num_failure": 0}, "at least one trajectory"),
])
def test_config_rejects_bad_values_with_the_flag_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SrpoError, match=message):
        RewardEvalConfig(**kwargs)  # type: ignore[arg-type]


def test_whiten_flag_reaches_the_reward_and_names_the_row(tmp_path: Path) -> None:
    data = _synthetic_set()
    save_folder(data, tmp_path / "set")
    cfg = _parse(["--data", str(tmp_path / "set"), "--encoders", "pixel", "--num-frames", "8", "--num-cuts", "3",
                  "--output-dir", str(tmp_path / "out"), "--no-plots", "--whiten"])
    assert cfg.whiten
    assert run_reward_eval(cfg) == 0
    result = json.loads((tmp_path / "out" / "reward_eval.json").read_text())
    assert list(result["encoders"]) == ["pixel+white"] and result["settings"]["whiten"] is True


def test_centres_and_alpha_flags_reach_the_reward_and_name_the_row(tmp_path: Path) -> None:
    """--centres nearest and --alpha 0.5 change the failures' rewards (alpha halves them) and name the row."""
    data = _synthetic_set()
    save_folder(data, tmp_path / "set")
    base = ["--data", str(tmp_path / "set"), "--encoders", "pixel", "--num-frames", "8", "--num-cuts", "3",
            "--no-plots"]
    results = {}
    for tag, extra in (("plain", []), ("nearest", ["--centres", "nearest"]), ("half", ["--alpha", "0.5"])):
        cfg = _parse([*base, "--output-dir", str(tmp_path / tag), *extra])
        assert run_reward_eval(cfg) == 0
        results[tag] = json.loads((tmp_path / tag / "reward_eval.json").read_text())
    assert list(results["nearest"]["encoders"]) == ["pixel+nearest"]
    assert list(results["half"]["encoders"]) == ["pixel+alpha0.5"]
    assert results["nearest"]["settings"]["centres"] == "nearest" and results["half"]["settings"]["alpha"] == 0.5

    def final_failure_rewards(result: dict, row: str) -> np.ndarray:
        return np.array([t["reward"] for t in result["encoders"][row]["trajectories"] if not t["success"]])

    plain = final_failure_rewards(results["plain"], "pixel")
    half = final_failure_rewards(results["half"], "pixel+alpha0.5")
    assert plain.max() > 0
    np.testing.assert_allclose(half, 0.5 * plain, rtol=1e-6)
