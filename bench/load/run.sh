#!/usr/bin/env bash
# bench/load/run.sh [--rounds N] [--seconds S] [--soak-seconds T] [--out FILE]
#
# A real `limen serve` (Release) on loopback with 10,000 VMs and 100 users, driven by wrk:
#  1. GET /api/vms at 64 connections — admin first page, admin page 150, a user's 100 VMs — each
#     beside the same SQL the server issues for it (captured from EF Core's command log) sent
#     straight to PostgreSQL by pgbench at 64 clients (the floor); N rounds of S seconds per side,
#     alternating which side goes first; medians and ratios.
#  2. /api/metrics: scrape time and series count, and that the count does not move when 1,000 VMs
#     of 10 more users are added.
#  3. The idle server's CPU (the reconciler's 10 s sweep over 10,000 domains) over 60 s.
#  4. A soak of mixed reads and writes (T seconds, 600 for the recorded result): errors, p99 per
#     route, RSS and GC heap at start and end.
# Defaults: 5 rounds of 10 s, 600 s soak; the result goes to bench/results/load.md (a shortened
# soak writes to /tmp instead, unless --out says otherwise).
#
# VMs live on libvirt's test driver loaded from a generated node file (test:///<work>/node.xml):
# one domain per VM row (limen-bench-<id>, running or shut off as the row says), so the sweep lists
# and compares 10,000 real domains, and the soak's writes define, start, stop and undefine them.
# PostgreSQL is the one of ./run.sh (LIMEN_STATE_DIR's database-url); the benchmark's database is
# limen_bench_load_<time>, dropped at the end. wrk (Debian) is installed when missing.
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/../lib.sh"

rounds=5; seconds=10; soak=600; out=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --soak-seconds) soak=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--seconds S] [--soak-seconds T] [--out FILE]" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { [ "$soak" -ge 600 ] && out=$REPO_ROOT/bench/results/load.md || out=/tmp/limen-bench-load.md; }
here=$REPO_ROOT/bench/load
connections=64

