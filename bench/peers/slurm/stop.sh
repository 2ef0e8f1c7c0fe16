#!/usr/bin/env bash
# Stop the slurmd, slurmctld and munged that setup.sh started, found through the pid files
# under $SLURM_PEER_DIR (default /tmp/captain-bench-slurm). Conf, job state and logs stay.
# Safe when nothing runs. Usage: stop.sh
set -uo pipefail

peer_dir="${SLURM_PEER_DIR:-/tmp/captain-bench-slurm}"
grace_s=10

log() { echo "[slurm-peer stop] $*"; }

# Stops the process that pid file $2 names, and only when that process is called $1.
stop_daemon() {
  local name=$1 pid_file=$2 pid deadline
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  if [[ -z $pid || "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != "$name" ]]; then
    log "$name is not running"
    rm -f "$pid_file"
    return 0
  fi
  log "stopping $name ($pid)"
  kill -TERM "$pid" 2>/dev/null
  deadline=$((SECONDS + grace_s))
  while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
  if [[ -e /proc/$pid ]]; then
    log "$name ($pid) still runs after ${grace_s} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pid_file"
}

stop_daemon slurmd "$peer_dir/run/slurmd.pid"
stop_daemon slurmctld "$peer_dir/run/slurmctld.pid"
stop_daemon munged "$peer_dir/munge/munged.pid"
exit 0
