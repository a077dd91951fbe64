#!/usr/bin/env bash
# bench/migration/run.sh [ROUNDS] — live migration through the API (POST /api/vms/{id}/actions/migrate)
# against plain `virsh migrate --live` of a twin guest between the same two simulated hosts
# (scripts/simhost.sh: hosts 4 and 5 by default, so the test suite's hosts 2 and 3 are left alone;
# MIGRATION_BENCH_HOSTS="N M" picks others), alternating in one run, each
# round in the other direction. Both guests are the tiny guest with 192 MiB on shared storage (one
# disk folder for both hosts), so both move memory only, in direct mode with --unsafe, to the
# target's migration address: the same work, and what differs is Limen's own cost (its checks,
# the intent rows, progress reads, the settlement).
#
# Wall time: the API call as curl sees it vs the virsh command. Downtime: the target's completed
# job ("Total downtime": the API records it as downtime_ms, virsh is asked with domjobinfo).
# Starts a fresh ./run.sh of its own (throwaway state, PostgreSQL cluster and ports) and brings the
# two hosts up (and down at the end if it brought them up). Goal: median wall <= 1.1 x virsh, the
# same downtime. Appends a row to bench/results/migration.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
ROUNDS=${1:-5}
read -r N2 N3 <<<"${MIGRATION_BENCH_HOSTS:-4 5}"
H2=qemu+tcp://127.0.0.$N2/system
H3=qemu+tcp://127.0.0.$N3/system

# downtime_ms URI DOMAIN: "Total downtime" of the domain's last completed job on that host.
downtime_ms() { virsh -q -c "$1" domjobinfo --completed "$2" | awk -F: '/Total downtime/ {gsub(/[^0-9]/, "", $2); print $2}'; }
# wait_banner FILE: the tiny guest's boot banner in its serial log.
wait_banner() {
  for _ in $(seq 1 240); do grep -a 'LIMEN-GUEST READY' "$1" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "no boot banner in $1" >&2; return 1
}

