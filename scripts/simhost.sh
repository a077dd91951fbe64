#!/usr/bin/env bash
# scripts/simhost.sh up|down|kill|restart N  -  simulated hypervisor host N (2..9) on this machine,
# after /work/shared/reference/multi-host.md (verified there, rewritten here):
#   a mount + UTS namespace with private /etc/libvirt, /run/libvirt, /var/lib/libvirt,
#   /var/cache/libvirt and /var/log/libvirt (under $SIMHOST_BASE/limen-test-simhost-N/root), its own
#   virtlogd + libvirtd, reachable as qemu+tcp://127.0.0.N/system (loopback only), hostname simhostN,
#   and a folder for its VM disks ($DIR/disks) that every host and QEMU (libvirt-qemu) can reach.
# The system instance (qemu:///system) is never touched: nothing is mounted in this mount namespace,
# none of its files change (its config and QEMU capability cache are only read).
#   up       start host N (a leftover of an earlier run is brought down first)
#   kill     SIGKILL its libvirtd (the host going away); guests and virtlogd stay
#   restart  start its libvirtd again in the same namespace (after kill, or TERM + start); guests kept
#   down     destroy + undefine its domains, stop its QEMUs and daemons, remove its folder
# Needs root, util-linux unshare/nsenter, libvirt-daemon-system. Env: SIMHOST_BASE (default /tmp).
set -euo pipefail

CMD=${1:?usage: $0 up|down|kill|restart N}
N=${2:?host number 2..9}
[[ $N =~ ^[2-9]$ ]] || { echo "host number must be 2..9, not '$N'" >&2; exit 2; }
DIR=${SIMHOST_BASE:-/tmp}/limen-test-simhost-$N
R=$DIR/root
ADDR=127.0.0.$N
URI=qemu+tcp://$ADDR/system

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_gone PID: until the process is gone (or a zombie, which counts as gone).
wait_gone() {
  local i=0
  while [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo Z)" != Z ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "host$N: pid $1 did not exit" >&2; return 1; }; sleep 0.1
  done
}

wait_up() {   # until the daemon answers over TCP (~0.2 s with the QEMU caps cache copied in)
  local i=0
  until virsh -q -c "$URI" version >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "host$N: no answer on $URI; log:" >&2; tail -n 20 "$R/log/libvirtd.log" >&2 || true; exit 1; }
    sleep 0.1
  done
}

start_libvirtd() {   # inside the namespace that virtlogd keeps alive
  local i=0
  until alive "$R/run/virtlogd.pid"; do i=$((i + 1)); [ $i -lt 100 ] || { echo "host$N: virtlogd not running" >&2; exit 1; }; sleep 0.1; done
  nsenter -t "$(cat "$R/run/virtlogd.pid")" -m -u -- libvirtd -d --listen -p /run/libvirt/libvirtd.pid
  wait_up
}

kill_libvirtd() {
  if alive "$R/run/libvirtd.pid"; then
    local p; p=$(cat "$R/run/libvirtd.pid"); kill -"$1" "$p" 2>/dev/null || true; wait_gone "$p"
  fi
}

