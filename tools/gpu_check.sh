#!/usr/bin/env bash
# The GPU check: on a machine with JAX (CUDA) and no TensorFlow, Keras or Jupyter, with the
# kit of `make gpu-kit` beside the project (gpu-kit/), and no network:
#
#   bash tools/gpu_check.sh                            # on the GPU, under 8 minutes on an H200
#   TINY=1 JAX_PLATFORMS=cpu bash tools/gpu_check.sh   # the rehearsal on a CPU, in minutes
#
# Installs the kit offline into gpu-kit/site-cpXY, prints the Python, GPU, JAX and Keras
# versions, then runs tools/gpu_check.py's stages (exact resume after kill -9, a divergence
# caught, the notebooks with --params gpu-origin, predict on JPEG files) and writes
# $OUT/summary.json (OUT defaults to runs/gpu-check). Environment: PYTHON (default: the first
# python3 on PATH), KIT (default gpu-kit), OUT, TINY.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
KIT=${KIT:-gpu-kit}
OUT=${OUT:-runs/gpu-check}
if [[ ! -f "$KIT/gpu_kit.py" ]]; then
    echo "error: no GPU kit at $KIT: run make gpu-kit on a machine with the package index," \
         "then bring $KIT/ beside the project." >&2
    exit 2
fi
tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
site="$KIT/site-$tag"
if [[ ! -f "$site/.complete" ]]; then
    rm -rf "$site"
    "$PY" "$KIT/gpu_kit.py" install --kit "$KIT" --target "$site"
    touch "$site/.complete"
fi
export PYTHONPATH="$PWD/$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
# JAX takes 75% of the GPU's memory at the first use by default: the notebooks' kernel and
# the commands run one at a time, so each may take what it needs.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
exec "$PY" tools/gpu_check.py --out "$OUT" --kit "$KIT" ${TINY:+--tiny}
