#!/usr/bin/env bash
# Retrains the two bundled demo models (testing only: random:0 loss network) with the
# recipe recorded in docs/validation/README.md, both at once, one CPU thread each, then
# exports them into models/. Takes about 75 minutes on a 2-core machine.
#
#   scripts/train_demo_models.sh [RUNS_DIR]
#
# Content: the bundled photos, ../shared/data/content and the frames of ../shared/data/video,
# never the held-aside test photos in assets/heldout (excluded by content, wherever a copy
# lies). Phase 1 trains at 128 px crops; phase 2 resumes at 256 px, the size the reports use.
set -euo pipefail
runs=${1:-runs}
shared=${SHARED_DATA:-../shared/data}
phase1_steps=${PHASE1_STEPS:-1200}
phase2_steps=${PHASE2_STEPS:-1500}
loss=(--content-layers relu3_1 --style-layers relu1_1,relu2_1,relu3_1,relu4_1 --style-weight 1e5 --tv-weight 1)

train() {  # NAME STYLE
    local name=$1 style=$2 out=$runs/$1
    local common=(--style "$style" --content-dir assets/content --content-dir "$shared/content"
        --content-dir "$shared/video" --exclude-dir assets/heldout --out "$out" --network lite
        --style-size 256 --lr 2e-3 --vgg-weights random:0 "${loss[@]}" --sample-every 250
        --checkpoint-every 100 --no-export)
    OMP_NUM_THREADS=1 stylecast train "${common[@]}" --image-size 128 --batch-size 4 \
        --max-steps "$phase1_steps" --val-every 250
    OMP_NUM_THREADS=1 stylecast train "${common[@]}" --resume last --image-size 256 \
        --batch-size 2 --max-steps "$phase2_steps" --val-every 100
}

train starry_night_lite assets/styles/starry_night.jpg > "$runs/starry_night_lite.log" 2>&1 &
train great_wave_lite assets/styles/great_wave.jpg > "$runs/great_wave_lite.log" 2>&1 &
wait