down() {
  [ -d "$DIR" ] || return 0
  if alive "$R/run/libvirtd.pid"; then
    local d domains
    domains=$(virsh -q -c "$URI" list --all --name 2>/dev/null || true)
    for d in $domains; do
      virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1 || true
      virsh -q -c "$URI" undefine --snapshots-metadata "$d" >/dev/null 2>&1 || true
    done
    kill_libvirtd TERM
  fi
  local f q
  for f in "$R"/run/qemu/*.pid; do   # guests left behind by a libvirtd that died
    [ -s "$f" ] || continue
    q=$(cat "$f"); kill -KILL "$q" 2>/dev/null || true; wait_gone "$q" || true
  done
  if alive "$R/run/virtlogd.pid"; then
    q=$(cat "$R/run/virtlogd.pid"); kill -TERM "$q" 2>/dev/null || true; wait_gone "$q" || true
  fi
  # The namespace (and its bind mounts) went with its last process; from here these are plain folders.
  rm -rf "$DIR"
}

case $CMD in
up)
  down
  mkdir -p "$R" "$DIR/disks"
  # libvirt-qemu must reach the disks (QEMU opens them as that user) from every host.
  chmod 755 "$DIR" "$DIR/disks"
  cp -a /etc/libvirt "$R/etc"
  # This machine's defaults, without its domains, networks or pools: a network autostarted here
  # would create its bridge in the machine's (shared) network namespace.
  rm -rf "$R/etc/qemu/"*.xml "$R/etc/qemu/autostart" "$R/etc/qemu/networks" "$R/etc/storage"
  cat > "$R/etc/libvirtd.conf" <<CONF
# simulated host $N: plain TCP without auth, bound to a loopback address only
listen_tls = 0
listen_tcp = 1
listen_addr = "$ADDR"
auth_tcp = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
# must differ from every other host's, or migration fails ("Attempt to migrate guest to the same host")
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
  cat > "$R/etc/qemu.conf" <<CONF
# simulated host $N: consoles and incoming migration on $ADDR (migration_host too, or the source is
# told this machine's hostname), port ranges disjoint from the system instance's defaults
# (5900+, 49152-49215) and from every other simulated host
vnc_listen = "$ADDR"
spice_listen = "$ADDR"
remote_display_port_min = $((5900 + 50 * (N - 1)))
remote_display_port_max = $((5949 + 50 * (N - 1)))
migration_address = "$ADDR"
migration_host = "$ADDR"
migration_port_min = $((49200 + 100 * N))
migration_port_max = $((49263 + 100 * N))
# No per-VM cgroups: all hosts share the machine's cgroup tree, where a domain that gets the same
# id and name on two fresh hosts (migration) would share qemu-<id>-<name>.libvirt-qemu.
cgroup_controllers = [ ]
CONF
  chmod 600 "$R/etc/qemu.conf"
  mkdir -p "$R/run" "$R/lib/images" "$R/lib/boot" "$R/lib/qemu" "$R/cache" "$R/log/qemu" "$R/host1-run"
  chmod 755 "$R/run" "$R/lib" "$R/log" "$R/log/qemu"; chmod 711 "$R/lib/images" "$R/lib/boot" "$R/cache"
  chown libvirt-qemu:libvirt-qemu "$R/lib/qemu"; chmod 750 "$R/lib/qemu"
  cp -a /var/cache/libvirt/qemu "$R/cache/" 2>/dev/null || true   # QEMU caps cache: up in ~0.2 s, not ~8 s
  { cat /etc/hosts; echo "$ADDR simhost$N"; } > "$R/hosts"
  mkdir -p /run/libvirt   # mount point (exists wherever the system libvirtd has run)
  # --propagation private keeps every bind inside the new namespace. The daemons fork into the
  # background and keep it alive; nsenter -t <virtlogd pid> -m -u enters it again.
  unshare --mount --uts --propagation private -- sh -euc "
    hostname simhost$N
    mount --bind '$R/hosts' /etc/hosts
    mount --bind /run/libvirt '$R/host1-run'   # the system instance's sockets, for p2p migration to it
    mount --bind '$R/etc'   /etc/libvirt
    mount --bind '$R/run'   /run/libvirt
    mount --bind '$R/lib'   /var/lib/libvirt
    mount --bind '$R/cache' /var/cache/libvirt
    mount --bind '$R/log'   /var/log/libvirt
    virtlogd -d -p /run/libvirt/virtlogd.pid
  "
  start_libvirtd
  ;;
kill)
  kill_libvirtd KILL
  ;;
restart)
  kill_libvirtd TERM
  start_libvirtd
  ;;
down)
  down
  ;;
*)
  echo "usage: $0 up|down|kill|restart N" >&2; exit 2
  ;;
esac
