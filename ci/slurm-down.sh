#!/usr/bin/env bash
# Stop the daemons that ci/slurm-up.sh started, by the pids it recorded, newest first
# (slurmd, slurmctld, then munged if slurm-up started it), and remove the /etc/slurm files it
# wrote. Daemons it did not start are left alone. Safe to run twice, or when slurm-up.sh was
# never run.
set -uo pipefail

STATE=${BRIGHTFLOW_SLURM_DIR:-/tmp/brightflow-slurm}
PIDS="$STATE/started.pids"

log() { echo "slurm-down: $*" >&2; }

if [ ! -s "$PIDS" ]; then
    log "nothing recorded in $PIDS; nothing to stop"
    exit 0
fi

status=0
while read -r name pid; do
    [ -n "${pid:-}" ] || continue
    # the pid must still belong to the daemon we started (pids are reused)
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
        log "$name (pid $pid) is not running"
        continue
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.5
    fi
    if kill -0 "$pid" 2>/dev/null; then
        log "could not stop $name (pid $pid)"
        status=1
    else
        log "stopped $name (pid $pid)"
    fi
done < <(tac "$PIDS")

if [ "$status" = 0 ]; then
    rm -f "$PIDS"
    # the configuration slurm-up.sh wrote (only if it is still the one it wrote): without it,
    # sinfo fails at once instead of waiting for a controller that is gone
    for file in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
        if [ -f "$file" ] && head -n 1 "$file" | grep -qF "# Written by brightflow's ci/slurm-up.sh"; then
            rm -f "$file"
        fi
    done
fi
exit "$status"
