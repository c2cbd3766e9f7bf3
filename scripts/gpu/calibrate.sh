#!/usr/bin/env bash
# The `gpu` profile's calibration on a lent GPU machine (issue 30), as one prepared device call that fits the
# 15 minutes of device time a task gets (the machine's start included): run it from the repository root with
# the `device` tool, timeout_s 540, after putting the smplx and submitit wheels in .whl/
# (../shared/gpu/README.md says how). Every log lands under $OUT, which comes back:
#   nvidia-smi.txt                   the card
#   bench-train-<variant>.txt        per-phase step times, GFLOP/s and the `run cost:` line, per model
#   convergence.csv / .txt           a short learning curve of the profile's schedule (the start of calibration)
#   table3-pace.txt, table3-plan.txt Table 3 x 3 seeds started with --jobs-per-gpu auto for PACE_S seconds,
#                                    then the plan priced at the pace it measured (a projection: say so)
# What it cannot measure in 15 minutes (a converged gpu-profile run, Table 3 x 3 seeds to the end) stays
# "not measured" in the reports. On a CPU the same script checks its own plumbing at smoke size:
#   OUT=/tmp/gpu-check PROFILE=smoke PACE_S=60 bash scripts/gpu/calibrate.sh
set -u
OUT=${OUT:?OUT must name the folder that comes back}
PROFILE=${PROFILE:-gpu}
PACE_S=${PACE_S:-180}
mkdir -p "$OUT"
scratch=$(mktemp -d)     # results and checkpoints that need not come back
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
fi
(nvidia-smi || echo "no GPU here") > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$OUT/nvidia-smi.txt"

for variant in trans3dhead dad3dnet; do
    echo "== $(date -u +%T) bench train $variant"
    timeout 150 python3 -m experiments.bench train --profile "$PROFILE" --variant "$variant" --steps 30 \
        --repeats 1 --jpeg-canvas 0 > "$OUT/bench-train-$variant.txt" 2>&1
    echo "exit $?" >> "$OUT/bench-train-$variant.txt"
done

echo "== $(date -u +%T) bench convergence (a short curve)"
timeout 150 python3 -m experiments.bench convergence --profile "$PROFILE" --variants trans3dhead \
    --set train.epochs=2 --results "$OUT/conv-results" --work "$scratch/conv-work" --out "$OUT/convergence.csv" \
    > "$OUT/convergence.txt" 2>&1
echo "exit $?" >> "$OUT/convergence.txt"

echo "== $(date -u +%T) Table 3 x 3 seeds for ${PACE_S} s, runs packed with --jobs-per-gpu auto"
jobs_per_gpu=auto
[ "$PROFILE" = smoke ] && jobs_per_gpu=1      # auto needs a GPU to size the packing
timeout "$PACE_S" python3 -m experiments.run table3 --profile "$PROFILE" --seeds 3 --jobs-per-gpu "$jobs_per_gpu" \
    --results "$scratch/t3-results" --work "$scratch/t3-work" > "$OUT/table3-pace.txt" 2>&1
echo "exit $? (124: stopped at ${PACE_S} s on purpose)" >> "$OUT/table3-pace.txt"
timeout 120 python3 -m experiments.run table3 --profile "$PROFILE" --seeds 3 --results "$scratch/t3-results" \
    --work "$scratch/t3-work" --dry-run --estimate > "$OUT/table3-plan.txt" 2>&1
echo "== $(date -u +%T) done"
