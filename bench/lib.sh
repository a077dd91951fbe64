# bench/lib.sh — helpers the bench scripts share (sourced, not run).

# now_ms: wall clock in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# median: of the numbers on stdin, one per line (nan when there are none).
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# free_port: a loopback port nobody listens on (ss from iproute2; no python needed).
free_port() {
  local port listening; listening=$(ss -Htln)
  while :; do
    port=$(( 20000 + RANDOM % 40000 ))
    grep -E "[:.]$port\s" <<<"$listening" >/dev/null || { echo "$port"; return; }
  done
}
