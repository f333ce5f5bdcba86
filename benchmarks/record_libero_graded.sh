#!/usr/bin/env bash
# Record the graded LIBERO labelled set for `srpo reward-eval` (issue #12): libero_spatial and libero_object,
# tasks 0 and 1 of each, initial states from the held-out eval split (40..49, never used for training), 10
# scripted successes and 15 graded failures per task (next_to_target, wrong_object, reach_only, drop, random,
# stall, noisy), every frame labelled with the stage and positions. Resumable: each kept episode is written at
# once, and a rerun continues where the folder stops. A first pass records 4 + 7 per task so every task has a
# usable set early; the second pass tops up to 10 + 15.
#
# Cost on a 2-core machine: ~25 ms a control step and ~150 ms a rendered frame when idle, so a frame every 6
# steps; about 1–3 minutes an episode, 100 episodes in all. Run in the background:
#   nice -n 10 bash benchmarks/record_libero_graded.sh > runs/libero_graded.log 2>&1 &
set -euo pipefail
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
OUT=${OUT:-runs/libero_graded}
PY=${PY:-python}
for counts in "4 7" "10 15"; do
  read -r num_success num_failure <<< "$counts"
  for suite in libero_spatial libero_object; do
    "$PY" -m srpo.cli reward-eval --record libero --suite "$suite" --tasks 0 1 --init-split eval \
      --num-success "$num_success" --num-failure "$num_failure" --frame-stride 6 --embed-size 128 \
      --record-dir "$OUT/$suite" --encoders pixel --no-plots --output-dir "$OUT/$suite/eval_pixel"
  done
done
