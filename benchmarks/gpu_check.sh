#!/usr/bin/env bash
# One script for a GPU machine: install what the GPU check needs, then run
# benchmarks/gpu_check.py, which prints one markdown table (about 8 minutes; see its doc).
#
#   benchmarks/gpu_check.sh [--no-install] [--budget SECONDS] [--out FILE] [--keep] [--quick]
#
# Install, into $VENV (default .venv; an existing one is reused, and a step whose packages are
# already there is skipped):
# - the project with its train, export and serve extras (torch 2.14.1 + torchvision 0.29.1,
#   the CUDA 13 builds, from PyPI);
# - with an NVIDIA GPU (nvidia-smi): onnxruntime-gpu with its CUDA and cuDNN wheels in place of
#   onnxruntime (both provide the `onnxruntime` module, so the CPU one is removed first), and
#   the TensorRT libraries wheel its TensorRT provider is linked against, as
#   `gpu_check.py --trt-requirement` reads it from the provider library (onnxruntime-gpu 1.31:
#   libnvinfer.so.10 and libcudart.so.13, so tensorrt-cu13-libs==10.*).
# --no-install skips all of it and runs with $VENV as it is. Every other option goes to
# gpu_check.py. A failed install step is reported and the check still runs: its rows say what
# is missing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
py="$VENV/bin/python"
install=1
args=()
for arg in "$@"; do
    case $arg in
        --no-install) install=0 ;;
        *) args+=("$arg") ;;
    esac
done

say() { echo "gpu_check.sh: $*" >&2; }
pip_install() { "$py" -m pip install --quiet --disable-pip-version-check "$@" || say "pip install $* failed"; }

if ((install)); then
    if [[ ! -x $py ]]; then
        "$PYTHON" -m venv "$VENV" || { say "cannot create $VENV with $PYTHON (3.11+)"; exit 2; }
    fi
    if "$py" -c 'import stylecast, torch, torchvision, lightning, onnx, onnxscript, grpc, tensorboard' 2>/dev/null; then
        say "project and its extras already in $VENV"
    else
        pip_install -e '.[train,export,serve]'
    fi
    if nvidia-smi -L >/dev/null 2>&1; then
        if "$py" -m pip show --quiet onnxruntime >/dev/null 2>&1; then
            "$py" -m pip uninstall --quiet -y onnxruntime onnxruntime-gpu
        fi
        pip_install 'onnxruntime-gpu[cuda,cudnn]>=1.20'
        trt=$("$py" benchmarks/gpu_check.py --trt-requirement 2>/dev/null)
        if [[ -n $trt ]]; then
            pip_install "$trt"
        else
            say "this onnxruntime has no TensorRT provider: no TensorRT libraries to install"
        fi
    else
        say "no NVIDIA GPU (nvidia-smi): keeping the CPU onnxruntime"
    fi
fi
if [[ ! -x $py ]]; then
    say "no $py: run without --no-install, or set VENV"
    exit 2
fi
exec "$py" benchmarks/gpu_check.py "${args[@]}"
