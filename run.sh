#!/usr/bin/env bash
# ./run.sh — install what is missing, prepare PostgreSQL, and run `limen serve` in the foreground.
# Prints the URL and the admin credentials once the server answers. Safe to run again.
source "$(dirname "$0")/scripts/lib.sh"

start_postgres
start_libvirt
ensure_isolated_network
build_guest
build_limen
# Set but empty (Limen__Hypervisor__Network=): VMs get no NIC (hosts without that network, e.g. bench/migration's).
export Limen__Hypervisor__Network=${Limen__Hypervisor__Network-$LIMEN_NETWORK}

# The first admin's password: LIMEN_ADMIN_PASSWORD if given, else generated once and kept (0600).
if [ -z "${LIMEN_ADMIN_PASSWORD:-}" ]; then
  LIMEN_ADMIN_PASSWORD=$(secret "$LIMEN_STATE_DIR/initial-admin-password")
fi
export LIMEN_ADMIN_PASSWORD
url=${LIMEN_URLS:-http://127.0.0.1:18443}
url=${url%%;*}

dotnet "$LIMEN_DLL" serve &
server=$!
# Ctrl+C or SIGTERM: the server drains and stops; its exit status is ours (0 after a clean stop).
trap 'kill -TERM $server 2>/dev/null; wait $server; exit $?' INT TERM
for _ in $(seq 1 120); do
  curl -fsS "$url/api/health/live" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { wait $server; exit $?; }
  sleep 0.5
done
# Register the tiny guest once, so a new user can create and boot a VM at once.
images_dir=$LIMEN_STATE_DIR/images
mkdir -p "$images_dir"
if [ ! -f "$images_dir/tiny-guest.qcow2" ]; then
  cp "$REPO_ROOT/guest/out/tiny-guest.qcow2" "$images_dir/tiny-guest.qcow2"
fi
token=$(curl -fsS -X POST "$url/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$LIMEN_ADMIN_PASSWORD\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' || true)
if [ -n "$token" ]; then
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/api/admin/images" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"name":"tiny-guest","file_name":"tiny-guest.qcow2","kind":"disk"}')
  case $code in 201) log "Registered the tiny guest image";; 409) ;; *) log "Could not register the tiny guest image (HTTP $code)";; esac
else
  log "Could not log in as admin to register the tiny guest (was the admin password changed?)"
fi

cat >&2 <<MSG

  Limen is running at $url  — open it in a browser and sign in.
  Admin login:  username admin   password $LIMEN_ADMIN_PASSWORD
  (the initial password; change it with POST /api/auth/me/password)
  API reference: $url/api/docs
  State directory: $LIMEN_STATE_DIR      Stop with Ctrl+C.

MSG
wait $server