apt_install wrk jq qemu-utils
# Reuse a running cluster as it is; start (or create) it only when it does not answer.
[ -s "$LIMEN_STATE_DIR/database-url" ] && psql_limen -c "SELECT 1" >/dev/null 2>&1 || start_postgres
build_limen
log "Restoring dotnet tools (dotnet-counters)"
(cd "$REPO_ROOT" && dotnet tool restore >/dev/null)
bin=$(pg_bin)
base_url=$(cat "$LIMEN_STATE_DIR/database-url")
db=limen_bench_load_$(date +%s)
database_url=${base_url%/*}/$db
work=$(mktemp -d /tmp/limen-bench-load-XXXXXX)
chmod 711 "$work"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  local rc=$?
  stop_server
  psql_limen -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  # LIMEN_BENCH_KEEP=1 keeps the work folder (logs, captured SQL, raw results) for a look afterwards.
  # A failed run keeps it too.
  [ "${LIMEN_BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ] && log "Kept $work" || rm -rf "$work"
}
trap cleanup EXIT

pg=(env PGPASSWORD="$(cat "$LIMEN_STATE_DIR/postgres-limen-password")" PGHOST=127.0.0.1 PGPORT="$LIMEN_PG_PORT" PGUSER=limen PGDATABASE="$db")
sql() { "${pg[@]}" "$bin/psql" -v ON_ERROR_STOP=1 -qtA "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# --- The database: migrate, seed, and one test-driver domain per VM row ----------------------
admin_password=bench-admin-$(head -c 12 /dev/urandom | base64 | tr '+/' 'xy')
user_password=bench-user-$(head -c 12 /dev/urandom | base64 | tr '+/' 'xy')
uri=test://$work/node.xml
mkdir -p "$work/state/images"
chmod 711 "$work/state"
qemu-img create -q -f qcow2 "$work/state/images/blank.qcow2" 64M
log "Seeding $db (100 users, 10,000 VMs)"
psql_limen -c "CREATE DATABASE $db" >/dev/null
DATABASE_URL=$database_url LIMEN_STATE_DIR=$work/state dotnet "$LIMEN_DLL" migrate >/dev/null
sql -v uri="$uri" -f "$here/seed.sql" >/dev/null
{
  echo "<node>"
  sql -F ' ' -c "SELECT id, CASE WHEN state = 'running' THEN 1 ELSE 5 END FROM vms" | awk '{
    printf "<domain type=\"test\" xmlns:test=\"http://libvirt.org/schemas/domain/test/1.0\"><name>limen-bench-%s</name><uuid>%s</uuid>", $1, $1
    printf "<memory unit=\"MiB\">512</memory><vcpu>1</vcpu><os><type>hvm</type></os><test:runstate>%s</test:runstate></domain>\n", $2 }'
  echo "</node>"
} > "$work/node.xml"

# --- The server ------------------------------------------------------------------------------
# start_server LOG [KEY=VALUE...]: `limen serve` on a free loopback port; sets url and server_pid.
start_server() {
  local logfile=$1; shift
  local port; port=$(free_port)
  url=http://127.0.0.1:$port
  env DATABASE_URL="$database_url" LIMEN_STATE_DIR="$work/state" LIMEN_URLS="$url" LIMEN_ADMIN_PASSWORD="$admin_password" \
    Limen__Hypervisor__Uri="$uri" Limen__Hypervisor__DomainPrefix=limen-bench- "$@" \
    dotnet "$LIMEN_DLL" serve > "$logfile" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$url/api/health/live" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$logfile" >&2; echo "limen serve exited" >&2; exit 1; }
    sleep 0.2
  done
  echo "limen serve did not answer within 120 s" >&2; exit 1
}
login() {
  curl -fsS -X POST "$url/api/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$2\"}" | jq -er .access_token
}
user_id() { sql -c "SELECT id FROM users WHERE username = '$1'"; }
reader=bench001; writer=bench100

# The three measured requests: name, path, who asks.
cases=(first page150 user)
declare -A path=([first]="/api/vms?page=1&page_size=50" [page150]="/api/vms?page=150&page_size=50" [user]="/api/vms?page=1&page_size=100")
declare -A caller=([first]=admin [page150]=admin [user]=$reader)
declare -A title=([first]="admin, first page (50 of 10,000)" [page150]="admin, page 150 (offset 7,450)" [user]="user with 100 VMs (page_size 100)")

# --- Capture the SQL behind each request from EF Core's command log ------------------------
log "Capturing the SQL the server issues per request"
start_server "$work/capture.log" Logging__LogLevel__Microsoft.EntityFrameworkCore.Database.Command=Information
admin_token=$(login admin "$admin_password")
for u in $reader $writer; do
  curl -fsS -X POST "$url/api/admin/users/$(user_id $u)/password" -H "authorization: Bearer $admin_token" \
    -H 'content-type: application/json' -d "{\"password\":\"$user_password\"}"
done
declare -A token=([admin]=$admin_token [$reader]=$(login $reader "$user_password"))
declare -A caller_id=([admin]=$(user_id admin) [$reader]=$(user_id $reader))
for c in "${cases[@]}"; do
  curl -fsS -o /dev/null "$url${path[$c]}" -H "authorization: Bearer ${token[${caller[$c]}]}"
  sleep 0.5
  mark=$(wc -l < "$work/capture.log")
  curl -fsS -o /dev/null "$url${path[$c]}" -H "authorization: Bearer ${token[${caller[$c]}]}"
  sleep 0.5
  # Each command of that request (its log scope; the background loops query too) as it ran; parameters by type: a uuid is the caller's id (the token's user, the
  # owner filter), an integer is the LIMIT or OFFSET it stands beside.
  tail -n +$((mark + 1)) "$work/capture.log" | jq -r 'select(.EventId == 20101 and any(.Scopes[]?; .RequestPath == "/api/vms")) | .State.commandText + ";" | gsub("\n"; " ")' > "$work/$c.raw.sql"
  page=${path[$c]#*page=}; page=${page%%&*}; size=${path[$c]#*page_size=}
  : > "$work/$c.sql"
  while IFS= read -r line; do
    limit=$(grep -oE 'LIMIT @[A-Za-z0-9_]+' <<<"$line" | cut -d' ' -f2 || true)
    offset=$(grep -oE 'OFFSET @[A-Za-z0-9_]+' <<<"$line" | cut -d' ' -f2 || true)
    [ -n "$limit" ] && line=${line//$limit/$size}
    [ -n "$offset" ] && line=${line//$offset/$(((page - 1) * size))}
    for p in $(grep -oE '@[A-Za-z0-9_]+' <<<"$line" | sort -u || true); do
      line=${line//$p/\'${caller_id[${caller[$c]}]}\'}
    done
    echo "$line" >> "$work/$c.sql"
  done < "$work/$c.raw.sql"
  [ -s "$work/$c.sql" ] || { echo "no SQL captured for $c" >&2; exit 1; }
  # The floor must answer what the server answers: same rows, in the same order.
  for q in $(seq 1 "$(wc -l < "$work/$c.sql")"); do sql -c "$(sed -n "${q}p" "$work/$c.sql")" >/dev/null; done
done
stop_server

# --- The measured server ---------------------------------------------------------------------
log "Starting limen serve (Release) with 10,000 VMs on the test driver"
start_server "$work/serve.log"
token[admin]=$(login admin "$admin_password")
token[$reader]=$(login $reader "$user_password")

# CPU time (clock ticks) of the server and of its PostgreSQL backends: what a request costs,
# whatever share of the machine the other engineers' work leaves to it.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
backend_ticks() {
  local pid sum=0
  for pid in $(sql -c "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'limen-serve'"); do
    sum=$((sum + $(ticks "$pid")))
  done
  echo $sum
}
# wrk_run CASE SECONDS: prints "rps p50 p99 requests errors server-µs/request postgres-µs/request".
wrk_run() {
  local s0 p0 result
  s0=$(ticks "$server_pid"); p0=$(backend_ticks)
  result=$(wrk -t2 -c$connections -d"$2"s --timeout 10s --latency -s "$here/report.lua" \
    -H "authorization: Bearer ${token[${caller[$1]}]}" "$url${path[$1]}" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}')
  awk -v r="$result" -v s="$(( $(ticks "$server_pid") - s0 ))" -v p="$(( $(backend_ticks) - p0 ))" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {split(r, f, " "); printf "%s %.0f %.0f\n", r, s / hz * 1e6 / f[4], p / hz * 1e6 / f[4]}'
}
# pgbench_run CASE SECONDS: prints "tps p50 p99 transactions errors" (latencies from the per-transaction log).
pgbench_run() {
  rm -f "$work"/pgb.*
  local output
  output=$(cd "$work" && "${pg[@]}" "$bin/pgbench" -n -M prepared -c$connections -j2 -T"$2" -f "$work/$1.sql" -l --log-prefix=pgb 2>&1) \
    || { echo "$output" >&2; exit 1; }
  local tps failed
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$output")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$output")
  cat "$work"/pgb.* | awk '{print $3 / 1000}' | sort -g | awk -v tps="$tps" -v failed="${failed:-0}" \
    '{a[NR]=$1} END {m = int(NR * 0.5); n = int(NR * 0.99); if (m < 1) m = 1; if (n < 1) n = 1; printf "%s %.3f %.3f %d %d\n", tps, a[m], a[n], NR, failed}'
}

log "Warming up"
for c in "${cases[@]}"; do wrk_run "$c" 5 >/dev/null; pgbench_run "$c" 3 >/dev/null; done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$rounds"); do
  for c in "${cases[@]}"; do
    sides=$([ $((round % 2)) = 1 ] && echo "limen pg" || echo "pg limen")
    for side in $sides; do
      if [ "$side" = limen ]; then r=$(wrk_run "$c" "$seconds"); else r=$(pgbench_run "$c" "$seconds"); fi
      echo "$r" >> "$work/$side.$c"
      log "round $round/$rounds $c $side: $r"
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- /api/metrics ----------------------------------------------------------------------------
series() { curl -fsS "$url/api/metrics" | grep -cv '^#'; }
scrape_ms() { curl -fsS -o /dev/null -w '%{time_total}\n' "$url/api/metrics" | awk '{print $1 * 1000}'; }
series >/dev/null
for _ in $(seq 1 20); do scrape_ms; done > "$work/scrapes"
scrape=$(median < "$work/scrapes")
series_10k=$(series)
scrape_bytes=$(curl -fsS "$url/api/metrics" | wc -c)
# 1,000 more VMs of 10 more users, in a state the sweep keeps (missing: no domain), then a sweep.
sql >/dev/null <<'SQL'
INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at)
SELECT gen_random_uuid(), 'extra' || i, 'x', 'user', false, now(), now() FROM generate_series(1, 10) AS i;
INSERT INTO vms (id, name, owner_id, host_id, image_id, boot_order, vcpus, memory_mb, disk_gb, state, state_reason, mac_address, created_at, updated_at)
SELECT gen_random_uuid(), 'extra-' || i, (SELECT id FROM users WHERE username = 'extra' || (1 + i % 10)), (SELECT id FROM hosts), (SELECT id FROM images),
       'hd', 1, 512, 10, 'missing', 'The libvirt domain no longer exists on its host.', '52:54:01:' || lpad(to_hex((i >> 8) & 255), 2, '0') || ':' || lpad(to_hex(i & 255), 2, '0') || ':00',
       now(), now()
FROM generate_series(1, 1000) AS i;
SQL
sleep 12
series_11k=$(series)
sql -c "DELETE FROM vms WHERE name LIKE 'extra-%'; DELETE FROM users WHERE username LIKE 'extra%'" >/dev/null
families=$(curl -fsS "$url/api/metrics" | grep -v '^#' | sed -E 's/[{ ].*//; s/_(bucket|sum|count)$//' | sort | uniq -c | sort -rn | awk '{printf "%s %s, ", $2, $1}')

# --- Idle CPU: the reconciler's sweep over 10,000 domains ------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
reconcile() { curl -fsS "$url/api/metrics" | awk '/^limen_reconcile_duration_seconds_(sum|count) / {printf "%s ", $2}'; }
sleep 12
idle_seconds=60
t0=$(cpu_ticks); r0=$(reconcile); s0=$(date +%s.%N)
sleep $idle_seconds
t1=$(cpu_ticks); r1=$(reconcile); s1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
idle_cpu=$(awk -v a="$t0" -v b="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) / hz / (s1 - s0) * 100}')
sweep_ms=$(awk -v r0="$r0" -v r1="$r1" 'BEGIN {split(r0, a, " "); split(r1, b, " "); n = b[2] - a[2]; printf "%.0f", (n > 0 ? (b[1] - a[1]) / n * 1000 : 0)}')
sweeps=$(awk -v r0="$r0" -v r1="$r1" 'BEGIN {split(r0, a, " "); split(r1, b, " "); print b[2] - a[2]}')

# --- Soak ------------------------------------------------------------------------------------
log "Soak: $soak s of mixed reads and writes"
token[admin]=$(login admin "$admin_password")
token[$reader]=$(login $reader "$user_password")
writer_token=$(login $writer "$user_password")
image_id=$(sql -c "SELECT id FROM images WHERE name = 'blank'")
vm_id=$(sql -c "SELECT v.id FROM vms v JOIN users u ON u.id = v.owner_id WHERE u.username = '$reader' ORDER BY v.created_at LIMIT 1")
roles=list_admin,list_admin,list_deep,list_deep,list_user,list_user,get_vm,get_vm,metrics,writer,writer
threads=$(tr ',' '\n' <<<"$roles" | wc -l)
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
# dotnet-counters samples the runtime's own view (GC heap after the last collection, by generation) every 30 s.
(cd "$REPO_ROOT" && dotnet dotnet-counters collect -p "$server_pid" --refresh-interval 30 --format csv -o "$work/counters.csv" \
  --counters 'System.Runtime[dotnet.gc.last_collection.heap.size,dotnet.process.memory.working_set]' \
  --duration "$(printf '00:00:%02d:%02d' $(((soak + 10) / 60)) $(((soak + 10) % 60)))" > "$work/counters.log" 2>&1) &
counters_pid=$!
sleep 5
rss_start=$(rss_kib)
soak_load_before=$(cut -d' ' -f1-3 /proc/loadavg)
wrk -t"$threads" -c"$threads" -d"$soak"s --timeout 30s -s "$here/soak.lua" "$url" -- \
  "${token[admin]}" "${token[$reader]}" "$writer_token" "$image_id" "$vm_id" "$roles" "$work" > "$work/soak.out"
# A server that died during the soak is a result too: report it with its last words.
if kill -0 "$server_pid" 2>/dev/null; then
  rss_end=$(rss_kib); server_died=""
else
  rss_end=0
  server_died=$(grep -m 1 '"LogLevel":"\(Error\|Critical\)".*Hosting' "$work/serve.log" | jq -r '.Message + ": " + (.Exception // "" | split("\n")[0:3] | join(" "))' || true)
fi
soak_load_after=$(cut -d' ' -f1-3 /proc/loadavg)
wait "$counters_pid" || true
# Per route: requests, errors, p50, p99, max (ms), from the threads' response logs.
cat "$work"/soak.*.log > "$work/soak.all"
cut -f1 "$work/soak.all" | sort -u | while IFS= read -r r; do
  awk -F'\t' -v r="$r" '$1 == r {print $4, $3}' "$work/soak.all" | sort -g | awk -v r="$r" '
    {v[NR] = $1; if ($2 != 1) e++} END {m = int(NR * 0.5); n = int(NR * 0.99); if (m < 1) m = 1; if (n < 1) n = 1
      printf "ROUTE %s\t%d\t%d\t%.2f\t%.2f\t%.2f\n", r, NR, e, v[m], v[n], v[NR]}'
done >> "$work/soak.out"
cat "$work/soak.out"
# The GC heap: the sum over generations of each sample; first and last sample of the soak.
heap_series=$(awk -F, 'NR > 1 && $3 ~ /last_collection.heap.size/ {split($1, t, " "); s[$1] += $NF} END {for (k in s) print k "," s[k]}' "$work/counters.csv" | sort)
heap_start=$(head -n 1 <<<"$heap_series" | cut -d, -f2)
heap_end=$(tail -n 1 <<<"$heap_series" | cut -d, -f2)
soak_errors=$(awk -F'\t' '$3 != 1' "$work/soak.all" | wc -l)
soak_errors=$((soak_errors + $(awk '/^TOTAL/ {print $3}' "$work/soak.out")))
error_samples=$(awk -F'\t' '$3 != 1 && n++ < 5 {print "    " $1 " -> " $2 " " $5}' "$work/soak.all")
soak_requests=$(awk '/^TOTAL/ {print $2}' "$work/soak.out")
server_errors=$(grep -c '"LogLevel":"\(Error\|Critical\)"' "$work/serve.log" || true)

# --- Report ----------------------------------------------------------------------------------
stat_of() { awk -v col="$2" '{print $col}' "$work/$1" | median; }
pass() { awk "BEGIN {exit !($1)}" && echo "ok" || echo "MISSED"; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0) printf "%+.1f%%", (b - a) / a * 100; else printf "n/a"}'; }
rows=""
for c in "${cases[@]}"; do
  lr=$(stat_of "limen.$c" 1); l50=$(stat_of "limen.$c" 2); l99=$(stat_of "limen.$c" 3)
  pr=$(stat_of "pg.$c" 1); p50=$(stat_of "pg.$c" 2); p99=$(stat_of "pg.$c" 3)
  errs=$(awk '{s += $5} END {print s}' "$work/limen.$c")
  declare "rps_$c=$lr" "p99_$c=$l99" "floor_$c=$pr"
  rows+="| ${title[$c]} | $(printf %.0f "$lr") | $l50 | $l99 | $(printf %.0f "$pr") | $p50 | $p99 | $(ratio "$lr" "$pr") | $errs | $(stat_of "limen.$c" 6) / $(stat_of "limen.$c" 7) |"$'\n'
done
raw=""
for c in "${cases[@]}"; do
  raw+="- ${title[$c]}: Limen req/s $(cut -d' ' -f1 "$work/limen.$c" | paste -sd' '), p99 ms $(cut -d' ' -f3 "$work/limen.$c" | paste -sd' '); "
  raw+="floor tps $(cut -d' ' -f1 "$work/pg.$c" | paste -sd' ')"$'\n'
done
floor_sql=""
for c in "${cases[@]}"; do floor_sql+="-- ${title[$c]}"$'\n'"$(cat "$work/$c.sql")"$'\n'; done
soak_table=$(awk -F'\t' '/^ROUTE/ {sub(/^ROUTE /, "", $1); printf "| %s | %d | %d | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}' "$work/soak.out")
soak_note=$([ "$soak" -ge 600 ] && echo "" || echo " (SHORTENED: not a recorded result; the recorded soak is 600 s)")

report=$(cat <<MD
# Load benchmark

\`bench/load/run.sh --rounds $rounds --seconds $seconds --soak-seconds $soak\` on $(date -u +%Y-%m-%dT%H:%MZ) — $(nproc) CPUs shared with
other work (load average $load_before before the rounds, $load_after after), PostgreSQL $(psql_limen -c "SHOW server_version"),
Limen $(dotnet "$LIMEN_DLL" --version 2>/dev/null || echo "?") (Release, commit $(git -C "$REPO_ROOT" rev-parse --short HEAD)$(git -C "$REPO_ROOT" diff --quiet HEAD -- src || echo "+changes")), wrk $(wrk --version 2>&1 | awk 'NR==1 {print $2}'), pgbench -M prepared.
Database: 100 users with 100 VMs each (10,000 VMs) plus the admin, on libvirt's test driver loaded with one domain per VM
(a third running, the rest shut off). All traffic on 127.0.0.1.

## GET /api/vms at $connections connections

Medians of $rounds rounds of $seconds s per side; in each round Limen (wrk, 2 threads) and the floor (pgbench, 2 threads, the SQL
the server issued for that request, captured from EF Core's command log) run one after the other, alternating which goes first.

| request | Limen req/s | p50 ms | p99 ms | floor tps | floor p50 ms | floor p99 ms | Limen / floor | errors | CPU µs per request: server / its PostgreSQL |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$rows
Goals: first page ≥ 2,000 req/s — $(pass "$rps_first >= 2000"); first page p99 ≤ 50 ms — $(pass "$p99_first <= 50");
page 150 within 1.5× of the first (req/s $(ratio "$rps_first" "$rps_page150")×, p99 $(ratio "$p99_page150" "$p99_first")×) — $(pass "$rps_first / $rps_page150 <= 1.5 && $p99_page150 / $p99_first <= 1.5");
≥ 0.5× the floor — first $(pass "$rps_first / $floor_first >= 0.5"), page 150 $(pass "$rps_page150 / $floor_page150 >= 0.5"), user $(pass "$rps_user / $floor_user >= 0.5").

Per round:
$raw
The floor's SQL (one pgbench transaction per request):
\`\`\`sql
$floor_sql\`\`\`

## /api/metrics with 10,000 VMs

Scrape: median $(printf %.1f "$scrape") ms of 20, $scrape_bytes bytes, $series_10k series. With 1,000 more VMs of 10 more users
and a sweep later: $series_11k series ($(pass "$series_10k == $series_11k"): no series per VM or user; \`vm_quota_denied_total{user_id}\`
gets a series only for a user who was denied). Series per family: ${families%, }.

## Idle server

CPU of \`limen serve\` over ${idle_seconds} s with nothing but its background loops: **$idle_cpu% of one core** (goal ≤ 5% — $(pass "$idle_cpu <= 5"));
$sweeps reconciler sweeps in that time, $sweep_ms ms each on average (\`limen_reconcile_duration_seconds\`).

## Soak: $soak s of mixed reads and writes$soak_note

$threads clients (one connection each, think time between requests): 2× admin first page, 2× admin random page 2–200,
2× the user's 100 VMs, 2× GET one VM, 1× /api/metrics every second, 2× writers cycling create → start → stop → rename →
delete on the test driver. Load average $soak_load_before at the start, $soak_load_after at the end.

| route | requests | errors | p50 ms | p99 ms | max ms |
|---|---:|---:|---:|---:|---:|
$soak_table

$( [ -n "$server_died" ] && printf '**The server stopped during the soak**: %s\n\n' "$server_died")
$soak_requests requests, **$soak_errors errors** (unexpected status or socket error); $server_errors error lines in the server log.
$( [ -n "$error_samples" ] && printf 'First errors:\n\n%s\n' "$error_samples")
RSS $(mib $((rss_start * 1024))) at the start, $(mib $((rss_end * 1024))) at the end ($(pct "$rss_start" "$rss_end"));
GC heap after the last collection (dotnet-counters, all generations) $(mib "${heap_start:-0}") at the start, $(mib "${heap_end:-0}") at the end ($( [ -n "$heap_start" ] && pct "$heap_start" "$heap_end" || echo "n/a")).
GC heap samples every 30 s (MiB): $(cut -d, -f2 <<<"$heap_series" | awk '{printf "%.1f ", $1 / 1048576}')

## Noise

The machine has $(nproc) cores and other engineers build and test on it at the same time; wrk, pgbench, PostgreSQL and the
server share those cores. Each figure is a median of $rounds rounds, and the floor runs beside Limen in every round,
so the ratios are steadier than the absolute numbers. The CPU time per request (from /proc, of the server process and
of the PostgreSQL backends of its connection pool) does not depend on the share of the machine a run gets, only on the
work a request takes (it still grows somewhat on a crowded machine: caches, context switches, spinning thread-pool threads).
MD
)
mkdir -p "$(dirname "$out")"
echo "$report" > "$out"
echo "$report"
log "Written to $out"
