#!/usr/bin/env bash
# Bring up a one-node Slurm (munged, slurmctld, slurmd) started by hand, without systemd, as
# the reference that Captain's benchmarks measure against. Every file it writes lives under
# $SLURM_PEER_DIR (default /tmp/captain-bench-slurm); only the Debian packages go elsewhere.
#
# Usage: setup.sh [--profile stock|tuned] [--clean]
#   --profile stock  Slurm's own scheduler defaults (the default)
#   --profile tuned  adds SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
#   --clean          stop the daemons and wipe the whole state folder first
# Running it again with the same profile only checks the daemons; with another profile it
# rewrites slurm.conf and restarts slurmctld and slurmd (job state is kept).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
peer_dir="${SLURM_PEER_DIR:-/tmp/captain-bench-slurm}"
profile=stock
clean=0
wait_s=60

log() { echo "[slurm-peer setup] $*"; }
die() { log "error: $*"; exit 1; }

while (($#)); do
  case "$1" in
    --profile) profile="${2:-}"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --clean) clean=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case "$profile" in
  stock) sched_params="" ;;
  tuned) sched_params="batch_sched_delay=0,sched_min_interval=0" ;;
  *) die "unknown profile '$profile' (stock or tuned)" ;;
esac
[[ $(id -u) == 0 ]] || die "must run as root (the daemons and jobs run as root)"

conf="$peer_dir/etc/slurm.conf"
munge_dir="$peer_dir/munge"
munge_socket="$munge_dir/munge.socket"
run_dir="$peer_dir/run"
export SLURM_CONF="$conf"

# Prints the pid in pid file $2 when that process is alive and named $1, else nothing.
live_pid() {
  local pid
  pid="$(cat "$2" 2>/dev/null || true)"
  if [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == "$1" ]]; then
    echo "$pid"
  fi
}

# Polls command "$@" every 0.2 s until it succeeds or wait_s seconds have passed.
wait_for() {
  local deadline=$((SECONDS + wait_s))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# Step 1: packages. A policy-rc.d that says 101 keeps their init scripts from starting
# system-wide daemons; Docker-style images already have one, otherwise add one for the install.
install_packages() {
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 0755 "$policy"; added_policy=1
  fi
  log "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q slurm-wlm munge >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge >/dev/null
  fi
  if ((added_policy)); then rm -f "$policy"; fi
}
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  install_packages
fi
log "$(slurmctld -V), $(munged --version 2>&1 | awk '{print $1; exit}')"

# Step 2: a clean start wipes everything this script ever wrote.
if ((clean)); then
  log "--clean: stopping the daemons and removing $peer_dir"
  "$here/stop.sh"
  rm -rf "$peer_dir"
fi
mkdir -p "$peer_dir"/{etc,spool/ctld,spool/d,log,run,scratch}
install -d -m 0755 "$munge_dir"

# Step 3: munged with its own key, socket and files, so it never touches /etc/munge.
munge_ok() { munge --socket="$munge_socket" -n </dev/null | unmunge --socket="$munge_socket"; }
if [[ ! -s $munge_dir/munge.key ]]; then
  log "creating a munge key"
  mungekey --create --force --keyfile="$munge_dir/munge.key"
fi
chmod 0400 "$munge_dir/munge.key"
if [[ -z $(live_pid munged "$munge_dir/munged.pid") ]]; then
  log "starting munged"
  rm -f "$munge_socket" "$munge_socket.lock"
  munged --socket="$munge_socket" --key-file="$munge_dir/munge.key" \
    --pid-file="$munge_dir/munged.pid" --log-file="$munge_dir/munged.log" \
    --seed-file="$munge_dir/munged.seed" </dev/null >/dev/null
fi
wait_for munge_ok || die "munged does not answer; see $munge_dir/munged.log"

# Step 4: slurm.conf for this machine. slurmd -C reports the cores and memory that slurmd
# itself will register with, so the node is never drained for having less than configured.
hardware="$(slurmd -C 2>/dev/null | head -1)"
[[ $hardware == NodeName=* ]] || die "slurmd -C gave no node line: $hardware"
node="$(hostname -s)"
node_line="NodeName=$node NodeAddr=127.0.0.1 ${hardware#NodeName=* } State=UNKNOWN"
new_conf="$(mktemp)"
trap 'rm -f "$new_conf"' EXIT
cat >"$new_conf" <<EOF
# One-node Slurm for Captain's benchmarks, written by bench/peers/slurm/setup.sh.
# profile=$profile
ClusterName=captainbench
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$munge_socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$peer_dir/spool/ctld
SlurmdSpoolDir=$peer_dir/spool/d
SlurmctldPidFile=$run_dir/slurmctld.pid
SlurmdPidFile=$run_dir/slurmd.pid
SlurmctldLogFile=$peer_dir/log/slurmctld.log
SlurmdLogFile=$peer_dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$node_line
PartitionName=bench Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if [[ -n $sched_params ]]; then echo "SchedulerParameters=$sched_params" >>"$new_conf"; fi
conf_changed=0
if ! cmp -s "$new_conf" "$conf"; then
  install -m 0644 "$new_conf" "$conf"
  conf_changed=1
  log "wrote $conf (profile $profile)"
fi
echo "export SLURM_CONF=$conf" >"$peer_dir/env"

# Step 5: the daemons. Both fork into the background on their own. A changed conf restarts
# them, so the controller runs with exactly the profile asked for.
stop_daemon() {  # name pidfile
  local pid
  pid="$(live_pid "$1" "$2")"
  [[ -n $pid ]] || return 0
  log "restarting $1 ($pid) for the new conf"
  kill -TERM "$pid"
  wait_for test ! -e "/proc/$pid" || kill -KILL "$pid" 2>/dev/null || true
}
if ((conf_changed)); then
  stop_daemon slurmd "$run_dir/slurmd.pid"
  stop_daemon slurmctld "$run_dir/slurmctld.pid"
fi
ctld_up() { scontrol ping | grep -q 'is UP'; }
if [[ -z $(live_pid slurmctld "$run_dir/slurmctld.pid") ]]; then
  log "starting slurmctld"
  slurmctld -f "$conf" </dev/null >/dev/null
fi
wait_for ctld_up || die "slurmctld does not answer; see $peer_dir/log/slurmctld.log"
if [[ -z $(live_pid slurmd "$run_dir/slurmd.pid") ]]; then
  log "starting slurmd"
  slurmd -f "$conf" </dev/null >/dev/null
fi

# Step 6: wait until the node is idle; a node left down by an earlier kill is resumed once.
node_state() { sinfo -h -N -n "$node" -o %T 2>/dev/null; }
node_idle() { [[ $(node_state) == idle ]]; }
if ! wait_for node_idle; then
  if [[ $(node_state) == down* || $(node_state) == drain* ]]; then
    log "node is $(node_state); resuming it"
    scontrol update NodeName="$node" State=RESUME || true
  fi
  wait_for node_idle || die "node $node is $(node_state), not idle; see $peer_dir/log"
fi

# Step 7: a trivial batch job must complete.
job_id="$(sbatch --parsable -J peer-smoke -o /dev/null --wrap true)"
job_state() { scontrol show job "$job_id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
job_completed() { [[ $(job_state) == COMPLETED ]]; }
wait_for job_completed || die "smoke job $job_id is $(job_state), not COMPLETED"
log "up: profile $profile, node $node idle, job $job_id completed; conf $conf"
log "for the Slurm commands: source $peer_dir/env"
