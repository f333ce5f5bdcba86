"""The command line's contract: user errors are one line and exit status 2, bugs keep their tracebacks, a preset
applies only when named, and --resume refuses flags that would pick another config."""

from __future__ import annotations

from pathlib import Path

import pytest

from srpo import cli
from srpo.config.base import ConfigError
from srpo.config.reward import RewardConfig
from srpo.config.train import TrainConfig, load_config


def test_a_partial_yaml_starts_from_the_field_defaults_not_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "partial.yaml"
    path.write_text("num_steps: 3\nalgo:\n  lr: 1.0e-5\n")
    cfg = load_config(path)
    assert (cfg.num_steps, cfg.algo.lr) == (3, 1e-5)
    defaults = TrainConfig()
    assert cfg.env == defaults.env and cfg.policy == defaults.policy and cfg.env.kind == "tabletop"
    assert load_config(path, preset="cpu").env.kind == "libero"  # named: applied under the file


def test_unknown_reward_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'official', 'paper'"):
        RewardConfig.preset("bogus")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="preset='gpu' is invalid: choose one of 'cpu', 'tabletop', 'paper'"):
        TrainConfig.preset("gpu")  # type: ignore[arg-type]


@pytest.mark.parametrize("flags", [["--algo", "grpo"], ["--preset", "tabletop"], ["--config", "x.yaml"],
                                   ["--algo", "srpo", "--run-dir", "elsewhere"]])
def test_resume_refuses_flags_that_pick_another_config(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["train", "--resume", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be combined with --resume" in err
    assert all(f in err for f in flags if f.startswith("--"))


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tmp_path)]) == 2  # not a run directory: user input
    assert "no metrics.jsonl" in capsys.readouterr().err

    def broken(*args: object) -> None:
        raise ValueError("a bug, not bad input")

    import srpo.report

    monkeypatch.setattr(srpo.report, "build_report", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["report", str(tmp_path)])


def test_sft_flags_map_onto_the_typed_config(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["sft", "--env", "tabletop", "--tasks", "0", "2", "--steps", "7",
                                          "--lr", "1e-3", "--no-augment", "--out", str(tmp_path), "--eval-episodes",
                                          "0"])
    cfg = cli.sft_config_from_args(args)
    assert (cfg.env, cfg.tasks, cfg.out, cfg.num_eval_episodes_per_task) == ("tabletop", (0, 2), str(tmp_path), 0)
    assert (cfg.sft.num_steps, cfg.sft.learning_rate, cfg.sft.augment) == (7, 1e-3, False)
    with pytest.raises(ConfigError, match="exactly one demonstration source"):
        type(cfg)(out="x")
    # Flags left out take the config's own defaults (one place for every default).
    plain = cli.sft_config_from_args(cli.build_parser().parse_args(["sft", "--env", "tabletop", "--out", "x"]))
    assert plain == type(cfg)(out="x", env="tabletop")


def test_input_errors_raised_below_the_cli_are_srpo_errors() -> None:
    # The CLI catches only SrpoError: each of these is bad input (a config value, a file), not a bug.
    from srpo.distributed.cluster import ClusterResourceError
    from srpo.errors import InputFileError, MissingFileError, SrpoError
    from srpo.policies.compact import CheckpointError
    from srpo.reward.encoders.vjepa2 import CheckpointKeyError

    for error in (ClusterResourceError, CheckpointError, CheckpointKeyError, MissingFileError, ConfigError):
        assert issubclass(error, SrpoError), error
    assert issubclass(MissingFileError, InputFileError) and issubclass(MissingFileError, FileNotFoundError)


def test_scripted_demos_records_at_the_render_quality_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import srpo.envs.libero_scripted as scripted

    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(scripted, "measure_scripted_expert", lambda *args: calls.append(args) or {})
    assert cli.main(["scripted-demos", "--suite", "libero_spatial", "--task-ids", "0", "--num-episodes", "2",
                     "--demo-dir", str(tmp_path), "--render-quality", "lean"]) == 0
    assert cli.main(["scripted-demos", "--suite", "libero_spatial"]) == 0
    assert calls[0] == (["libero_spatial"], [0], 2, None, tmp_path, 128, "lean")
    assert calls[1][-1] == "full"  # LIBERO's own frames unless asked
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["scripted-demos", "--render-quality", "ultra"])
