#!/usr/bin/env bash
# bench/vm-lifecycle/run.sh [ROUNDS] — median time from POST /api/vms (start: true) to a running VM,
# against `virsh define` + `virsh start` of the same domain XML on the same kind of qcow2 overlay,
# measured alternately in the same run. Needs a running Limen (./run.sh) with the tiny-guest image.
# Prints both medians and the ratio, and appends them to bench/results/vm-lifecycle.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-7}
URL=${LIMEN_URL:-http://127.0.0.1:18443}
STATE=${LIMEN_STATE_DIR:-$PWD/.limen}
PASSWORD=${LIMEN_ADMIN_PASSWORD:-$(cat "$STATE/initial-admin-password")}
VIRSH=(virsh -q -c qemu:///system)

token=$(curl -fsS -X POST "$URL/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
auth=(-H "authorization: Bearer $token")
image=$(curl -fsS "$URL/api/images" "${auth[@]}" | grep -o '"id":"[^"]*","name":"tiny-guest"' | cut -d'"' -f4)
[ -n "$image" ] || { echo "no tiny-guest image registered (run ./run.sh)" >&2; exit 1; }
base=$STATE/images/tiny-guest.qcow2
work=$(mktemp -d /tmp/limen-bench-XXXX); chmod 711 "$work"
trap 'rm -rf "$work"' EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

limen_times=(); virsh_times=()
for round in $(seq 1 "$ROUNDS"); do
  # Limen: one request creates the overlay, defines and starts the domain, and records it.
  t0=$(now_ms)
  body=$(curl -fsS -X POST "$URL/api/vms" "${auth[@]}" -H 'content-type: application/json' \
    -d "{\"name\":\"bench-$round-$$\",\"vcpus\":1,\"memory_mb\":256,\"disk_gb\":1,\"image_id\":\"$image\",\"start\":true}")
  t1=$(now_ms)
  grep -q '"state":"running"' <<<"$body" || { echo "Limen did not start the VM: $body" >&2; exit 1; }
  id=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' <<<"$body")
  limen_times+=($((t1 - t0)))
  # The baseline gets the very XML Limen defined, with its own name, uuid and overlay.
  xml=$("${VIRSH[@]}" dumpxml --inactive "limen-$id")
  curl -fsS -o /dev/null -X DELETE "$URL/api/vms/$id" "${auth[@]}"

  uuid=$(cat /proc/sys/kernel/random/uuid)
  disk=$work/$uuid.qcow2
  qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$disk" 1G
  sed -e "s|<name>limen-$id</name>|<name>limen-bench-$uuid</name>|" -e "s|<uuid>$id</uuid>|<uuid>$uuid</uuid>|" \
      -e "s|$STATE/disks/$id|$work/$uuid|g" -e "/<mac address/d" <<<"$xml" > "$work/domain.xml"
  t0=$(now_ms)
  "${VIRSH[@]}" define "$work/domain.xml" >/dev/null
  "${VIRSH[@]}" start "limen-bench-$uuid" >/dev/null
  t1=$(now_ms)
  virsh_times+=($((t1 - t0)))
  "${VIRSH[@]}" destroy "limen-bench-$uuid" >/dev/null
  "${VIRSH[@]}" undefine "limen-bench-$uuid" >/dev/null
  rm -f "$disk" "$work/$uuid.serial.log"
done

limen=$(printf '%s\n' "${limen_times[@]}" | median)
virsh=$(printf '%s\n' "${virsh_times[@]}" | median)
ratio=$(awk -v a="$limen" -v b="$virsh" 'BEGIN {printf "%.2f", a / b}')
line="| $(date -u +%Y-%m-%dT%H:%MZ) | $ROUNDS | $limen ms | $virsh ms | $ratio |"
echo "POST /api/vms (start) median: $limen ms; virsh define+start median: $virsh ms; ratio $ratio (target <= 1.2)"
file=bench/results/vm-lifecycle.md
[ -f "$file" ] || printf '# vm-lifecycle\n\nMedian time to a running VM: Limen `POST /api/vms` (start: true; overlay + define + start + database) vs `virsh define` + `virsh start` of the same XML on a fresh overlay (overlay creation not timed). Machine: 2 cores, TCG.\n\n| when (UTC) | rounds | Limen | virsh | ratio |\n|---|---|---|---|---|\n' > "$file"
echo "$line" >> "$file"
