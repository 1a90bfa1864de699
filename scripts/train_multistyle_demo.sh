#!/usr/bin/env bash
# Trains the bundled multi-style demo model (testing only: random:0 loss network): one lite
# network holding starry_night and great_wave, exported to models/two_styles_lite.
#
#   scripts/train_multistyle_demo.sh [RUNS_DIR]            the demo model
#   COMPARE=1 scripts/train_multistyle_demo.sh [RUNS_DIR]  also each style alone and the
#                                                         per-batch style draw, with the same
#                                                         steps per style, each scored by
#                                                         validate (docs/multistyle.md)
#
# STEPS, MODELS_DIR (default models) and VALIDATE_CACHE (the iterative optimum's cache) may be
# set in the environment.
# Same content, loss and held-aside photos as scripts/train_rt_demo.sh. STEPS (default 600)
# steps per style on 128 px crops: the two-style run takes twice as many steps as a
# single-style one, so each style gets the same number of batches. About 40 minutes on one
# core of a 2-core machine (the comparison runs take as long again on the other core).
set -euo pipefail
runs=${1:-runs}
shared=${SHARED_DATA:-../shared/data}
steps=${STEPS:-600}
models=${MODELS_DIR:-models}
styles=(assets/styles/starry_night.jpg assets/styles/great_wave.jpg)
loss=(--content-layers relu3_1 --style-layers relu1_1,relu2_1,relu3_1,relu4_1 --style-weight 1e5 --tv-weight 1)
mkdir -p "$runs"

train() {  # NAME STEPS [EXTRA...]
    local name=$1 max_steps=$2
    shift 2
    OMP_NUM_THREADS=1 stylecast train --content-dir assets/content --content-dir "$shared/content" \
        --content-dir "$shared/video" --exclude-dir assets/heldout --out "$runs/$name" \
        --network lite --style-size 256 --lr 2e-3 --vgg-weights random:0 "${loss[@]}" \
        --sample-every 300 --checkpoint-every 100 --no-export --image-size 128 --batch-size 4 \
        --max-steps "$max_steps" --val-every 200 "$@" > "$runs/$name.log" 2>&1
}

two=()
for style in "${styles[@]}"; do two+=(--style "$style"); done
train two_styles_lite $((2 * steps)) "${two[@]}" &
if [[ ${COMPARE:-0} == 1 ]]; then
    (
        for style in "${styles[@]}"; do
            train "single_$(basename "$style" .jpg)" "$steps" --style "$style"
        done
        train two_styles_lite_per_batch $((2 * steps)) "${two[@]}" --style-sampling batch
    ) &
fi
wait
stylecast export "$runs/two_styles_lite" --name two_styles_lite --models-dir "$models" \
    --description "two styles in one lite network (starry_night, great_wave); testing only"
[[ ${COMPARE:-0} == 1 ]] || exit 0

# Score every run on the held-aside photos (docs/multistyle.md "Measured"): the same
# validate settings as docs/validation/, one shared cache of the iterative optimum.
scratch="$runs/compare-models"
validate() {  # RUN
    stylecast export "$runs/$1" --name "$1" --models-dir "$scratch" > /dev/null
    stylecast validate --model "$1" --models-dir "$scratch" --content-dir assets/heldout \
        --out "$runs/reports/$1" --size 256 --iterate-steps 100 \
        --cache-dir "${VALIDATE_CACHE:-$runs/validate-cache}" > "$runs/reports-$1.log" 2>&1
}
for run in two_styles_lite two_styles_lite_per_batch; do validate "$run"; done
singles=()
for style in "${styles[@]}"; do
    name=$(basename "$style" .jpg)
    validate "single_$name"
    singles+=(--single "$name=$runs/reports/single_$name")
done
for run in two_styles_lite two_styles_lite_per_batch; do
    echo "## $run"
    python scripts/compare_multistyle.py --multi "$runs/reports/$run" "${singles[@]}"
done
