#!/usr/bin/env bash
# Start a single-node SLURM cluster on this Debian machine, for brightflow's SLURM test.
#
#   sudo ci/slurm-up.sh            # then sinfo, sbatch, snakemake --profile profiles/slurm ...
#   sudo ci/slurm-down.sh          # stops exactly what slurm-up.sh started
#
# - Installs slurmctld, slurmd, slurm-client and munge with apt-get (--no-install-recommends)
#   when they are missing. Needs root (it is meant for CI machines and throw-away VMs).
# - Writes /etc/slurm/slurm.conf and /etc/slurm/gres.conf (the default place: the executor's
#   job step removes SLURM_* variables such as SLURM_CONF before it calls srun), marked as
#   written by this script; it refuses to touch a slurm.conf it did not write, so a node of a
#   real cluster is left alone. State, logs and pid files go to $BRIGHTFLOW_SLURM_DIR
#   (default /tmp/brightflow-slurm).
# - One node (this machine) on 127.0.0.1 only: the daemons bind to the loopback address.
#   Partitions: main (default) and gpu. The node has one fake GPU for scheduling (a character
#   device made with mknod, so SLURM can hand out gres/gpu and sets CUDA_VISIBLE_DEVICES), no
#   cgroups, no accounting database (hence `slurm-status-command: squeue` in the profile).
# - Idempotent: when the cluster already answers it does nothing. It records the pid of every
#   daemon it starts in $BRIGHTFLOW_SLURM_DIR/started.pids (munged only when it started it).
# - Returns when `sinfo` shows the node idle (or fails after 60 s with the daemons' logs).
set -euo pipefail

STATE=${BRIGHTFLOW_SLURM_DIR:-/tmp/brightflow-slurm}
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MARK="# Written by brightflow's ci/slurm-up.sh"
PIDS="$STATE/started.pids"
NODE=$(hostname -s)

log() { echo "slurm-up: $*" >&2; }
# shellcheck source=ci/apt-install.sh
. "$(dirname "$0")/apt-install.sh"

if [ "$(id -u)" != 0 ]; then
    log "run me as root (I install packages and start system daemons)"
    exit 1
fi

node_idle() {
    sinfo --noheader --nodes="$NODE" --format='%t' 2>/dev/null | grep -qx 'idle'
}

for file in "$CONF" "$GRES"; do
    if [ -e "$file" ] && ! head -n 1 "$file" | grep -qF "$MARK"; then
        log "$file exists and was not written by me: this machine has its own SLURM set-up; I stop here"
        exit 1
    fi
done

if [ -f "$CONF" ] && node_idle; then
    log "already up ($(sinfo --noheader --format='%P %t %N' | tr '\n' ' '))"
    exit 0
fi

# --- packages ---------------------------------------------------------------------------------
missing=()
for bin in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge; do
    command -v "${bin%%:*}" >/dev/null 2>&1 || missing+=("${bin##*:}")
done
install_missing "${missing[@]}"

mkdir -p "$STATE/ctld" "$STATE/slurmd"
touch "$PIDS"

# --- munge: authentication between the daemons and the commands --------------------------------
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 600 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    echo "munged $(cat /run/munge/munged.pid)" >>"$PIDS"
    log "started munged (pid $(cat /run/munge/munged.pid))"
fi

# --- configuration --------------------------------------------------------------------------
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
# A character device per fake GPU (1,3 = the same device as /dev/null): SLURM needs a distinct
# File= per GPU to count and hand them out (Count= alone makes the node INVALID).
[ -c "$STATE/fake-gpu0" ] || mknod "$STATE/fake-gpu0" c 1 3

mkdir -p /etc/slurm
cat >"$CONF" <<EOF
$MARK: a single-node test cluster on 127.0.0.1 ($STATE).
ClusterName=brightflow-ci
SlurmctldHost=$NODE(127.0.0.1)
# bind the daemons to 127.0.0.1, not to every interface
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# no cgroups (containers, CI machines): track processes by /proc, no task confinement
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job that asks no memory takes the whole node and jobs run one at a time
DefMemPerCPU=1024
# finished jobs stay visible to squeue and scontrol for an hour: the executor's status queries
# need at least 3x its first status delay (no slurmdbd, so no sacct), and the test reads the
# segmentation job's allocation with scontrol after the workflow ends
MinJobAge=3600
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
cat >"$GRES" <<EOF
$MARK
NodeName=$NODE Name=gpu File=$STATE/fake-gpu0
EOF

# --- daemons --------------------------------------------------------------------------------
start_daemon() {  # name, pidfile, command...
    local name=$1 pidfile=$2
    shift 2
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        return
    fi
    rm -f "$pidfile"
    "$@"
    for _ in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.1; done
    if [ ! -s "$pidfile" ]; then
        log "$name did not start; its log:"
        tail -n 30 "$STATE/$name.log" >&2 || true
        exit 1
    fi
    echo "$name $(cat "$pidfile")" >>"$PIDS"
    log "started $name (pid $(cat "$pidfile"))"
}
start_daemon slurmctld "$STATE/slurmctld.pid" slurmctld -f "$CONF"
start_daemon slurmd "$STATE/slurmd.pid" slurmd -f "$CONF" -N "$NODE"

for _ in $(seq 120); do
    if node_idle; then
        log "up: $(sinfo --noheader --format='%P %t %N %G' | tr '\n' ' ')"
        exit 0
    fi
    sleep 0.5
done
log "node $NODE is not idle after 60 s:"
sinfo --long --Node >&2 || true
tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
exit 1
