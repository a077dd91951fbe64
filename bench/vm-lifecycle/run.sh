#!/usr/bin/env bash
# bench/vm-lifecycle/run.sh [ROUNDS] — time from POST /api/vms (start: true) to a running VM,
# against `virsh define` + `virsh start` of the same domain XML on the same kind of qcow2 overlay,
# measured alternately in the same run.
#
# By default it starts a fresh ./run.sh of its own (a throwaway state directory with a new
# PostgreSQL cluster, free ports, its own libvirt network and domain prefix; all removed at the
# end) and reports the first create after that start separately from the median of the others.
# With LIMEN_URL set it measures an already running Limen instead (LIMEN_STATE_DIR, the admin
# password from LIMEN_ADMIN_PASSWORD or the state directory).
#
# Goals: first create <= 2 s; median <= 1.1 x virsh define+start. Appends a row to
# bench/results/vm-lifecycle.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
ROUNDS=${1:-7}
VIRSH=(virsh -q -c qemu:///system)

work=$(mktemp -d /tmp/limen-bench-XXXX); chmod 711 "$work"
# Every domain this run defines starts with $ours (the fresh server's) or $baseline (virsh's; not
# under the server's prefix, which its reconciler would report as a domain without a VM row).
ours=limen-bench-$$-
baseline=limen-bench-virsh-$$-
fresh=""; prefix=limen-
cleanup() {
  local status=$?
  if [ -n "$fresh" ]; then
    [ "$status" = 0 ] || { echo "--- the last lines of ./run.sh and its server:" >&2; tail -n 20 "$work/run.log" | cut -c1-400 >&2; }
    kill -TERM "$fresh" 2>/dev/null && wait "$fresh" 2>/dev/null || true
    "${VIRSH[@]}" net-destroy "$LIMEN_NETWORK" >/dev/null 2>&1 || true
    "${VIRSH[@]}" net-undefine "$LIMEN_NETWORK" >/dev/null 2>&1 || true
    runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl" -D "$STATE/postgres" -m immediate stop >/dev/null 2>&1 || true
  fi
  for dom in $("${VIRSH[@]}" list --all --name | grep -e "^$ours" -e "^$baseline" || true); do
    "${VIRSH[@]}" destroy "$dom" >/dev/null 2>&1 || true
    "${VIRSH[@]}" undefine "$dom" --nvram >/dev/null 2>&1 || true
  done
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

if [ -z "${LIMEN_URL:-}" ]; then
  # A fresh ./run.sh: what a new user gets, first create included.
  STATE=$work/state
  prefix=$ours
  export LIMEN_STATE_DIR=$STATE LIMEN_PG_PORT=$(free_port) LIMEN_NETWORK=limen-bench-$$ Limen__Hypervisor__DomainPrefix=$prefix
  URL=http://127.0.0.1:$(free_port); export LIMEN_URLS=$URL
  unset LIMEN_ADMIN_PASSWORD DATABASE_URL LIMEN_NETWORK_BRIDGE
  mode="fresh ./run.sh"
  t0=$(now_ms)
  : >"$work/run.log"
  ./run.sh >"$work/run.log" 2>&1 &
  fresh=$!
  until grep 'Limen is running at' "$work/run.log" >/dev/null; do
    kill -0 "$fresh" 2>/dev/null || { cat "$work/run.log" >&2; echo "./run.sh exited before serving" >&2; exit 1; }
    sleep 0.5
  done
  echo "./run.sh up after $(( $(now_ms) - t0 )) ms (state $STATE, $URL)"
  PASSWORD=$(sed -n 's/.*Admin login:.*password \([^ ]*\).*/\1/p' "$work/run.log")
else
  URL=$LIMEN_URL
  STATE=${LIMEN_STATE_DIR:-$PWD/.limen}
  PASSWORD=${LIMEN_ADMIN_PASSWORD:-$(cat "$STATE/initial-admin-password")}
  mode="running server"
fi

token=$(curl -fsS -X POST "$URL/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
auth=(-H "authorization: Bearer $token")
image=$(curl -fsS "$URL/api/images" "${auth[@]}" | grep -o '"id":"[^"]*","name":"tiny-guest"' | cut -d'"' -f4)
[ -n "$image" ] || { echo "no tiny-guest image registered (run ./run.sh)" >&2; exit 1; }
base=$STATE/images/tiny-guest.qcow2

limen_times=(); virsh_times=(); overlay_times=()
for round in $(seq 1 "$ROUNDS"); do
  # Limen: one request creates the overlay, defines and starts the domain, and records it.
  t0=$(now_ms)
  body=$(curl -fsS -X POST "$URL/api/vms" "${auth[@]}" -H 'content-type: application/json' \
    -d "{\"name\":\"bench-$round-$$\",\"vcpus\":1,\"memory_mb\":256,\"disk_gb\":1,\"image_id\":\"$image\",\"start\":true}")
  t1=$(now_ms)
  grep '"state":"running"' <<<"$body" >/dev/null || { echo "Limen did not start the VM: $body" >&2; exit 1; }
  id=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' <<<"$body")
  limen_times+=($((t1 - t0)))
  # The baseline gets the very XML Limen defined, with its own name, uuid and overlay.
  xml=$("${VIRSH[@]}" dumpxml --inactive "$prefix$id")
  curl -fsS -o /dev/null -X DELETE "$URL/api/vms/$id" "${auth[@]}"

  uuid=$(cat /proc/sys/kernel/random/uuid)
  disk=$work/$uuid.qcow2
  t0=$(now_ms)
  qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$disk" 1G
  overlay_times+=($(( $(now_ms) - t0 )))
  sed -e "s|<name>$prefix$id</name>|<name>${baseline}$uuid</name>|" -e "s|<uuid>$id</uuid>|<uuid>$uuid</uuid>|" \
      -e "s|$STATE/disks/$id|$work/$uuid|g" -e "/<mac address/d" <<<"$xml" > "$work/domain.xml"
  t0=$(now_ms)
  "${VIRSH[@]}" define "$work/domain.xml" >/dev/null
  "${VIRSH[@]}" start "${baseline}$uuid" >/dev/null
  t1=$(now_ms)
  virsh_times+=($((t1 - t0)))
  "${VIRSH[@]}" destroy "${baseline}$uuid" >/dev/null
  "${VIRSH[@]}" undefine "${baseline}$uuid" >/dev/null
  rm -f "$disk" "$work/$uuid.serial.log"
done

first=${limen_times[0]}
limen=$(printf '%s\n' "${limen_times[@]:1}" | median)
virsh=$(printf '%s\n' "${virsh_times[@]}" | median)
overlay=$(printf '%s\n' "${overlay_times[@]}" | median)
ratio=$(awk -v a="$limen" -v b="$virsh" 'BEGIN {printf "%.2f", a / b}')
# Limen also creates the overlay; by hand that is one qemu-img more, shown apart (not in the goal).
with_overlay=$(awk -v a="$limen" -v b="$virsh" -v c="$overlay" 'BEGIN {printf "%.2f", a / (b + c)}')
load=$(cut -d' ' -f1 /proc/loadavg)
echo "Limen times (ms): ${limen_times[*]}; virsh: ${virsh_times[*]}; qemu-img overlay: ${overlay_times[*]}"
echo "First POST /api/vms after the start: $first ms (goal <= 2000); median of the other $((ROUNDS - 1)): $limen ms;" \
  "virsh define+start median: $virsh ms; ratio $ratio (goal <= 1.1); with qemu-img's $overlay ms added to virsh: $with_overlay; load average $load"
file=bench/results/vm-lifecycle.md
[ -f "$file" ] || printf '# vm-lifecycle\n\n' > "$file"
grep -F '| when (UTC) | mode |' "$file" >/dev/null || printf '\n| when (UTC) | mode | rounds | first create | Limen median (rounds 2..N) | virsh median | ratio | ratio vs virsh + qemu-img | load avg |\n|---|---|---|---|---|---|---|---|---|\n' >> "$file"
echo "| $(date -u +%Y-%m-%dT%H:%MZ) | $mode | $ROUNDS | $first ms | $limen ms | $virsh ms | $ratio | $with_overlay | $load |" >> "$file"
