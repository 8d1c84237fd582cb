#!/usr/bin/env bash
# Instructions per forwarded GET, counted by callgrind, for each proxy in
# CPU_TARGETS (rzproxy shared first, then twemproxy, ...).
#
# For each target: run it under valgrind --tool=callgrind twice against the
# same redis-server, once idle (start, then SIGTERM) and once while
# redis-benchmark sends CPU_REQUESTS GETs through it; then
#
#   Ir per GET = (Ir loaded - Ir idle) / CPU_REQUESTS
#
# Ir counts user-space instructions of the proxy process only (its code,
# libevent, libc); time spent in the kernel (syscalls) is not in it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGETS=${CPU_TARGETS:-rzproxy-shared twemproxy rzproxy-pinned relay}
REQUESTS=${CPU_REQUESTS:-20000}
CLIENTS=${CPU_CLIENTS:-10}
PIPELINE=${CPU_PIPELINE:-1}

setup_common
# shellcheck disable=SC2046,SC2086  # word splitting wanted
need $(deps_for $TARGETS) valgrind callgrind_annotate
case " $TARGETS " in *" rzproxy-"*) build_rzproxy ;; esac
case " $TARGETS " in *" relay "*) build_relay ;; esac

OUT=$RESULTS/cpu.txt
CSV=$RESULTS/cpu.csv

# callgrind_run TARGET TAG LOAD(0|1): sets IR to the total Ir of one run
# (not a $(...) subshell: the pids it starts must reach our cleanup list)
callgrind_run() {
    local t=$1 tag=$2 load=$3 f=$WORK/callgrind.$1.$2 ir
    WRAP=(valgrind --tool=callgrind --callgrind-out-file="$f")
    start_target "$t"
    WRAP=()
    if [ "$load" = 1 ]; then
        timeout --foreground 600 redis-benchmark -h "$LOCALHOST" -p "$TPORT" -n "$REQUESTS" -c "$CLIENTS" \
            -P "$PIPELINE" -t get --csv >"$WORK/$t.$tag.bench" 2>&1 ||
            { cat "$WORK/$t.$tag.bench" >&2; die "redis-benchmark through '$t' under callgrind failed"; }
    fi
    stop_pid "$TPID" 60
    [ -s "$f" ] || die "no callgrind output for '$t' ($tag): did it exit cleanly? (log: $WORK/$t.log)"
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
    [ -n "$ir" ] || die "no Ir total in $f"
    if [ "$load" = 1 ]; then
        callgrind_annotate "$f" 2>/dev/null | head -40 >"$RESULTS/cpu-$t.txt" || true
    fi
    IR=$ir
}

# shellcheck disable=SC2086  # word splitting wanted
if any_tls_target $TARGETS; then start_redis tls; else start_redis; fi
# the GETs find a 3-byte value (redis-benchmark's key without -r)
redis-cli -h "$LOCALHOST" -p "$REDIS_PORT" set key:__rand_int__ xxx >/dev/null

log "cpu: $REQUESTS GETs, c=$CLIENTS P=$PIPELINE, through each of: $TARGETS (under callgrind, slow)"
echo "target,requests,ir_idle,ir_loaded,ir_per_get" >"$CSV"
for t in $TARGETS; do
    callgrind_run "$t" idle 0
    idle=$IR
    callgrind_run "$t" load 1
    loaded=$IR
    awk -v t="$t" -v n="$REQUESTS" -v i="$idle" -v l="$loaded" \
        'BEGIN { printf "%s,%d,%s,%s,%.0f\n", t, n, i, l, (l - i) / n }' >>"$CSV"
    log "cpu: $t done"
done

{
    echo "instructions (callgrind Ir, user space only) per forwarded GET;"
    echo "$REQUESTS GETs, redis-benchmark -c $CLIENTS -P $PIPELINE, idle start+stop subtracted"
    echo
    awk -F, -v first_name="${TARGETS%% *}" 'NR == 1 { printf "%-18s %14s %14s %10s %12s\n", "target", "Ir idle", "Ir loaded", "Ir/GET", "vs " first_name; next }
             NR == 2 { first = $5 }
             { printf("%-18s %14s %14s %10s %12s\n", $1, $3, $4, $5,
                      first > 0 ? sprintf("%.2fx", $5 / first) : "-") }' "$CSV"
} | tee "$OUT"
log "cpu: wrote $OUT, $CSV and results/cpu-<target>.txt (top functions)"
