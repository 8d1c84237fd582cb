#!/usr/bin/env bash
# Resident memory (VmRSS) of each proxy in MEM_TARGETS:
#   start      just started, no client
#   conn       MEM_CONNS idle clients connected, none has sent anything
#   get        the same clients after one GET each, sent one client at a time
#   closed     after those clients disconnected
#   load-peak  highest RSS sampled every 0.1 s while redis-benchmark runs
#              -c MEM_LOAD_CLIENTS -P MEM_LOAD_PIPELINE -d MEM_LOAD_SIZE -t set,get
#   load-end   right after that load
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGETS=${MEM_TARGETS:-rzproxy-shared twemproxy}
CONNS=${MEM_CONNS:-10000}
LOAD_CLIENTS=${MEM_LOAD_CLIENTS:-100}
LOAD_PIPELINE=${MEM_LOAD_PIPELINE:-16}
LOAD_SIZE=${MEM_LOAD_SIZE:-65536}
LOAD_REQUESTS=${MEM_LOAD_REQUESTS:-20000}

setup_common
# shellcheck disable=SC2046,SC2086  # word splitting wanted
need $(deps_for $TARGETS)
case " $TARGETS " in *" rzproxy-"*) build_rzproxy ;; esac
case " $TARGETS " in *" relay "*) build_relay ;; esac
[ "$(ulimit -n)" -gt $((CONNS + 200)) ] ||
    die "ulimit -n is $(ulimit -n); $CONNS connections need more (raise the hard limit)"
[ "$CONNS" -lt "${BENCH_MAXCLIENTS:-20000}" ] || die "MEM_CONNS must stay below BENCH_MAXCLIENTS"

OUT=$RESULTS/mem.txt
CSV=$RESULTS/mem.csv

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# wait_fds PID MIN|-MAX: until the process holds at least MIN (or at most MAX) fds
wait_fds() {
    local pid=$1 want=$2 i n
    for i in $(seq 300); do
        n=$(nfds "$pid")
        if [ "$want" -ge 0 ] && [ "$n" -ge "$want" ]; then return 0; fi
        if [ "$want" -lt 0 ] && [ "$n" -le $((-want)) ]; then return 0; fi
        sleep 0.1
    done
    die "pid $pid holds $n fds, waited for $want"
}

# shellcheck disable=SC2086  # word splitting wanted
if any_tls_target $TARGETS; then start_redis tls; else start_redis; fi
redis-cli -h "$LOCALHOST" -p "$REDIS_PORT" set bench:mem 0123456789 >/dev/null

echo "target,conns,start_mib,conn_mib,get_mib,closed_mib,load_peak_mib,load_end_mib" >"$CSV"
for t in $TARGETS; do
    start_target "$t"
    probe "$t" "$TPORT"
    sleep 0.5
    base_fds=$(nfds "$TPID")
    r_start=$(rss_kib "$TPID")

    log "mem: $t: opening $CONNS idle connections"
    coproc HOLD { "$PY" "$BENCH_DIR/holdconns.py" "$TPORT" "$CONNS" 2>"$WORK/holdconns.err"; }
    PIDS+=("$HOLD_PID")
    NAMES+=(holdconns)
    hold_pid=$HOLD_PID
    hold_out=${HOLD[0]} hold_in=${HOLD[1]}
    read -r -t 120 line <&"$hold_out" || { cat "$WORK/holdconns.err" >&2; die "holdconns could not connect to '$t'"; }
    [ "$line" = "connected $CONNS" ] || die "holdconns: '$line'"
    wait_fds "$TPID" $((base_fds + CONNS))
    sleep 1
    r_conn=$(rss_kib "$TPID")

    echo "get bench:mem" >&"$hold_in"
    read -r -t 120 line <&"$hold_out" || { cat "$WORK/holdconns.err" >&2; die "holdconns: no replies through '$t'"; }
    [ "$line" = "replied $CONNS" ] || die "holdconns: '$line'"
    sleep 1
    r_get=$(rss_kib "$TPID")

    echo quit >&"$hold_in"
    wait "$hold_pid" 2>/dev/null || true
    wait_fds "$TPID" -$((base_fds + 10))
    sleep 1
    r_closed=$(rss_kib "$TPID")

    log "mem: $t: redis-benchmark -c $LOAD_CLIENTS -P $LOAD_PIPELINE -d $LOAD_SIZE -t set,get -n $LOAD_REQUESTS"
    timeout --foreground 300 redis-benchmark -h "$LOCALHOST" -p "$TPORT" -c "$LOAD_CLIENTS" -P "$LOAD_PIPELINE" \
        -d "$LOAD_SIZE" -t set,get -n "$LOAD_REQUESTS" --csv >"$WORK/$t.mem-load" 2>&1 &
    load_pid=$!
    peak=0
    while kill -0 "$load_pid" 2>/dev/null; do
        r=$(rss_kib "$TPID" || echo 0)
        [ "${r:-0}" -gt "$peak" ] && peak=$r
        sleep 0.1
    done
    wait "$load_pid" || { cat "$WORK/$t.mem-load" >&2; die "redis-benchmark load through '$t' failed"; }
    r_end=$(rss_kib "$TPID")
    stop_pid "$TPID"

    echo "$t,$CONNS,$(mib "$r_start"),$(mib "$r_conn"),$(mib "$r_get"),$(mib "$r_closed"),$(mib "$peak"),$(mib "$r_end")" >>"$CSV"
    log "mem: $t done"
done

{
    echo "VmRSS in MiB; conn/get: $CONNS idle clients before/after one GET each;"
    echo "load: redis-benchmark -c $LOAD_CLIENTS -P $LOAD_PIPELINE -d $LOAD_SIZE -t set,get -n $LOAD_REQUESTS"
    echo
    awk -F, 'NR == 1 { printf "%-15s %7s %7s %7s %7s %9s %8s %12s\n", "target", "start", "conn", "get", "closed",
                        "load-peak", "load-end", "KiB/idle-cl"; next }
             { printf("%-15s %7s %7s %7s %7s %9s %8s %12.1f\n", $1, $3, $4, $5, $6, $7, $8, ($5 - $3) * 1024 / $2) }' "$CSV"
} | tee "$OUT"
log "mem: wrote $OUT and $CSV"
