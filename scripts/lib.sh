# Shared by run.sh and test.sh: install what is missing, start PostgreSQL (and later libvirt).
# Every function is idempotent: safe to run again on a machine where it already ran.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIMEN_STATE_DIR=$(realpath -m "${LIMEN_STATE_DIR:-$REPO_ROOT/.limen}")
LIMEN_PG_PORT=${LIMEN_PG_PORT:-54329}
export LIMEN_STATE_DIR

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# apt_install PKG... : installs the packages that are missing; `apt-get update` at most once per run.
APT_UPDATED=${APT_UPDATED:-0}
apt_install() {
  local missing=()
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = 'install ok installed' ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "Installing ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_dotnet() {
  command -v dotnet >/dev/null || { echo "The .NET 10 SDK is required (https://dot.net); it is not an apt package on Debian 12." >&2; exit 1; }
}

# ensure_npm: the build installs the console's noVNC with npm ci. Any npm will do; Debian's only
# when none is there (a nodejs from elsewhere already brings its own, which Debian's would conflict with).
ensure_npm() {
  command -v npm >/dev/null || apt_install npm
}

state_dir() {
  mkdir -p "$LIMEN_STATE_DIR"
  # 0711: PostgreSQL (another user) must reach its data folder inside; nobody may list the secrets.
  chmod 0711 "$LIMEN_STATE_DIR"
}

# write_secret FILE: prints FILE's secret, creating a random one (0600) first if needed.
secret() {
  local file=$1
  if [ ! -s "$file" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' 'xy' > "$file")
  fi
  cat "$file"
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }

# start_postgres: a private cluster in $LIMEN_STATE_DIR/postgres on 127.0.0.1:$LIMEN_PG_PORT,
# role and database "limen" with a generated password; writes $LIMEN_STATE_DIR/database-url.
start_postgres() {
  apt_install postgresql postgresql-client
  state_dir
  local bin data sock superpw pw
  bin=$(pg_bin); data=$LIMEN_STATE_DIR/postgres; sock=$LIMEN_STATE_DIR/pgsocket
  superpw=$(secret "$LIMEN_STATE_DIR/postgres-superuser-password")
  pw=$(secret "$LIMEN_STATE_DIR/postgres-limen-password")
  mkdir -p "$sock"; chown postgres:postgres "$sock"; chmod 0700 "$sock"
  if [ ! -s "$data/PG_VERSION" ]; then
    log "Initializing PostgreSQL cluster in $data"
    mkdir -p "$data"; chown postgres:postgres "$data"; chmod 0700 "$data"
    local pwfile; pwfile=$(mktemp); printf '%s\n' "$superpw" > "$pwfile"; chown postgres "$pwfile"
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" -E UTF8 >/dev/null
    rm -f "$pwfile"
  fi
  if ! runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "Starting PostgreSQL on 127.0.0.1:$LIMEN_PG_PORT"
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
      -o "-p $LIMEN_PG_PORT -k $sock -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
  fi
  local psql=(env PGPASSWORD="$superpw" "$bin/psql" -h 127.0.0.1 -p "$LIMEN_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='limen'")" != 1 ]; then
    "${psql[@]}" -c "CREATE ROLE limen LOGIN CREATEDB PASSWORD '$pw'"
  fi
  # Tests and the restore drill drop their scratch databases WITH (FORCE), which must be able to
  # end an autovacuum worker (a superuser process) that happens to be working in them.
  "${psql[@]}" -c "GRANT pg_signal_backend TO limen" >/dev/null
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='limen'")" != 1 ]; then
    "${psql[@]}" -c "CREATE DATABASE limen OWNER limen"
  fi
  (umask 077 && printf 'postgres://limen:%s@127.0.0.1:%s/limen\n' "$pw" "$LIMEN_PG_PORT" > "$LIMEN_STATE_DIR/database-url")
}

# build_limen: Limen as run.sh and the benches start it: self-contained, with Limen, its libraries
# and the .NET runtime precompiled into one composite ReadyToRun image (see Limen.csproj). Only that
# way are the framework's generic code over Limen's types (every async method's state machine box:
# some 1,500 methods in one `limen backup`) precompiled too; framework-dependent, they were compiled
# at run time, and a backup spent a fifth more CPU (bench/results/backup-restore.md). It costs about
# 2 minutes of publishing from scratch and 175 MB; an unchanged tree publishes in about 3 s. The tests
# run their own build.
build_limen() {
  ensure_dotnet
  ensure_npm
  log "Building Limen"
  local publish=(dotnet publish "$REPO_ROOT/src/Limen/Limen.csproj" -c Release -r "$LIMEN_RID" --self-contained true -p:PublishReadyToRunComposite=true
    -nologo -v quiet -clp:ErrorsOnly)
  "${publish[@]}" >&2
  # A publish killed half-way (Ctrl-C) can leave precompiled images that look up to date but abort
  # at start; the next publish would reuse them. Starting it once tells, and a clean publish mends it.
  if ! dotnet "$LIMEN_DLL" --version >/dev/null 2>&1; then
    log "The published build does not start; publishing it again from scratch"
    rm -rf "$REPO_ROOT"/src/*/obj/Release/net10.0/"$LIMEN_RID" "$REPO_ROOT"/src/*/bin/Release/net10.0/"$LIMEN_RID"
    "${publish[@]}" >&2
    dotnet "$LIMEN_DLL" --version >/dev/null
  fi
}

