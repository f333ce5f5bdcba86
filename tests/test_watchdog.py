"""The phase watchdog: a hung embed or update phase becomes a PhaseTimeoutError naming the phase, the step and
the config field; native code that ignores the interrupt ends the process with status 2 and no workers left."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from srpo.config.base import ConfigError
from srpo.config.train import load_config
from srpo.errors import PhaseTimeoutError
from srpo.trainer import Trainer
from srpo.watchdog import PhaseWatchdog


def hang(*args: object, **kwargs: object) -> None:
    time.sleep(3600)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory):
    cfg = load_config(preset="tabletop", overrides=[
        "env.tabletop.num_tasks=1", "env.tabletop.max_steps=8", "env.tabletop.image_size=32",
        "env.tabletop.embed_image_size=32", "encoder.name=pixel",
        "encoder.pixel_size=4", "encoder.num_frames=2", "policy.image_size=32",
        "policy.d_model=32", "policy.num_layers=1", "policy.num_heads=2", "policy.ff_dim=64", "policy.chunk_size=4",
        "algo.group_size=2", "algo.num_prompts_per_step=1", "num_eval_episodes_per_task=0", "tensorboard=false",
        "num_videos_per_step=0", "watchdog.embed_timeout_s=0.5", "watchdog.update_timeout_s=0.5",
        f"run_dir={tmp_path_factory.mktemp('wd') / 'run'}"])
    with Trainer(cfg, show_progress=False) as built:
        yield built


@pytest.mark.parametrize("phase", ["embed", "update"])
def test_a_hung_phase_is_an_error_naming_it(trainer: Trainer, monkeypatch: pytest.MonkeyPatch, phase: str):
    monkeypatch.setattr(trainer, phase, hang)
    start = time.monotonic()
    with pytest.raises(PhaseTimeoutError, match=rf"the {phase} phase at step 1 ran longer than "
                                                rf"watchdog\.{phase}_timeout_s=0\.5 s"):
        trainer.train_step()
    assert time.monotonic() - start < 600  # not the hour the phase would have slept


def test_a_phase_within_its_limit_is_untouched(trainer: Trainer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(trainer, "watchdog", PhaseWatchdog({"embed": 600.0, "update": 600.0}))
    metrics = trainer.train_step()
    assert "loss/policy" in metrics


def test_exception_handlers_inside_the_phase_cannot_swallow_the_timeout():
    watchdog = PhaseWatchdog({"update": 0.2})
    with pytest.raises(PhaseTimeoutError, match="update phase"), watchdog.watch("update"):
        try:  # noqa: SIM105 - a phase's own broad handler is the construct under test
            time.sleep(3600)
        except Exception:
            pass
    with watchdog.watch("update"):
        pass  # re-usable after a timeout


def test_no_limit_and_other_threads_are_not_watched():
    watchdog = PhaseWatchdog({"embed": 0.0})
    with watchdog.watch("embed"), watchdog.watch("unknown"):
        time.sleep(0.05)


def test_config_rejects_negative_limits():
    with pytest.raises(ConfigError, match=r"watchdog\.update_timeout_s=-1\.0 is invalid"):
        load_config(preset="tabletop", overrides=["watchdog.update_timeout_s=-1"])


def test_native_hang_that_ignores_the_interrupt_exits_2_and_kills_workers(tmp_path: Path):
    # SIGALRM blocked during the phase stands in for native code that never returns to the interpreter.
    script = textwrap.dedent(f"""
        import multiprocessing, signal, time
        from srpo.watchdog import PhaseWatchdog
        if __name__ == "__main__":
            worker = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(3600,), daemon=True)
            worker.start()
            open({str(tmp_path / "pid")!r}, "w").write(str(worker.pid))
            with PhaseWatchdog({{"embed": 0.3}}, grace_s=0.5).watch("embed", step=7):
                signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})
                time.sleep(3600)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "srpo: error: the embed phase at step 7 ran longer than watchdog.embed_timeout_s=0.3 s" in proc.stderr
    assert "did not return within watchdog.grace_s=0.5 s" in proc.stderr
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the worker outlived the watchdog's exit"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


