#!/usr/bin/env bash
# A real one-node Slurm on this machine, to try `vigil render slurm` jobs on a laptop
# and to test them in CI (scripts/ci/cluster.sh).
#
#   sudo scripts/slurm-local.sh start   # write slurm.conf, start munged, slurmctld, slurmd
#   sudo scripts/slurm-local.sh status  # sinfo + squeue
#   sudo scripts/slurm-local.sh stop    # stop the three daemons (by their pid files)
#
# Needs Debian/Ubuntu's `slurm-wlm` and `munge` packages (`apt-get install slurm-wlm
# munge`) and root (the daemons run as root here: a test cluster, not a shared one).
#
# The node is this host as `slurmd -C` sees it (its real CPU count and memory). Process
# tracking is `proctrack/linuxproc` and task binding `task/none`, which need no cgroup
# setup, so this also runs in containers and CI machines without systemd. Memory is a
# consumable resource (`CR_Core_Memory`), so `#SBATCH --mem` is enforced at scheduling.
#
# /etc/slurm/slurm.conf is written only if absent or written by this script before (it
# carries a marker line); a real cluster's configuration is never overwritten. State,
# spool, logs and pid files live in $VIGIL_SLURM_DIR (default /var/tmp/vigil-slurm).
set -euo pipefail

DIR="${VIGIL_SLURM_DIR:-/var/tmp/vigil-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# Written by vigil scripts/slurm-local.sh"
TIMEOUT_S="${VIGIL_SLURM_TIMEOUT_S:-60}"

die() {
  echo "slurm-local.sh: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ||
    die "$1 not found: install slurm-wlm and munge (apt-get install slurm-wlm munge)"
}

sbin() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }

write_conf() {
  if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; refusing to overwrite it"
  fi
  local host node
  host="$(hostname -s)"
  # "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105": the first line of slurmd -C.
  node="$("$(sbin slurmd)" -C | head -n 1)"
  case "$node" in
    NodeName=*) ;;
    *) die "slurmd -C printed no node line: $node" ;;
  esac
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$(dirname "$CONF")"
  cat >"$CONF" <<EOF
$MARKER for a one-node test cluster.
ClusterName=vigil-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobRequeue=1
# Jobs signalled with scancel may take a while to checkpoint; do not hurry them.
KillWait=30
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- "$(sbin munged)"
  else
    "$(sbin munged)" --force
  fi
  mkdir -p "$DIR"
  touch "$DIR/munged.ours"
  local i
  for i in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.2
  done
  die "munged did not start"
}

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  need slurmctld
  need slurmd
  need munged
  [ "$(id -u)" = 0 ] || die "start needs root (the daemons run as root)"
  write_conf
  start_munge
  running "$DIR/slurmctld.pid" || "$(sbin slurmctld)"
  running "$DIR/slurmd.pid" || "$(sbin slurmd)"
  local deadline=$((SECONDS + TIMEOUT_S)) state=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)"
    case "$state" in
      idle | mixed | allocated) break ;;
      down* | drain*)
        scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  case "$state" in
    idle | mixed | allocated) ;;
    *)
      tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
      die "node not idle after ${TIMEOUT_S}s (state: ${state:-none}); logs in $DIR/log"
      ;;
  esac
  sinfo
}

stop_pidfile() {
  local f="$1" pid i
  running "$f" || return 0
  pid="$(cat "$f")"
  kill "$pid"
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  # Jobs still running would outlive slurmd as orphans: cancel them first.
  if running "$DIR/slurmctld.pid"; then
    scancel --full --signal=KILL -u "$(id -un)" 2>/dev/null || true
    scancel -u "$(id -un)" 2>/dev/null || true
  fi
  stop_pidfile "$DIR/slurmd.pid"
  stop_pidfile "$DIR/slurmctld.pid"
  # munged is stopped only if this script started it (a system munged stays).
  if [ -e "$DIR/munged.ours" ]; then
    stop_pidfile /run/munge/munged.pid
    rm -f "$DIR/munged.ours"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    sinfo
    squeue
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
