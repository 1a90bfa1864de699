#!/usr/bin/env bash
# Retrains the two bundled lite demo models (testing only: random:0 loss network) with the
# recipe recorded in docs/validation/README.md, both at once, one CPU thread each, then
# exports them into models/. Takes about 100 minutes on a 2-core machine.
#
#   scripts/train_demo_models.sh [RUNS_DIR]
#
# Content: the bundled photos, ../shared/data/content and the frames of ../shared/data/video,
# never the held-aside test photos in assets/heldout (excluded by content, wherever a copy
# lies). 128 px crops (at equal CPU time 256 px crops did no better on the 256 px reports),
# the learning rate falling along a cosine to the last step.
set -euo pipefail
runs=${1:-runs}
shared=${SHARED_DATA:-../shared/data}
steps=${STEPS:-4000}
lr=${LR:-5e-4}  # reaches 2e-3's plateau in about half the steps (docs/validation/README.md)
loss=(--content-layers relu3_1 --style-layers relu1_1,relu2_1,relu3_1,relu4_1 --style-weight 1e5 --tv-weight 1)

train() {  # NAME STYLE
    local name=$1 style=$2 out=$runs/$1
    OMP_NUM_THREADS=1 stylecast train --style "$style" --content-dir assets/content \
        --content-dir "$shared/content" --content-dir "$shared/video" --exclude-dir assets/heldout \
        --out "$out" --network lite --style-size 256 --lr "$lr" --lr-schedule cosine \
        --vgg-weights random:0 "${loss[@]}" --sample-every 500 --checkpoint-every 100 \
        --no-export --image-size 128 --batch-size 4 --max-steps "$steps" --val-every 200
    stylecast export "$out" --name "$name" --models-dir models --description "lite network \
(16/32/64 channels, 3 residual blocks); $steps steps on 128 px crops (batch 4, lr $lr cosine) \
of the bundled photos and video frames, assets/heldout excluded (scripts/train_demo_models.sh); \
random VGG-19 loss network (content relu3_1, style relu1_1-relu4_1): testing only"
}

mkdir -p "$runs"
train starry_night_lite assets/styles/starry_night.jpg > "$runs/starry_night_lite.log" 2>&1 &
starry=$!
train great_wave_lite assets/styles/great_wave.jpg > "$runs/great_wave_lite.log" 2>&1 &
wave=$!
wait "$starry" && wait "$wave"  # a failed run fails the script (see its log)
