#!/usr/bin/env bash
# Copy the photos and masks the GPU run trains and evaluates on into gpu_data/ (git-ignored; it travels
# to the GPU machine as a carried path, docs/gpu.md). A deterministic subset of `inpaintlab split`:
# 600 training photos, every held-out photo, 1,000 training masks, every held-out mask (~21 MB).
#   bash scripts/gpu_data.sh                         # dataset at $INPAINTLAB_DATA or ../shared/datasets
#   bash scripts/gpu_data.sh gpu_data --split DIR    # reuse the lists of an earlier `inpaintlab split`
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
out="${1:-gpu_data}"
[ $# -gt 0 ] && shift
dataset="${INPAINTLAB_DATA:-$PWD/../shared/datasets}"
exec "${PYTHON:-python3}" -m inpaintlab.gpu_check prepare-data "$out" --dataset "$dataset" "$@"
