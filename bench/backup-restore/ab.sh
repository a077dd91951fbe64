#!/usr/bin/env bash
# bench/backup-restore/ab.sh BEFORE_DLL [AFTER_DLL] — two Limen builds interleaved on the bench database (ROUNDS=5,
# VMS=1000 AUDIT=100000; VMS=10000 AUDIT=1000000 for the large one): medians of backup, restore and their main steps.
# The same run measures both, so a change shows apart from the machine's noise. AFTER_DLL defaults to this tree's published build (scripts/lib.sh build_limen, as ./run.sh).
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/../lib.sh"
bin=$(pg_bin); base_url=$(cat "$LIMEN_STATE_DIR/database-url"); server=${base_url%/*}
w=$(mktemp -d /tmp/limen-bench-ab-XXXXXX); src=limen_bench_ab_$(date +%s)
declare -A dll=([before]=$(realpath "$1") [after]=$(realpath "${2:-$LIMEN_DLL}"))
limen() { DATABASE_URL=$2 LIMEN_STATE_DIR=$w/state dotnet "${dll[$1]}" "${@:3}"; }
trap 'psql_limen -c "DROP DATABASE IF EXISTS $src WITH (FORCE)" >/dev/null 2>&1; rm -rf "$w"' EXIT
psql_limen -c "CREATE DATABASE $src" >/dev/null
limen after "$server/$src" migrate >/dev/null
PGPASSWORD=$(cat "$LIMEN_STATE_DIR/postgres-limen-password") "$bin/psql" -h 127.0.0.1 -p "$LIMEN_PG_PORT" -U limen -d "$src" -v ON_ERROR_STOP=1 \
  -v vms=${VMS:-1000} -v audit_rows=${AUDIT:-100000} -qtA -f "$(dirname "$0")/seed.sql" >/dev/null 2>&1
# timed FILE CMD...: appends "wall cpu" to FILE; cpu is user + system time of the command and of
# every tool it started (bash's `time` counts all waited-for children): on two cores, CPU shows a
# change that the wall time's noise hides.
TIMEFORMAT='%R %U %S'
timed() {
  local file=$1; shift
  { time "$@"; } 2> "$w/time"
  tail -n 1 "$w/time" | awk '{printf "%.3f %.3f\n", $1, $2 + $3}' >> "$file"
}
for r in $(seq 1 ${ROUNDS:-5}); do
  for side in $([ $((r % 2)) = 1 ] && echo "before after" || echo "after before"); do
    rm -rf "$w/out"
    timed "$w/$side.backup" limen $side "$server/$src" backup --output "$w/out" > "$w/$side.backup.$r"
    db=${src}_${side}_$r; psql_limen -c "CREATE DATABASE $db" >/dev/null
    timed "$w/$side.restore" limen $side "$server/$src" restore "$(ls $w/out/*.tar.gz)" --database "$server/$db" </dev/null > "$w/$side.restore.$r"
    psql_limen -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
  done
done
col() { awk -v c=$1 '{print $c}' "$2"; }  # col N FILE: the Nth column of FILE
for side in before after; do
  echo "$side: backup $(col 1 $w/$side.backup | median) s (CPU $(col 2 $w/$side.backup | median) s), restore $(col 1 $w/$side.restore | median) s (CPU $(col 2 $w/$side.restore | median) s)"
  echo "  raw wall: $(col 1 $w/$side.backup | paste -sd' ') / $(col 1 $w/$side.restore | paste -sd' ')"
  for step in "Dump the database" "Export metadata CSVs" "Write the archive" "Verify the archive" "Restore the dump"; do
    printf '  %-22s %s s\n' "$step" "$(grep -h "^ok   $step" $w/$side.backup.* $w/$side.restore.* | sed -E 's/.*\(([0-9.]+) s\)$/\1/' | median)"
  done
done
