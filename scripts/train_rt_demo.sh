#!/usr/bin/env bash
# Trains the bundled real-time demo model (testing only: random:0 loss network) and exports
# it into models/ twice: fp32 (starry_night_rt) and int8 (starry_night_rt_int8, calibrated on
# the bundled photos). About 25 minutes on one core of a 2-core machine.
#
#   scripts/train_rt_demo.sh [RUNS_DIR]            the demo model
#   COMPARE=1 scripts/train_rt_demo.sh [RUNS_DIR]  also the standard and plain rt networks
#                                                 with identical settings (README's table)
#
# Same content, loss and held-aside photos as scripts/train_demo_models.sh; 800 steps on
# 128 px crops. The rt network is distilled from the bundled lite model (--teacher), which
# was trained longer and at 256 px.
set -euo pipefail
runs=${1:-runs}
shared=${SHARED_DATA:-../shared/data}
steps=${STEPS:-800}
loss=(--content-layers relu3_1 --style-layers relu1_1,relu2_1,relu3_1,relu4_1 --style-weight 1e5 --tv-weight 1)
mkdir -p "$runs"

train() {  # NAME NETWORK [EXTRA...]
    local name=$1 network=$2
    shift 2
    OMP_NUM_THREADS=1 stylecast train --style assets/styles/starry_night.jpg \
        --content-dir assets/content --content-dir "$shared/content" --content-dir "$shared/video" \
        --exclude-dir assets/heldout --out "$runs/$name" --network "$network" --style-size 256 \
        --lr 2e-3 --vgg-weights random:0 "${loss[@]}" --sample-every 250 --checkpoint-every 100 \
        --no-export --image-size 128 --batch-size 4 --max-steps "$steps" --val-every 200 "$@" \
        > "$runs/$name.log" 2>&1
}

train starry_night_rt_distil rt --teacher models/starry_night_lite --teacher-weight 20 &
if [[ ${COMPARE:-0} == 1 ]]; then
    train starry_night_rt rt &
    train starry_night_standard standard &
fi
wait
stylecast export "$runs/starry_night_rt_distil" --name starry_night_rt --models-dir models \
    --description "real-time CPU tier (rt), distilled from starry_night_lite; testing only"
stylecast export "$runs/starry_night_rt_distil" --name starry_night_rt_int8 --models-dir models \
    --int8 --calibration-dir assets/content \
    --description "starry_night_rt quantised to int8; testing only"
