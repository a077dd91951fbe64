#!/usr/bin/env bash
# bench/backup-restore/run.sh [ROUNDS] [SIZES] — `limen backup` and `limen restore` against plain
# pg_dump -Fc / pg_restore on the same database, in the same run, interleaved.
#   ROUNDS  rounds per size (default 5); each round runs both sides, alternating which goes first.
#   SIZES   "small" (1,000 VMs, 100,000 audit rows), "large" (10x: 10,000 VMs, 1,000,000 audit
#           rows) or both (default "small large"; also LIMEN_BENCH_SIZES).
# Prints the medians, ratios and median step timings and writes bench/results/backup-restore.md
# (LIMEN_BENCH_RESULT=FILE writes elsewhere). Targets: ratio <= 1.3 (goal <= 1.1 on the large one).
# LIMEN_BENCH_DLL=path/limen.dll measures that build instead of building this tree.
# Uses the PostgreSQL of ./run.sh (the state directory's database-url); creates and drops
# limen_bench_* databases on it.
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/../lib.sh"

rounds=${1:-5}
sizes=${2:-${LIMEN_BENCH_SIZES:-small large}}
result_file=${LIMEN_BENCH_RESULT:-$REPO_ROOT/bench/results/backup-restore.md}
start_postgres
if [ -n "${LIMEN_BENCH_DLL:-}" ]; then LIMEN_DLL=$(realpath "$LIMEN_BENCH_DLL"); else build_limen; fi
bin=$(pg_bin)
base_url=$(cat "$LIMEN_STATE_DIR/database-url")
server=${base_url%/*}
work=$(mktemp -d /tmp/limen-bench-XXXXXX)
tag=$(date +%s)
created=()
cleanup() {
  for db in "${created[@]}"; do psql_limen -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN {printf "%.3f\n", a - b}'; }
limen() { DATABASE_URL=$1 LIMEN_STATE_DIR=$work/state dotnet "$LIMEN_DLL" "${@:2}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() {
  awk -v r="$1" -v goal="$2" 'BEGIN {exit !(r <= goal)}' && { echo "ok (<= $2)"; return; }
  awk -v r="$1" 'BEGIN {exit !(r <= 1.3)}' && echo "ok (<= 1.3), over the $2 goal by $(awk -v r="$1" -v g="$2" 'BEGIN {printf "%.0f", (r / g - 1) * 100}') %" \
    || echo "OVER the 1.3 target by $(awk -v r="$1" 'BEGIN {printf "%.0f", (r / 1.3 - 1) * 100}') %"
}
# step_medians LOG...: "median s  step name" for every ok line of Limen's step output across the logs, in first-seen order.
step_medians() {
  grep -h -E '^ok   ' "$@" | sed -E 's/^ok   ([^:(]*[^:( ]).* \(([0-9.]+) s\)$/\2\t\1/' | awk -F'\t' '
    { if (!($2 in n)) order[++k] = $2; v[$2, ++n[$2]] = $1 }
    END { for (i = 1; i <= k; i++) { s = order[i]; m = n[s]; for (a = 1; a <= m; a++) x[a] = v[s, a]
            for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
            printf "%5.2f s  %s\n", (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2, s } }'
}

# settle: a checkpoint before each timed command, so that neither side pays for the WAL the one
# before it (or the seeding) left behind; the seeding's 440 MB had made the first large rounds slow.
settle() {
  PGPASSWORD=$(cat "$LIMEN_STATE_DIR/postgres-superuser-password") "$bin/psql" -h 127.0.0.1 -p "$LIMEN_PG_PORT" -U postgres -d postgres -qtA \
    -v ON_ERROR_STOP=1 -c CHECKPOINT >/dev/null
}
pg=(env PGPASSWORD=$(cat "$LIMEN_STATE_DIR/postgres-limen-password") PGHOST=127.0.0.1 PGPORT=$LIMEN_PG_PORT PGUSER=limen)
run_started=$(now)
sections=()
summary=()
for size in $sizes; do
  case $size in
    small) vms=1000; audit_rows=100000; goal=1.3; described="50 users, 1,000 VMs, 100,000 audit rows" ;;
    large) vms=10000; audit_rows=1000000; goal=1.1; described="50 users, 10,000 VMs, 1,000,000 audit rows" ;;
    *) echo "unknown size '$size' (small or large)" >&2; exit 2 ;;
  esac
  size_started=$(now)
  source_db=limen_bench_${tag}_${size}_src; created+=("$source_db")
  log "Seeding $source_db ($described)"
  psql_limen -c "CREATE DATABASE $source_db" >/dev/null
  limen "$server/$source_db" migrate >/dev/null
  PGPASSWORD=$(cat "$LIMEN_STATE_DIR/postgres-limen-password") "$bin/psql" -h 127.0.0.1 -p "$LIMEN_PG_PORT" -U limen -d "$source_db" \
    -v ON_ERROR_STOP=1 -v vms="$vms" -v audit_rows="$audit_rows" -qtA -f "$(dirname "$0")/seed.sql" >/dev/null
  # As after a day of use: statistics and visibility map current, not left to autovacuum mid-round.
  PGPASSWORD=$(cat "$LIMEN_STATE_DIR/postgres-limen-password") "$bin/psql" -h 127.0.0.1 -p "$LIMEN_PG_PORT" -U limen -d "$source_db" \
    -qtA -c "VACUUM (ANALYZE)" >/dev/null 2>&1
  db_size=$(psql_limen -c "SELECT pg_size_pretty(pg_database_size('$source_db'))")

  w=$work/$size; mkdir -p "$w/logs"
  : > "$w/limen_backup"; : > "$w/pg_dump"; : > "$w/limen_restore"; : > "$w/pg_restore"
  for round in $(seq 1 "$rounds"); do
    log "$size: round $round of $rounds"
    # Alternate the order so neither side always runs with warmer caches.
    order=$( [ $((round % 2)) = 1 ] && echo "limen plain" || echo "plain limen")
    for side in $order; do
      if [ "$side" = limen ]; then
        rm -rf "$w/out"; settle; t=$(now)
        limen "$server/$source_db" backup --output "$w/out" > "$w/logs/backup.$round"
        elapsed "$t" >> "$w/limen_backup"
      else
        rm -f "$w/plain.dump"; settle; t=$(now)
        "${pg[@]}" "$bin/pg_dump" -Fc -d "$source_db" -f "$w/plain.dump"
        elapsed "$t" >> "$w/pg_dump"
      fi
    done
    archive=$(ls "$w"/out/limen-backup-*.tar.gz)
    for side in $order; do
      db=limen_bench_${tag}_${size}_${side}_$round; created+=("$db")
      psql_limen -c "CREATE DATABASE $db" >/dev/null
      settle
      if [ "$side" = limen ]; then
        t=$(now)
        limen "$server/$source_db" restore "$archive" --database "$server/$db" </dev/null > "$w/logs/restore.$round"
        elapsed "$t" >> "$w/limen_restore"
      else
        t=$(now)
        "${pg[@]}" "$bin/pg_restore" --no-owner --no-acl -d "$db" "$w/plain.dump"
        elapsed "$t" >> "$w/pg_restore"
      fi
      psql_limen -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
    done
  done
  psql_limen -c "DROP DATABASE $source_db WITH (FORCE)" >/dev/null

  lb=$(median < "$w/limen_backup"); pd=$(median < "$w/pg_dump")
  lr=$(median < "$w/limen_restore"); pr=$(median < "$w/pg_restore")
  rb=$(ratio "$lb" "$pd"); rr=$(ratio "$lr" "$pr")
  archive_size=$(stat -c %s "$archive"); dump_size=$(stat -c %s "$w/plain.dump")
  size_seconds=$(elapsed "$size_started")
  summary+=("$size: backup $(printf %.2f "$lb") s vs $(printf %.2f "$pd") s = ×$rb; restore $(printf %.2f "$lr") s vs $(printf %.2f "$pr") s = ×$rr")
  sections+=("$(cat <<MD
## $size: $described ($db_size)

| | Limen | plain | ratio (Limen / plain) | target ≤ 1.3, goal ≤ $goal |
|---|---:|---:|---:|---|
| backup: \`limen backup\` vs \`pg_dump -Fc\` | $(printf %.2f "$lb") s | $(printf %.2f "$pd") s | $rb | $(verdict "$rb" "$goal") |
| restore: \`limen restore\` vs \`pg_restore --no-owner --no-acl\` into an empty database | $(printf %.2f "$lr") s | $(printf %.2f "$pr") s | $rr | $(verdict "$rr" "$goal") |

Sizes: archive $((archive_size / 1024)) KiB, plain custom-format dump $((dump_size / 1024)) KiB. This size took $(printf %.0f "$size_seconds") s (seeding included).

Median step timings over the $rounds rounds (Limen's own; the backup's dump, CSV, domain and
configuration steps run side by side, the rest one after another; the wall time above also holds
process start, host and the first connection):

\`\`\`
$(step_medians "$w"/logs/backup.*)
$(step_medians "$w"/logs/restore.*)
\`\`\`

Last round's steps in full:

\`\`\`
$(grep -E '^(ok|FAIL)' "$w/logs/backup.$rounds")
$(grep -E '^(ok|FAIL)' "$w/logs/restore.$rounds")
\`\`\`

Raw seconds (one per round): limen backup $(paste -sd' ' "$w/limen_backup"); pg_dump $(paste -sd' ' "$w/pg_dump");
limen restore $(paste -sd' ' "$w/limen_restore"); pg_restore $(paste -sd' ' "$w/pg_restore").
MD
)")
done

report=$(cat <<MD
# Backup and restore benchmark

\`bench/backup-restore/run.sh $rounds "$sizes"\` on $(date -u '+%Y-%m-%d %H:%M') UTC — $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end,
PostgreSQL $(psql_limen -c "SHOW server_version"), Limen $(dotnet "$LIMEN_DLL" --version 2>/dev/null || echo "?") (Release).
Medians of $rounds rounds per size; each round runs both sides in alternating order, each command
after a CHECKPOINT. Times are wall clock of the whole command, process start included. The whole run took $(printf %.0f "$(elapsed "$run_started")") s.

$(printf '%s\n\n' "${sections[@]}")
MD
)
mkdir -p "$(dirname "$result_file")"
echo "$report" > "$result_file"
echo "$report"
printf '%s\n' "${summary[@]}" >&2
