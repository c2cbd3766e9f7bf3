#!/usr/bin/env bash
# Commits the run folders of results/PROFILE whose meta.json says "done" and that git does not hold yet
# (or holds changed), one commit for all of them, then reports/PROFILE and the README's headline table
# regenerated from a clean clone of that commit (the working tree's runs in progress would show in them,
# and `report --check` in the tests compares committed reports with committed results only); the reports
# are regenerated also when no run is new (after a code or registry change), unless --if-new is given. Runs still
# training are left alone. Every profile with committed results gets its reports regenerated, not PROFILE's alone:
# a profile's claims page shows another's verdicts beside its own (`verdicts_beside`), so committing `cpu` runs
# changes `converged`'s page too.
set -eu
profile=${1:?usage: scripts/campaign/commit.sh PROFILE [--if-new]}
if_new=${2:-}
cd "$(dirname "$0")/../.."
n=0
for d in results/"$profile"/*/; do
    status=$(python -c "import json,sys; print(json.load(open(sys.argv[1])).get('status', ''))" "$d/meta.json" 2>/dev/null || true)
    if [ "$status" = done ] && [ -n "$(git status --porcelain -- "$d")" ]; then
        git add -- "$d"
        n=$((n + 1))
    fi
done
if [ "$n" -eq 0 ] && [ "$if_new" = --if-new ]; then
    echo "nothing new in results/$profile"
    exit 0
elif [ "$n" -eq 0 ]; then
    echo "nothing new in results/$profile; regenerating its reports all the same"
else
    git commit -qm "$profile results: $n finished run(s) (each run's meta records its code version)" -- "results/$profile"
    echo "committed $n run(s) of results/$profile"
fi

clone=$(mktemp -d)
trap 'rm -rf "$clone"' EXIT
git clone -q . "$clone"
# Figure 7 and the gallery draw the dataset's images: without the generated data (gitignored) the clone's
# reports would leave those pictures out while the pages link them
[ -d data ] && ln -s "$(pwd)/data" "$clone/data"
profiles=$(cd "$clone" && for d in results/*/; do [ -d "$d" ] && basename "$d"; done)
for p in $profiles; do
    (cd "$clone" && python -m experiments.run report --profile "$p" > /dev/null)
    rm -rf "reports/$p" && mkdir -p reports && cp -r "$clone/reports/$p" reports/
    git add -- "reports/$p"
done
python -m experiments.report.readme > /dev/null
git add -- README.md
git commit -qm "reports regenerated from the committed results ($(echo $profiles | tr ' ' ,))" -- reports README.md \
    && echo "committed reports/$profile" || echo "reports/$profile unchanged"
