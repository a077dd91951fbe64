#!/usr/bin/env bash
# ./test.sh — install and start every real part the tests use, build, run the whole suite,
# and end with "N passed, N failed". Safe to run again.
source "$(dirname "$0")/scripts/lib.sh"

apt_install curl postgresql postgresql-client prometheus prometheus-alertmanager chromium
start_postgres
start_libvirt
build_guest
sweep_test_leftovers
export LIMEN_TEST_DATABASE_URL=$(cat "$LIMEN_STATE_DIR/database-url")
# --setup-only: prepare the machine and stop (.ci/run runs the set-up twice to prove it idempotent).
[ "${1:-}" = --setup-only ] && { log "Set-up done"; exit 0; }

ensure_dotnet
ensure_npm
log "Building the solution"
dotnet build "$REPO_ROOT/Limen.slnx" -c Release -nologo -v quiet -clp:ErrorsOnly >&2

results=$REPO_ROOT/artifacts/test-results
rm -rf "$results"; mkdir -p "$results"
log "Running the tests"
# One project at a time: some tests restart libvirtd or boot guests, which must not overlap.
set +e
for project in "$REPO_ROOT"/tests/*/*.csproj; do
  name=$(basename "$project" .csproj)
  dotnet test "$project" -c Release --no-build --logger "trx;LogFileName=$name.trx" --results-directory "$results" 2>&1 | grep -vE '^\s*$'
done
set -e

passed=0; failed=0; files=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx")
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  e=$(sed -n 's/.* error="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0}))
done
projects=$(grep -c 'Project Path="tests/' "$REPO_ROOT/Limen.slnx")
if [ "$files" -lt "$projects" ]; then
  echo "Only $files of $projects test projects reported results (a test host crashed?)" >&2
  failed=$((failed + projects - files))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
