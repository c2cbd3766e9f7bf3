#!/usr/bin/env bash
# Starts a single-node SLURM cluster on localhost for the tests: munge, MariaDB, slurmdbd (submitit
# polls sacct, so accounting is required), slurmctld and slurmd. Idempotent; exits non-zero if the
# cluster does not come up. State, logs and PID files live in .slurm-local/ of the repository;
# slurm.conf and slurmdbd.conf go to /etc/slurm so that sbatch, sacct and submitit find them unaided.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
state="$repo/.slurm-local"
host=$(hostname -s)
mkdir -p "$state"/{state,spool,log}

need_install=0
for bin in slurmctld slurmd slurmdbd munged mariadbd sbatch; do
  command -v "$bin" >/dev/null || need_install=1
done
if [ "$need_install" = 1 ]; then
  echo "slurm-local: installing Debian packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client slurmdbd munge mariadb-server >/dev/null
fi

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "slurm-local: $what did not come up within ${limit}s (logs in $state/log)" >&2
  return 1
}

# munge refuses to run as root ("logfile is insecure"): run it as its own user.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  install -d -o munge -g munge /run/munge
  [ -f /etc/munge/munge.key ] || runuser -u munge -- mungekey -c
  runuser -u munge -- /usr/sbin/munged
  wait_for 20 munge sh -c 'munge -n | unmunge'
fi

if ! mariadb-admin ping >/dev/null 2>&1; then
  install -d -o mysql -g mysql /run/mysqld
  # mariadbd writes its PID file as the mysql user: keep it in /run/mysqld, which that user owns.
  setsid mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mariadbd.pid \
    >"$state/log/mariadb.log" 2>&1 < /dev/null &
  wait_for 60 MariaDB mariadb-admin ping
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-local';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

mkdir -p /etc/slurm
cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm-local
StorageLoc=slurm_acct_db
PidFile=$state/slurmdbd.pid
LogFile=$state/log/slurmdbd.log
CONF
chmod 600 /etc/slurm/slurmdbd.conf
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=t3hlocal
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerParameters=batch_sched_delay=0
StateSaveLocation=$state/state
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$(( $(awk "/MemTotal/ {print \$2}" /proc/meminfo) / 1024 / 2 )) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$state/slurmdbd.pid" || slurmdbd
wait_for 60 slurmdbd sacctmgr -n -P list cluster
sacctmgr -n -P list cluster | grep -q '^t3hlocal' || sacctmgr -i add cluster t3hlocal >/dev/null
running "$state/slurmctld.pid" || slurmctld -i
running "$state/slurmd.pid" || slurmd
wait_for 90 "the node" sh -c 'sinfo -h -o %t | grep -qx idle'
echo "slurm-local: cluster t3hlocal up ($(sinfo -h -o '%P %D %t'))"
