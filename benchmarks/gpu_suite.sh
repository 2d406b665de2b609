#!/usr/bin/env bash
# Every GPU figure the open issues still ask for, in one run: under 8 minutes on one H100.
#
#   bash benchmarks/gpu_suite.sh                  on a CUDA machine: appends the figures to docs/gpu_figures.md
#                                                 (or to $SEGTUNE_SUITE_OUT, written as each step goes)
#   bash benchmarks/gpu_suite.sh --dry-run [FILE] the same steps at toy sizes on the CPU (CI runs this; not figures),
#                                                 written to FILE (default: a temporary file); its quality step
#                                                 trains on $SEGTUNE_SUITE_DATA where set, else generates 8 videos
#
# Steps (each under its own time limit, so one slow step cannot eat the others' time; a failed step is written
# down with its exit status and the suite goes on):
#   1. the recipe against a bare loop, and the training split streamed from the memory-mapped cache (read ahead in
#      a background thread) against held on the device: U-Net width 64, batch 64 (benchmarks/train_speed.py)
#   2. the same for the phase-1 frame predictor
#   3. 1, 2 and 4 trials packed on one GPU (benchmarks/gpu_packing.py), and 4 packed trials pretraining the frame
#      predictor on a full-size unlabeled + train split (14,000 clips) streamed from one memory-mapped file
#   4. a shortened quality run (benchmarks/quality.py: copy-last, extrapolate, oracle, mask_space with each prior)
#
# On the lent GPU machine (no Ray, Optuna or MuJoCo there, and maybe no SciPy, which models.objects needs): install
# them with the tested recipe of DEVELOPERS.md, SciPy added (`bash ../shared/offline-wheels/prepare.sh scipy`, then
# .dev1, .dev2, ... in order), then `export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl ...` and run this script.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}

if [[ "${1:-}" == "--dry-run" ]]; then
  OUT=${2:-$(mktemp -d)/gpu_figures.md}
  WORK=$(mktemp -d)
  SPEED=(--device cpu --no-compile --width 4 --batch 2 --videos 2 --steps 1 --epochs 1 --stream)
  PREDICTOR=(--device cpu --no-compile --model frame_predictor --width 4 --batch 2 --videos 2 --steps 1 --epochs 1
             --stream)
  PACK=(--device cpu --trials 1 --width 4 --batch 2 --videos 2 --epochs 1)
  PRETRAIN=(--device cpu --trials 2 --width 4 --batch 2 --epochs 1 --stream-videos 16 --epoch-samples 2)
  QUALITY=(--device cpu --epochs 1 --width 4 --batch 2 --predictor-width 4 --predictor-hidden 4 --frames-per-video 1
           --only mask_space --mask-variants motion --no-compile)
  if [[ -n "${SEGTUNE_SUITE_DATA:-}" ]]; then QUALITY+=(--data "$SEGTUNE_SUITE_DATA"); else QUALITY+=(--train 4 --val 2 --unlabeled 2); fi
  LIMITS=(300 300 300 300 600)
  TITLE="dry run on the CPU (toy sizes: not figures)"
else
  OUT=${SEGTUNE_SUITE_OUT:-docs/gpu_figures.md}
  WORK=${SEGTUNE_SUITE_WORK:-/tmp/gpu_suite}
  SPEED=(--width 64 --batch 64 --videos 512 --steps 30 --epochs 3 --stream)
  PREDICTOR=(--model frame_predictor --width 64 --batch 32 --videos 512 --steps 30 --epochs 3 --stream)
  PACK=(--trials 1 2 4 --width 64 --batch 64 --videos 256 --epochs 3)
  PRETRAIN=(--trials 4 --width 64 --batch 32 --epochs 3 --stream-videos 14000 --epoch-samples 2000)
  QUALITY=(--train 300 --val 100 --unlabeled 300 --epochs 8 --width 32 --batch 32 --only mask_space
           --mask-variants motion --no-compile)
  LIMITS=(85 75 90 60 170)  # the most each step may take (480 s in all); they should end well inside them
  TITLE=$($PY -c "import torch; print(torch.cuda.get_device_name())" 2>/dev/null || echo "no CUDA device")
fi
mkdir -p "$(dirname "$OUT")" "$WORK"
export PYTHONUNBUFFERED=1  # a step stopped at its limit still leaves what it printed

step() {  # step NAME LIMIT_S COMMAND...: the command's output as a section of $OUT
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  {
    echo
    echo "#### $name"
    echo
    echo '```'
    echo "\$ $*"
  } >>"$OUT"
  timeout "$limit" "$@" >>"$OUT" 2>&1
  local status=$?
  {
    echo '```'
    echo "exit $status after $((SECONDS - started)) s"
  } >>"$OUT"
  echo "$name: exit $status after $((SECONDS - started)) s"
}

{
  echo
  echo "### $(date -u +%Y-%m-%d), $TITLE, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >>"$OUT"
step "U-Net: recipe against bare loop, streamed against held" "${LIMITS[0]}" $PY -m benchmarks.train_speed "${SPEED[@]}"
step "Frame predictor: recipe against bare loop, streamed against held" "${LIMITS[1]}" \
  $PY -m benchmarks.train_speed "${PREDICTOR[@]}"
step "Packed trials on one GPU" "${LIMITS[2]}" $PY -m benchmarks.gpu_packing "${PACK[@]}"
step "Packed trials pretraining on a full-size streamed split" "${LIMITS[3]}" $PY -m benchmarks.gpu_packing "${PRETRAIN[@]}"
step "Shortened quality run" "${LIMITS[4]}" \
  $PY -m benchmarks.quality --workdir "$WORK/quality" --out "$WORK/quality.md" "${QUALITY[@]}"
echo "figures written to $OUT"
