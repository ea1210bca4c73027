#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine, so that `snakemake --profile profiles/slurm`
# can be tried (and tested) without a real cluster. Needs root and Debian's `slurm-wlm` and
# `munge` packages (`apt-get install -y slurm-wlm munge`). Safe to run again: daemons already
# running are left alone, and it returns once the node accepts jobs.
#
# What it sets up: munged, slurmctld and slurmd on this host; one node named after
# `hostname -s` with HSISEU_SLURM_CPUS CPUs (default 2) and most of the RAM in /proc/meminfo;
# one default partition `debug`; no accounting database (slurmdbd is too heavy for a test
# node): `sacct` then answers "accounting storage is disabled", so the profile queries job
# states with `squeue`, and MinJobAge keeps finished jobs visible to `squeue` for 10 minutes.
# Finished jobs are also appended to /var/log/slurm/jobcomp.log (jobcomp/filetxt).
# HSISEU_SLURM_FAKE_GPU=1 gives the node one pretend GPU (a `gpu` GRES backed by /dev/null) and
# adds a partition `gpu`, to see the profile's GPU request for training reach sbatch.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by hsiseu cluster/start_local_slurm.sh"
CPUS=${HSISEU_SLURM_CPUS:-2}
WAIT_S=${HSISEU_SLURM_WAIT_S:-60}
FAKE_GPU=${HSISEU_SLURM_FAKE_GPU:-0}
NODE=$(hostname -s)

die() { echo "start_local_slurm: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it writes $CONF and starts the daemons)"
for tool in munged slurmctld slurmd sinfo scontrol; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install -y slurm-wlm munge"
done

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# --- configuration (never overwrite a slurm.conf that this script did not write) ---------------
if [ -e "$CONF" ] && ! head -n 1 "$CONF" | grep -qF "$MARK"; then
    die "$CONF exists and was not written by this script: refusing to replace a real cluster's config"
fi
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
node_gres="" gres_types="" gpu_partition=""
if [ "$FAKE_GPU" = 1 ]; then
    node_gres=" Gres=gpu:1"
    gres_types="GresTypes=gpu"
    gpu_partition="PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP"
fi
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
new_conf=$(cat <<EOF
$MARK
ClusterName=hsiseu-local
$gres_types
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
NodeName=$NODE CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN$node_gres
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
$gpu_partition
EOF
)
new_gres="NodeName=$NODE Name=gpu File=/dev/null"
conf_changed=0
if [ ! -e "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" > "$CONF"
    conf_changed=1
fi
if [ "$FAKE_GPU" = 1 ] && [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "$new_gres" ]; then
    printf '%s\n' "$new_gres" > /etc/slurm/gres.conf
    conf_changed=1
elif [ "$FAKE_GPU" != 1 ] && [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" = "$new_gres" ]; then
    rm /etc/slurm/gres.conf  # the pretend GPU of an earlier HSISEU_SLURM_FAKE_GPU=1 start
    conf_changed=1
fi

# --- munge ---------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 600 /etc/munge/munge.key
fi
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
if ! running /run/munge/munged.pid; then
    runuser -u munge -- munged
fi

# --- slurm daemons -------------------------------------------------------------------------------
if [ "$conf_changed" = 1 ]; then
    # A new config only takes effect on a restart of the daemons this script started.
    for pidfile in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid; do
        if running "$pidfile"; then kill "$(cat "$pidfile")"; fi
    done
    for _ in $(seq 50); do
        running /run/slurm/slurmd.pid || running /run/slurm/slurmctld.pid || break
        sleep 0.2
    done
fi
running /run/slurm/slurmctld.pid || slurmctld
running /run/slurm/slurmd.pid || slurmd

# --- wait until the node takes jobs --------------------------------------------------------------
deadline=$((SECONDS + WAIT_S))
state=""
while [ $SECONDS -lt $deadline ]; do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated) break ;;
        down*|drain*|drained*)
            # ReturnToService=2 covers most cases; a node left down by an earlier run needs this.
            scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
case "$state" in
    idle|mixed|allocated) ;;
    *) die "node $NODE is '${state:-unknown}' after ${WAIT_S}s; see /var/log/slurm/slurmctld.log and slurmd.log" ;;
esac
sinfo