LIMEN_RID=linux-$(case $(uname -m) in aarch64) echo arm64 ;; *) echo x64 ;; esac)
LIMEN_DLL=$REPO_ROOT/src/Limen/bin/Release/net10.0/$LIMEN_RID/publish/limen.dll

# psql_limen SQL...: runs SQL as the limen role on the state directory's cluster.
psql_limen() {
  PGPASSWORD=$(cat "$LIMEN_STATE_DIR/postgres-limen-password") "$(pg_bin)/psql" -h 127.0.0.1 -p "$LIMEN_PG_PORT" \
    -U limen -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

# sweep_test_leftovers: what a killed test run left behind (every test resource carries a limen-test prefix).
sweep_test_leftovers() {
  local db dir
  for db in $(psql_limen -c "SELECT datname FROM pg_database WHERE datname LIKE 'limen\_test\_%'"); do
    psql_limen -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  done
  # Private clusters of tests: PrivatePostgres's (…/data) and those of ./run.sh under test (…/postgres).
  for dir in /tmp/limen-test-pg-*/data /tmp/limen-test-*/postgres; do
    [ -d "$dir" ] && runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true
  done
  if command -v virsh >/dev/null && virsh -c qemu:///system version >/dev/null 2>&1; then
    for dom in $(virsh -c qemu:///system list --all --name | grep '^limen-test-' || true); do
      virsh -c qemu:///system destroy "$dom" >/dev/null 2>&1 || true
      virsh -c qemu:///system undefine "$dom" --snapshots-metadata --nvram >/dev/null 2>&1 || true
    done
    for net in $(virsh -c qemu:///system net-list --all --name | grep '^limen-test-' || true); do
      virsh -c qemu:///system net-destroy "$net" >/dev/null 2>&1 || true
      virsh -c qemu:///system net-undefine "$net" >/dev/null 2>&1 || true
    done
  fi
  # Simulated hosts (scripts/simhost.sh) a killed run left up: their guests and daemons, before their folders go.
  for dir in /tmp/limen-test-simhost-[2-9]; do
    [ -d "$dir" ] || continue
    "$REPO_ROOT/scripts/simhost.sh" down "${dir##*-}" || log "could not bring down the simulated host in $dir"
  done
  rm -rf /tmp/limen-test-*
}

# prepare_kvm_device: /dev/kvm as Debian's udev rule leaves it (group kvm, 0660). Without udev it
# stays root:root 0600, QEMU's user cannot open it, and libvirt then throws its capability cache
# away and re-probes QEMU on every define and start (84 s instead of ~20 ms).
prepare_kvm_device() {
  [ -c /dev/kvm ] || return 0
  getent group kvm >/dev/null || groupadd --system kvm
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
}

# start_libvirt: virtlogd and libvirtd started directly (no systemd on these machines).
start_libvirt() {
  apt_install libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
  prepare_kvm_device
  if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    log "Starting virtlogd and libvirtd"
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
    for _ in $(seq 1 50); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
    virsh -c qemu:///system version >/dev/null
  fi
}

# build_guest: the tiny test guest (guest/out/tiny-guest.qcow2), from Debian packages.
build_guest() {
  apt_install busybox-static isolinux syslinux-common xorriso qemu-utils
  "$REPO_ROOT/guest/build.sh" >&2
}

# ensure_isolated_network: a libvirt network with no IP address and no forwarding (pure layer 2),
# so VMs get a NIC without any route off this machine. LIMEN_NETWORK_BRIDGE names its bridge:
# virbr-limen0 for the default network; for any other (a test's) libvirt picks a free virbrN, so
# two networks never ask for the same bridge.
LIMEN_NETWORK=${LIMEN_NETWORK:-limen-isolated}
if [ "$LIMEN_NETWORK" = limen-isolated ]; then
  LIMEN_NETWORK_BRIDGE=${LIMEN_NETWORK_BRIDGE:-virbr-limen0}
else
  LIMEN_NETWORK_BRIDGE=${LIMEN_NETWORK_BRIDGE:-}
fi
ensure_isolated_network() {
  if ! virsh -c qemu:///system net-info "$LIMEN_NETWORK" >/dev/null 2>&1; then
    local xml bridge=""; xml=$(mktemp)
    [ -n "$LIMEN_NETWORK_BRIDGE" ] && bridge=" name='$LIMEN_NETWORK_BRIDGE'"
    printf "<network><name>%s</name><bridge%s stp='on' delay='0'/></network>\n" "$LIMEN_NETWORK" "$bridge" > "$xml"
    virsh -c qemu:///system net-define "$xml" >/dev/null
    rm -f "$xml"
  fi
  # Capture first: piping virsh into an early-exiting grep under pipefail fails at random (SIGPIPE).
  local info; info=$(virsh -c qemu:///system net-info "$LIMEN_NETWORK")
  grep -E 'Active:\s+yes' <<<"$info" >/dev/null || virsh -c qemu:///system net-start "$LIMEN_NETWORK" >/dev/null
}
