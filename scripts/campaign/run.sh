#!/usr/bin/env bash
# Trains a profile's evidence for every table, in the order that gives a whole table soonest: Table 3 one
# seed at a time, then Tables 1-2 / Figures 7-8 (test and AFLW2000-3D evaluations of Trans3DHead and
# DAD-3DNet), then Tables 4-8 seed by seed, all five tables' runs of a seed in one `all` (one table at a time
# left a core idle behind Table 5's and Table 7's single run). Resumable: the result store skips finished runs
# and resumes interrupted ones from their last epoch, so after a reboot or a new session just start it again.
#
# PROFILES may be a comma-separated list: each step then runs for each profile in turn, so that a profile
# whose runs continue an earlier one's (`converged` after `cpu-long`, experiments/continuation.py) lands its
# results step by step instead of after the whole of the first profile.
#
#   nohup scripts/campaign/run.sh cpu-long,converged 3 > campaign.log 2>&1 &
#   scripts/campaign/commit.sh converged        # whenever you like: commits the runs that finished
#
# With COMMIT=1 it runs commit.sh itself after each step that finished a run, so that a finished run is
# committed as it lands even when nobody is there (it commits in this checkout: keep your own edits elsewhere).
set -u
profiles=${1:?usage: scripts/campaign/run.sh PROFILE[,PROFILE...] [SEEDS]}
seeds=${2:-3}
cd "$(dirname "$0")/../.."

step() {
    for profile in ${profiles//,/ }; do
        echo "== $(date -u +%FT%TZ) run $* --profile $profile"
        nice -n 10 python -m experiments.run "$@" --profile "$profile"
        echo "== $(date -u +%FT%TZ) exit $?"
        if [ "${COMMIT:-0}" = 1 ] && [ "$1" != report ]; then scripts/campaign/commit.sh "$profile" --if-new; fi
    done
}

for s in $(seq 1 "$seeds"); do
    step table3 --seeds "$s"
    step all --seeds "$s" --only trans3dhead,dad3dnet
done
for s in $(seq 1 "$seeds"); do
    step all --seeds "$s"
done
step report
