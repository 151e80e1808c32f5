#!/usr/bin/env bash
# One prepared GPU run (docs/gpu.md): every CUDA path of inpaintlab proven and measured in one command.
#   bash scripts/gpu_check.sh OUT_DIR            # on the GPU machine (needs gpu_data/, see scripts/gpu_data.sh)
#   bash scripts/gpu_check.sh OUT_DIR --smoke    # on any CPU machine: tiny models, the same plumbing (CI)
# Runs from the repository root with PYTHONPATH=src: nothing needs to be installed beyond torch and the
# package's dependencies. Exit 0 when no part failed, 1 when one did (the report says which and why).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/gpu_check.sh OUT_DIR [--smoke] [options: python -m inpaintlab.gpu_check --help]" >&2
  exit 2
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m inpaintlab.gpu_check "$@"
