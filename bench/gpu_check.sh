#!/usr/bin/env bash
# The CUDA checks of issue 17, as one prepared run of at most 8 minutes on a machine with a GPU and
# no network. UNRUN: no GPU was available while it was written; read its summary before trusting it.
#
#   bash bench/gpu_check.sh                      # wheels from shared/wheels, logs in /tmp/pagesight-gpu-check
#   WHEELS=/path/to/wheels OUT=/tmp/out bash bench/gpu_check.sh
#   SKIP_INSTALL=1 PYTHON=.venv/bin/python bash bench/gpu_check.sh   # no pip step (an environment ready)
#
# Steps (each under its own time limit; the total is capped at 480 s, a step that would pass it is
# skipped and said so):
#   1. the GPU and torch as seen from Python;
#   2. install from carried wheels only (pip --no-index): flash-attn, torchvision, datasets, whatever
#      $WHEELS holds; nothing is fetched;
#   3. bench/gpu_check_realcode.py: a Llama-3.2-1B-shaped decoder (random weights) with flash-attention 2
#      vs sdpa in bf16, and the real-code stand-ins on CUDA (module-top flash_attn, forced flash-attention 2);
#   4. the CUDA tests: pytest -m gpu over the files that have them, plus tests/models/test_real_code.py;
#   5. bench/embed_gpu.py: pages/s of a random-weight ColEmbed-1B-shaped model in bf16.
# Everything is written under $OUT: one log per step and summary.txt (step, exit status, seconds).

set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python}
OUT=${OUT:-/tmp/pagesight-gpu-check}
WHEELS=${WHEELS:-$ROOT/shared/wheels}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
: >"$OUT/summary.txt"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
START=$SECONDS

step() { # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START)))
    if ((left < 15)); then
        echo "$name skipped (budget spent)" | tee -a "$OUT/summary.txt"
        return 0
    fi
    ((limit > left)) && limit=$left
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local took=$((SECONDS - t0))
    [[ $rc -eq 124 || $rc -eq 137 ]] && rc="$rc (timed out after ${limit}s)"
    echo "$name rc=$rc ${took}s" | tee -a "$OUT/summary.txt"
    tail -n 3 "$OUT/$name.log" | sed "s/^/    /"
}

step gpu 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
    $PY -c 'import torch, transformers; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), transformers.__version__)'"

if [[ ${SKIP_INSTALL:-0} == 1 ]]; then
    echo "wheels, editable skipped (SKIP_INSTALL=1)" | tee -a "$OUT/summary.txt"
elif compgen -G "$WHEELS/*.whl" >/dev/null; then
    # only what was carried; torch stays as installed (a wheel that wants another torch fails here)
    step wheels 120 bash -c "$PY -m pip install --no-index --find-links '$WHEELS' \
        \$(ls '$WHEELS'/*.whl | xargs -n1 basename | sed 's/-[0-9].*//' | sort -u | grep -v '^torch$') \
        && $PY -m pip list 2>/dev/null | grep -i -E '^(torch|transformers|flash|torchvision|datasets|accelerate) '"
else
    echo "wheels skipped (no $WHEELS/*.whl)" | tee -a "$OUT/summary.txt"
fi
if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
    step editable 60 "$PY" -m pip install --no-index --no-deps --no-build-isolation -e "$ROOT"
fi

step realcode 150 "$PY" bench/gpu_check_realcode.py

step cuda_tests 180 "$PY" -m pytest -q -p no:cacheprovider -m "gpu" \
    tests/retrieval/test_maxsim.py tests/models/test_vl_nvidia.py tests/models/test_vl_nvembed.py \
    tests/models/test_vl_e5v.py tests/models/test_rerank_nvidia.py
step real_code_tests 90 "$PY" -m pytest -q -p no:cacheprovider tests/models/test_real_code.py

step embed_gpu 150 "$PY" bench/embed_gpu.py --pages 64 --batch-size 32

echo "total $((SECONDS - START))s; logs in $OUT" | tee -a "$OUT/summary.txt"
