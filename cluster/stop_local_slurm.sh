#!/usr/bin/env bash
# Stop the one-node SLURM cluster of cluster/start_local_slurm.sh: cancels its jobs and stops the
# daemons it started (found by their pid files). Safe to run when nothing is running.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "stop_local_slurm: must run as root" >&2; exit 1; }

if [ -e /etc/slurm/slurm.conf ] && ! head -n 1 /etc/slurm/slurm.conf | grep -qF "cluster/start_local_slurm.sh"; then
    echo "stop_local_slurm: /etc/slurm/slurm.conf was not written by start_local_slurm.sh: leaving it alone" >&2
    exit 1
fi

stop() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    echo "stop_local_slurm: pid $pid ($pidfile) still running after 10 s" >&2
    return 1
}

if command -v scancel >/dev/null && [ -s /run/slurm/slurmctld.pid ]; then
    # Every job of this throw-away cluster goes with it.
    timeout 10 squeue -h -o %i 2>/dev/null | xargs -r timeout 10 scancel 2>/dev/null || true
fi
stop /run/slurm/slurmd.pid
stop /run/slurm/slurmctld.pid
stop /run/munge/munged.pid
echo "local SLURM stopped"
