#!/usr/bin/env bash
# The README's test command runs this: it starts what the tests need (a single-node SLURM cluster
# on localhost, when the machine can run one), runs the default test suite, and stops the cluster.
# SLURM tests skip with a reason when the cluster could not be started.
set -uo pipefail
cd "$(dirname "$0")/.."

started_slurm=0
if [ "${T3H_SKIP_SLURM:-0}" != "1" ] && [ -x scripts/slurm-local/start.sh ]; then
  if scripts/slurm-local/start.sh; then
    started_slurm=1
  else
    echo "run-tests: the local SLURM cluster did not start; SLURM tests will be skipped" >&2
  fi
fi
stop_slurm() { [ "$started_slurm" = 1 ] && scripts/slurm-local/stop.sh || true; }
trap stop_slurm EXIT

export MPLBACKEND=Agg
python -m pytest -m "not slow" "$@"
status=$?
# The committed reports must regenerate byte for byte from the committed results.
if [ $status -eq 0 ] && [ -d results/cpu ]; then
  python -m experiments.run report --profile cpu --check || status=$?
fi
exit $status
