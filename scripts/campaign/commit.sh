#!/usr/bin/env bash
# Commits the run folders of results/PROFILE whose meta.json says "done" and that git does not hold yet
# (or holds changed), one commit for all of them. Runs still training are left alone.
set -eu
profile=${1:?usage: scripts/campaign/commit.sh PROFILE}
cd "$(dirname "$0")/../.."
n=0
for d in results/"$profile"/*/; do
    status=$(python -c "import json,sys; print(json.load(open(sys.argv[1])).get('status', ''))" "$d/meta.json" 2>/dev/null || true)
    if [ "$status" = done ] && [ -n "$(git status --porcelain -- "$d")" ]; then
        git add -- "$d"
        n=$((n + 1))
    fi
done
if [ "$n" -eq 0 ]; then echo "nothing new in results/$profile"; exit 0; fi
git commit -qm "$profile results: $n finished run(s) (each run's meta records its code version)" -- "results/$profile"
echo "committed $n run(s) of results/$profile"
