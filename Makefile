# Fresh-machine entry points: `make run` (the main job on CPU defaults) and `make test` (the test suite).
# Both create .venv with Python >= 3.10 and install what they need; torch comes from `pip install torch==2.13.0`
# first so that no CUDA build is pulled in on CPU machines.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip -q --disable-pip-version-check
TEST_EXTRAS := dev,vjepa,openvla,logging,distributed

.PHONY: run test venv lint bench clean robust

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0

$(VENV)/.test-deps: $(BIN)/python pyproject.toml
	$(PIP) install -e ".[$(TEST_EXTRAS)]"
	touch $@

$(VENV)/.run-deps: $(VENV)/.test-deps
	$(PIP) install -e ".[$(TEST_EXTRAS),libero]"
	touch $@

venv: $(VENV)/.test-deps

# The main job: SRPO on two LIBERO-Spatial tasks from the shipped lean-frame SFT checkpoint, CPU defaults. LIBERO renders
# headless through Mesa's EGL (llvmpipe) on a machine without a GPU.
run: $(VENV)/.run-deps
	MUJOCO_GL=egl PYOPENGL_PLATFORM=egl $(BIN)/srpo train --preset cpu --report --run-dir runs/cpu-$$(date +%Y%m%d-%H%M%S)

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest

# Robustness benchmarks (srpo eval --benchmark libero-plus): LIBERO-Plus runs in its own venv, because it needs
# MuJoCo 3 and the main venv's LIBERO pins MuJoCo 2.3.7 (README "Robustness"). Neither `make run` nor `make test`
# needs it. LIBERO-PRO needs nothing beyond `make run`'s venv.
ROBUST_VENV ?= .venv-robust

$(ROBUST_VENV)/.robust-deps: pyproject.toml
	$(PYTHON) -m venv $(ROBUST_VENV)
	$(ROBUST_VENV)/bin/pip -q --disable-pip-version-check install --upgrade pip
	$(ROBUST_VENV)/bin/pip -q --disable-pip-version-check install torch==2.13.0
	$(ROBUST_VENV)/bin/pip -q --disable-pip-version-check install -e ".[robust]"
	@$(ROBUST_VENV)/bin/python -c "import wand.image" || { echo "LIBERO-Plus needs ImageMagick's MagickWand \
	library: apt-get install libmagickwand-6.q16-6 (or libmagickwand-dev), then run make robust again"; exit 1; }
	touch $@

robust: $(ROBUST_VENV)/.robust-deps $(VENV)/.run-deps

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(VENV)/.test-deps
	$(BIN)/python benchmarks/reward_step.py

clean:
	rm -rf $(VENV) $(ROBUST_VENV) .pytest_cache .mypy_cache .ruff_cache
