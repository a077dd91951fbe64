#!/usr/bin/env bash
# ./run.sh — install what is missing, prepare PostgreSQL, and run `limen serve` in the foreground.
# Prints the URL and the admin credentials once the server answers. Safe to run again.
source "$(dirname "$0")/scripts/lib.sh"

start_postgres
build_limen

# The first admin's password: LIMEN_ADMIN_PASSWORD if given, else generated once and kept (0600).
if [ -z "${LIMEN_ADMIN_PASSWORD:-}" ]; then
  LIMEN_ADMIN_PASSWORD=$(secret "$LIMEN_STATE_DIR/initial-admin-password")
fi
export LIMEN_ADMIN_PASSWORD
url=${LIMEN_URLS:-http://127.0.0.1:18443}
url=${url%%;*}

dotnet "$LIMEN_DLL" serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' INT TERM
for _ in $(seq 1 120); do
  curl -fsS "$url/api/health/live" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { wait $server; exit $?; }
  sleep 0.5
done
cat >&2 <<MSG

  Limen is running at $url  (API reference: $url/api/docs)
  Admin login:  username admin   password $LIMEN_ADMIN_PASSWORD
  (the initial password; change it with POST /api/auth/me/password)
  State directory: $LIMEN_STATE_DIR      Stop with Ctrl+C.

MSG
wait $server
