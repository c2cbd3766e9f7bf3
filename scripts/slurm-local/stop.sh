#!/usr/bin/env bash
# Stops the cluster of start.sh by its PID files, in reverse start order (never pkill/killall).
set -uo pipefail
state="$(cd "$(dirname "$0")/../.." && pwd)/.slurm-local"
for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/slurmdbd.pid" /run/mysqld/mariadbd.pid; do
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
done
munge_pid=/run/munge/munged.pid
[ -f "$munge_pid" ] && kill "$(cat "$munge_pid")" 2>/dev/null || true
echo "slurm-local: stopped"