work=$(mktemp -d /tmp/limen-bench-XXXX); chmod 711 "$work"
shared=$work/disks; mkdir -p "$shared"; chmod 711 "$shared"
prefix=limen-bench-$$-
twin=limen-bench-virsh-$$
fresh=""; brought_up=()
cleanup() {
  local status=$?
  if [ -n "$fresh" ]; then
    [ "$status" = 0 ] || { echo "--- the last lines of ./run.sh and its server:" >&2; tail -n 20 "$work/run.log" | cut -c1-400 >&2; }
    kill -TERM "$fresh" 2>/dev/null && wait "$fresh" 2>/dev/null || true
    runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl" -D "$STATE/postgres" -m immediate stop >/dev/null 2>&1 || true
  fi
  for uri in $H2 $H3; do
    for dom in $(virsh -q -c "$uri" list --all --name 2>/dev/null | grep -e "^$prefix" -e "^$twin" || true); do
      virsh -q -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
      virsh -q -c "$uri" undefine "$dom" >/dev/null 2>&1 || true
    done
  done
  for n in "${brought_up[@]}"; do scripts/simhost.sh down "$n" >/dev/null 2>&1 || true; done
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

for n in $N2 $N3; do
  if ! virsh -q -c "qemu+tcp://127.0.0.$n/system" version >/dev/null 2>&1; then
    scripts/simhost.sh up "$n" >/dev/null
    brought_up+=("$n")
  fi
done

STATE=$work/state
export LIMEN_STATE_DIR=$STATE LIMEN_PG_PORT=$(free_port)
URL=http://127.0.0.1:$(free_port); export LIMEN_URLS=$URL
unset LIMEN_ADMIN_PASSWORD DATABASE_URL
export Limen__Hypervisor__DomainPrefix=$prefix Limen__Hypervisor__Network=
export Limen__Hypervisor__Name=host$N2 Limen__Hypervisor__Uri=$H2 Limen__Hypervisor__ConsoleAddress=127.0.0.$N2 \
  Limen__Hypervisor__MigrationAddress=127.0.0.$N2 Limen__Hypervisor__DiskDir=$shared
export Limen__Hosts__0__Name=host$N3 Limen__Hosts__0__Uri=$H3 Limen__Hosts__0__ConsoleAddress=127.0.0.$N3 \
  Limen__Hosts__0__MigrationAddress=127.0.0.$N3 Limen__Hosts__0__DiskDir=$shared
: >"$work/run.log"
./run.sh >"$work/run.log" 2>&1 &
fresh=$!
until grep 'Limen is running at' "$work/run.log" >/dev/null; do
  kill -0 "$fresh" 2>/dev/null || { cat "$work/run.log" >&2; echo "./run.sh exited before serving" >&2; exit 1; }
  sleep 0.5
done
PASSWORD=$(sed -n 's/.*Admin login:.*password \([^ ]*\).*/\1/p' "$work/run.log")
token=$(curl -fsS -X POST "$URL/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
api() { curl -sS --fail-with-body -H "authorization: Bearer $token" -H 'content-type: application/json' "$@"; }

# Limen's guest, booted through the API on the first host.
image=$(api "$URL/api/images" | grep -o '"id":"[^"]*","name":"tiny-guest"' | cut -d'"' -f4)
created=$(api -X POST "$URL/api/vms" -d "{\"name\":\"mig-bench\",\"vcpus\":1,\"memory_mb\":192,\"disk_gb\":1,\"image_id\":\"$image\",\"start\":true}") \
  || { echo "create failed: $created" >&2; exit 1; }
vm=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' <<<"$created")
wait_banner "$shared/$vm.serial.log"

# Its twin for virsh: the same domain XML (its own disk overlay and serial log), on the first host too.
qemu-img create -q -f qcow2 -F qcow2 -b "$STATE/images/tiny-guest.qcow2" "$shared/$twin.qcow2" 1G
virsh -q -c "$H2" dumpxml --inactive "$prefix$vm" \
  | sed -e "s#<name>.*</name>#<name>$twin</name>#" -e '/<uuid>/d' -e "/<mac /d" -e "s#$shared/$vm#$shared/$twin#g" > "$work/twin.xml"
virsh -q -c "$H2" define "$work/twin.xml" >/dev/null
virsh -q -c "$H2" start "$twin" >/dev/null
wait_banner "$shared/$twin.serial.log"

api_ms=(); virsh_ms=(); api_down=(); virsh_down=()
from=$H2; to=$H3; to_addr=127.0.0.$N3
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now_ms)
  # No target: placement picks the only other host, the one virsh moves the twin to.
  api -X POST "$URL/api/vms/$vm/actions/migrate" >/dev/null
  api_ms+=($(( $(now_ms) - t0 )))
  # The newest migration comes first.
  api_down+=("$(api "$URL/api/vms/$vm/migrations" | awk -F'"downtime_ms":' '{split($2, a, /[^0-9]/); print a[1]}')")

  t0=$(now_ms)
  virsh -q -c "$from" migrate --live --persistent --undefinesource --unsafe --migrateuri "tcp://$to_addr" "$twin" "$to" >/dev/null
  virsh_ms+=($(( $(now_ms) - t0 )))
  virsh_down+=("$(downtime_ms "$to" "$twin")")
  echo "round $round ($( [ "$to" = "$H3" ] && echo "host$N2 → host$N3" || echo "host$N3 → host$N2")): API ${api_ms[-1]} ms (downtime ${api_down[-1]} ms), virsh ${virsh_ms[-1]} ms (downtime ${virsh_down[-1]} ms)"
  if [ "$to" = "$H3" ]; then from=$H3; to=$H2; to_addr=127.0.0.$N2; else from=$H2; to=$H3; to_addr=127.0.0.$N3; fi
done

a=$(printf '%s\n' "${api_ms[@]}" | median); v=$(printf '%s\n' "${virsh_ms[@]}" | median)
ad=$(printf '%s\n' "${api_down[@]}" | median); vd=$(printf '%s\n' "${virsh_down[@]}" | median)
ratio=$(awk -v a="$a" -v v="$v" 'BEGIN {printf "%.2f", a / v}')
echo "median wall: API $a ms, virsh $v ms = ${ratio}x (goal <= 1.1x); median downtime: API $ad ms, virsh $vd ms"

results=bench/results/migration.md
if [ ! -f "$results" ]; then
  cat >"$results" <<'HEAD'
# Live migration: API vs virsh migrate --live

`bench/migration/run.sh [ROUNDS]` (default 5): two simulated hosts (scripts/simhost.sh), the tiny
guest with 192 MiB on shared storage, direct mode, alternating API and virsh each round.
Goal: median wall <= 1.1 x virsh, the same downtime.

| date | commit | rounds | API wall median | virsh wall median | ratio | API downtime median | virsh downtime median |
|---|---|---|---|---|---|---|---|
HEAD
fi
echo "| $(date -u +%Y-%m-%dT%H:%MZ) | $(git rev-parse --short HEAD) | $ROUNDS | $a ms | $v ms | ${ratio}x | $ad ms | $vd ms |" >>"$results"
