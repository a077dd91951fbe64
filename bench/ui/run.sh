#!/usr/bin/env bash
# bench/ui — the web UI in Debian's Chromium (Playwright) against a real `limen serve` on a fresh
# database: cold load of the dashboard to interactive, enhanced page-to-page navigation, the VM list
# with 1,000 VMs to its first rows, a state change to its badge (p95 of 50), the JS+CSS shipped
# (gzip as served, without noVNC), server memory per open dashboard tab. Each figure with its goal;
# writes bench/results/ui.md.
#   bench/ui/run.sh [--vms 1000] [--changes 50] [--tabs 20] [--out bench/results/ui.md]
# Needs PostgreSQL (./run.sh or ./test.sh start it), /usr/bin/chromium and libvirt's client library (test:///default).
source "$(dirname "$0")/../../scripts/lib.sh"

start_postgres
ensure_dotnet
cd "$REPO_ROOT"
dotnet build src/Limen -c Release -nologo -v quiet -clp:ErrorsOnly >&2
dotnet build bench/ui -c Release -nologo -v quiet -clp:ErrorsOnly >&2
exec dotnet bench/ui/bin/Release/net10.0/UiBench.dll "$@"
