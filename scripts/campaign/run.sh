#!/usr/bin/env bash
# Trains a profile's evidence for every table, in the order that gives a whole table soonest: Table 3 one
# seed at a time (the paper's ablation, and the table whose claims need every seed before they decide), then
# Tables 1-2 / Figures 7-8 (test and AFLW2000-3D evaluations of Table 3's Trans3DHead and DAD-3DNet runs),
# then Tables 4-8 seed by seed, all five tables' runs of a seed in one `all` (one table at a time
# left a core idle behind Table 5's and Table 7's single run). Resumable: the result store skips finished runs
# and resumes interrupted ones from their last epoch, so after a reboot or a new session just start it again.
#
# PROFILES may be a comma-separated list: each step then runs for each profile in turn, so that a profile
# whose runs continue an earlier one's (a longer schedule of the same config, experiments/dispatch/continuation.py)
# lands its results step by step instead of after the whole of the first profile.
#
#   nohup scripts/campaign/run.sh converged 3 > campaign.log 2>&1 &
#   scripts/campaign/commit.sh converged        # whenever you like: commits the runs that finished
#
# With COMMIT=1 it runs commit.sh itself after each step that finished a run, and every COMMIT_EVERY seconds
# (default 900) while a step trains, so that a finished run is committed within minutes of landing even when
# nobody is there and the session ends mid-step (a step of ten 20-minute runs lasts well over an hour). It
# commits in this checkout: keep your own edits elsewhere, and take the same lock to pull into it,
#   flock "$(git rev-parse --git-dir)/campaign-commit.lock" git pull --ff-only ...
set -u
profiles=${1:?usage: scripts/campaign/run.sh PROFILE[,PROFILE...] [SEEDS]}
seeds=${2:-3}
cd "$(dirname "$0")/../.."
commit_lock="$(git rev-parse --git-dir)/campaign-commit.lock"

commit() {  # under a lock, so that the periodic commits and a step's own never run git at once
    flock "$commit_lock" scripts/campaign/commit.sh "$1" --if-new
}

if [ "${COMMIT:-0}" = 1 ]; then
    # sleep's output goes nowhere, so that a caller reading this script's output is not kept waiting on it
    (while sleep "${COMMIT_EVERY:-900}" > /dev/null 2>&1; do
        for profile in ${profiles//,/ }; do commit "$profile"; done
    done) &
    committer=$!
    trap 'kill "$committer" 2> /dev/null' EXIT
fi

step() {
    for profile in ${profiles//,/ }; do
        echo "== $(date -u +%FT%TZ) run $* --profile $profile"
        nice -n 10 python -m experiments.run "$@" --profile "$profile"
        status=$?     # taken at once: inside the echo below, $(date) would have replaced it with its own
        echo "== $(date -u +%FT%TZ) exit $status"
        if [ "${COMMIT:-0}" = 1 ] && [ "$1" != report ]; then commit "$profile"; fi
    done
}

for s in $(seq 1 "$seeds"); do
    step table3 --seeds "$s"
done
step all --seeds "$seeds" --only trans3dhead,dad3dnet
for s in $(seq 1 "$seeds"); do
    step all --seeds "$s"
done
step report
