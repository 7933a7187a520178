#!/usr/bin/env bash
# dlrun's checks on a CUDA machine, in one pass (what the README's GPU figures come from):
#   1. tests/test_cuda.py: every book model, the sparse kernels, a run and vectorized K-fold give
#      the CPU's numbers on the GPU; streamed images train there; steps do not wait for the GPU;
#   2. bench/bench_epoch.py --device cuda: dlrun's epoch against the hand-written loop on the GPU;
#   3. bench/device_agreement.py: the quickstart trained on CPU and on GPU, without dropout (the
#      arithmetic alone) and as shipped;
#   4. the real MNIST (DLwP 2.1) and IMDB (DLwP 3.4.4) runs on both devices, from a data mirror.
#
#   bench/gpu_check.sh [DATA_MIRROR]   (default ../shared/data; step 4 is skipped, and says so,
#                                       when the default is missing; a named one must exist)
#   DEVICE=cpu bench/gpu_check.sh      (the same steps on the CPU: checks this script)
#
# Each step has its own time limit and a failing step does not stop the others; the script
# exits non-zero if any step failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 1 ]; then
    [ -d "$1" ] || { echo "no data mirror at $1" >&2; exit 2; }
    DATA=$(cd "$1" && pwd)
else
    DATA="$ROOT/../shared/data"
fi
cd "$ROOT" || exit 2
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
failed=0

step() {  # step SECONDS TITLE COMMAND...
    local limit=$1 title=$2 started
    shift 2
    echo "=== $title"
    started=$(date +%s)
    timeout "$limit" "$@" || { echo "!!! $title failed (exit $?)"; failed=1; }
    echo "--- $title: $(($(date +%s) - started)) s"
}

"$PYTHON" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda)"
if [ "$DEVICE" != cpu ]; then
    "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" || {
        echo "torch sees no CUDA device: nothing to check" >&2
        exit 2
    }
    "$PYTHON" -c "import sys, torch; print(torch.cuda.get_device_name(sys.argv[1]))" "$DEVICE"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
echo "CPU cores: $(nproc)"

step 240 "tests/test_cuda.py on $DEVICE" env DLRUN_TEST_DEVICE="$DEVICE" \
    "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py
step 240 "per-epoch benchmark on $DEVICE" "$PYTHON" bench/bench_epoch.py --device "$DEVICE"
agree=("$PYTHON" bench/device_agreement.py --devices cpu "$DEVICE")
step 120 "quickstart on cpu and $DEVICE, no dropout" \
    "${agree[@]}" configs/quickstart.yaml model.layers.1.dropout=0
step 120 "quickstart on cpu and $DEVICE, as shipped" "${agree[@]}" configs/quickstart.yaml
for dataset in mnist imdb; do
    [ -d "$DATA/$dataset" ] || echo "=== skipped: no $DATA/$dataset for the $dataset run"
done
if [ -d "$DATA/mnist" ]; then
    step 240 "MNIST dense (DLwP 2.1) on cpu and $DEVICE" env DLRUN_DATA_PATH="$DATA" \
        "${agree[@]}" configs/dlwp/ch2_mnist_dense.yaml
fi
if [ -d "$DATA/imdb" ]; then
    step 300 "IMDB final (DLwP 3.4.4) on cpu and $DEVICE" env DLRUN_DATA_PATH="$DATA" \
        "${agree[@]}" configs/dlwp/ch3_imdb_final.yaml
fi
exit $failed
