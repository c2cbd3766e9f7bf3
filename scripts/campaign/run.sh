#!/usr/bin/env bash
# Trains a profile's evidence for every table, in the order that gives a whole table soonest: Table 3 one
# seed at a time, then Tables 1-2 / Figures 7-8 (test and AFLW2000-3D evaluations of Trans3DHead and
# DAD-3DNet), then Tables 4-8, seed by seed. Resumable: the result store skips finished runs and resumes
# interrupted ones from their last epoch, so after a reboot or a new session just start it again.
#
#   nohup scripts/campaign/run.sh converged 3 > campaign.log 2>&1 &
#   scripts/campaign/commit.sh converged        # whenever you like: commits the runs that finished
set -u
profile=${1:?usage: scripts/campaign/run.sh PROFILE [SEEDS]}
seeds=${2:-3}
cd "$(dirname "$0")/../.."

step() {
    echo "== $(date -u +%FT%TZ) run $* --profile $profile"
    nice -n 10 python -m experiments.run "$@" --profile "$profile"
    echo "== $(date -u +%FT%TZ) exit $?"
}

for s in $(seq 1 "$seeds"); do
    step table3 --seeds "$s"
    step all --seeds "$s" --only trans3dhead,dad3dnet
done
for s in $(seq 1 "$seeds"); do
    for t in table4 table5 table6 table7 table8; do step "$t" --seeds "$s"; done
done
step report
