#!/bin/bash
# The held-out check (issue 11): backdoored models trained here with other targets, seeds, poison
# rates and trigger settings than the shipped ones (all shipped: target 0, seed 0), then the
# default preset run on them untouched through --checkpoint/--card. Rerun: bash benchmarks/heldout.sh
set -e
cd "$(dirname "$0")/.."
export PURIFY_LAB_CACHE=${PURIFY_LAB_CACHE:-$(mktemp -d)}
MODELS=${MODELS:-/tmp/heldout/models}
T="python -m purify_core train --dataset mnist5k --model smallcnn --no-clean-reference --out $MODELS --json"
$T --epochs 8 --attack blended --target 3 --seed 11 --poison-rate 0.05 --attack-param alpha=0.15 --attack-param pattern_seed=7
$T --epochs 8 --attack badnets --target 7 --seed 12 --poison-rate 0.05 --attack-param size=3 --attack-param position=top-left
$T --epochs 5 --attack sig --target 5 --seed 13 --poison-rate 0.1 --attack-param delta=0.6 --attack-param frequency=4
$T --epochs 8 --attack wanet --target 7 --seed 14 --poison-rate 0.08 --attack-param pattern_seed=3 --attack-param cross_ratio=1.0 --attack-param strength=1.0
# a second set, trained after the four above had been looked at while the distillation view and the
# classifier init were explored (issue 11): nothing was chosen on these
$T --epochs 8 --attack badnets --target 4 --seed 31 --poison-rate 0.03 --attack-param size=3 --attack-param position=top-right --attack-param pattern=random --attack-param pattern_seed=5
$T --epochs 8 --attack blended --target 9 --seed 32 --poison-rate 0.08 --attack-param alpha=0.25 --attack-param pattern=stripes
$T --epochs 8 --attack sig --target 2 --seed 33 --poison-rate 0.08 --attack-param delta=0.3 --attack-param frequency=8
$T --epochs 8 --attack wanet --target 1 --seed 34 --poison-rate 0.1 --attack-param grid_size=5 --attack-param pattern_seed=8 --attack-param cross_ratio=2.0 --attack-param strength=1.0
# a third set, trained after the 80% default was chosen (2026-11-26; the stripes Blended above, s32, had been looked at
# in that screen): nothing was chosen on these
$T --epochs 8 --attack badnets --target 2 --seed 41 --poison-rate 0.05 --attack-param size=4 --attack-param position=bottom-left --attack-param pattern=white
$T --epochs 8 --attack blended --target 6 --seed 42 --poison-rate 0.06 --attack-param alpha=0.15 --attack-param pattern=stripes
$T --epochs 8 --attack sig --target 8 --seed 43 --poison-rate 0.1 --attack-param delta=0.4 --attack-param frequency=6
$T --epochs 8 --attack wanet --target 3 --seed 44 --poison-rate 0.1 --attack-param grid_size=6 --attack-param pattern_seed=11 --attack-param strength=0.8
# a fourth set, trained after the turned-student default was chosen (2026-11-26): nothing was chosen on these
$T --epochs 8 --attack badnets --target 5 --seed 51 --poison-rate 0.04 --attack-param size=3 --attack-param position=bottom-right --attack-param pattern=random --attack-param pattern_seed=9
$T --epochs 8 --attack blended --target 1 --seed 52 --poison-rate 0.07 --attack-param alpha=0.2 --attack-param pattern_seed=13
$T --epochs 8 --attack sig --target 4 --seed 53 --poison-rate 0.1 --attack-param delta=0.5 --attack-param frequency=5
$T --epochs 8 --attack wanet --target 9 --seed 54 --poison-rate 0.1 --attack-param grid_size=4 --attack-param pattern_seed=21 --attack-param strength=0.9
# each model with the defaults, as a user would run it (no tuning flags), on the scenario's own clean set:
for card in "$MODELS"/*.json; do
  python -m purify_core purify --checkpoint "${card%.json}.safetensors" --card "$card" --json
done
# the same, collected into benchmarks/heldout.md and .json:
python -m purify_core bench heldout --models "$MODELS" --seeds 3
