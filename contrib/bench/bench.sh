#!/usr/bin/env bash
# Throughput and latency of every target in front of one redis-server, side
# by side: the same redis-benchmark runs against direct redis, rzproxy
# (shared and pinned), twemproxy, HAProxy (mode tcp) and a minimal relay,
# interleaved, REPEATS times; the medians go to a table, a CSV and a chart.
# See README.md in this directory for the knobs and how to read the output.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGETS=${BENCH_TARGETS:-direct rzproxy-shared rzproxy-pinned twemproxy haproxy relay}
# c<clients>-P<pipeline>[-d<value bytes>][:<requests>]; requests are scaled
# by BENCH_SCALE. The defaults take ~1.5-4 s per run on a 2-core machine.
SHAPES=${BENCH_SHAPES:-c1-P1:30000 c50-P1:150000 c50-P16:1000000 c200-P4-d1024:400000}
TESTS=${BENCH_TESTS:-set get}         # one redis-benchmark run each, in this order
SCALE=${BENCH_SCALE:-1}
REPEATS=${REPEATS:-3}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-120} # seconds; a run that hangs fails the bench
EXTRA=${BENCH_EXTRA_ARGS:-}           # appended to every redis-benchmark command

case " $TARGETS " in *" direct "*) ;; *) die "BENCH_TARGETS must include direct (ratios are against it)" ;; esac

setup_common
# shellcheck disable=SC2046,SC2086  # word splitting wanted
need $(deps_for $TARGETS) gnuplot
case " $TARGETS " in *" rzproxy-"*) build_rzproxy ;; esac
case " $TARGETS " in *" relay "*) build_relay ;; esac

CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$RESULTS/latest-raw.csv
SUMMARY=$RESULTS/latest.csv
CHART=$RESULTS/latest.png

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: $(nproc) cpus, load average $LOAD_START at start"
log "bench: rzproxy $("$RZPROXY" --version 2>&1 | head -1) ($RZPROXY), git $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')"

start_redis
declare -A PORT PID
for t in $TARGETS; do
    start_target "$t"
    PORT[$t]=$TPORT
    PID[$t]=$TPID
    probe "$t" "$TPORT"
    log "bench: $t up on port $TPORT (pid $TPID)"
done

# ------------------------------------------------------------------ runs

shape_args() {                        # shape_args c50-P16-d1024 -> "50 16 1024"
    local c=1 p=1 d=3 part
    local IFS=-
    for part in $1; do
        case $part in
            c[0-9]*) c=${part#c} ;;
            P[0-9]*) p=${part#P} ;;
            d[0-9]*) d=${part#d} ;;
            *) die "bad shape '$1' (want c<clients>-P<pipeline>[-d<bytes>])" ;;
        esac
    done
    echo "$c $p $d"
}

echo "rep,target,shape,test,clients,pipeline,size,requests,rps,avg_ms,min_ms,p50_ms,p95_ms,p99_ms,max_ms,cpu_us_per_req" >"$RAW"
read -ra target_list <<<"$TARGETS"
ntargets=${#target_list[@]}
nruns=$((REPEATS * $(wc -w <<<"$SHAPES") * ntargets * $(wc -w <<<"$TESTS")))
run=0
t0=$(date +%s)
for ((rep = 1; rep <= REPEATS; rep++)); do
    for spec in $SHAPES; do
        shape=${spec%%:*}
        base=${spec#*:}
        [ "$base" = "$spec" ] && base=100000
        read -r c p d <<<"$(shape_args "$shape")"
        n=$(awk -v b="$base" -v s="$SCALE" -v c="$c" -v p="$p" \
            'BEGIN { n = int(b * s); if (n < c * p) n = c * p; print n }')
        # rotate the order each repeat so no target always runs first
        for ((k = 0; k < ntargets; k++)); do
            t=${target_list[(k + rep - 1) % ntargets]}
            for test in $TESTS; do
                run=$((run + 1))
                if [ -t 2 ]; then
                    printf '\rbench: run %d/%d  rep %d  %-15s %-16s %-4s' \
                        "$run" "$nruns" "$rep" "$t" "$shape" "$test" >&2
                fi
                out=$WORK/out.csv
                cpu0=$(cpu_ticks "${PID[$t]}")
                rc=0
                # shellcheck disable=SC2086  # EXTRA is a list of arguments
                timeout --foreground "$RUN_TIMEOUT" redis-benchmark -h "$LOCALHOST" -p "${PORT[$t]}" \
                    -n "$n" -c "$c" -P "$p" -d "$d" -t "$test" --csv $EXTRA \
                    >"$out" 2>"$WORK/bench.err" || rc=$?
                if [ "$rc" -ne 0 ]; then
                    # timeout passes a Ctrl-C on and exits 130 (redis-benchmark alone exits 0)
                    [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ] && { log ""; log "bench: interrupted"; exit 130; }
                    log "bench: run $run: $t $shape $test -n $n: exit $rc"
                    cat "$WORK/bench.err" >&2
                    kill -0 "${PID[$t]}" 2>/dev/null || die "target '$t' died (log: $WORK/$t.log)"
                    [ "$rc" -eq 124 ] && die "redis-benchmark against '$t' ($shape $test) hung (over $RUN_TIMEOUT s)"
                    die "redis-benchmark against '$t' ($shape $test) failed"
                fi
                cpu1=$(cpu_ticks "${PID[$t]}")
                line=$(grep -i "^\"$test\"" "$out" | head -1) ||
                    { log ""; cat "$out" "$WORK/bench.err" >&2; die "no $test result from '$t' ($shape)"; }
                echo "$line" | awk -F, -v OFS=, -v rep="$rep" -v t="$t" -v shape="$shape" \
                    -v c="$c" -v p="$p" -v d="$d" -v n="$n" \
                    -v cpu="$((cpu1 - cpu0))" -v hz="$CLK_TCK" '
                    { gsub(/"/, "")
                      if ($2 + 0 <= 0) exit 1
                      print rep, t, shape, tolower($1), c, p, d, n, $2, $3, $4, $5, $6, $7, $8,
                            sprintf("%.2f", cpu / hz * 1e6 / n) }' >>"$RAW" ||
                    { log ""; die "zero rps from '$t' ($shape $test)"; }
            done
        done
    done
done
[ -t 2 ] && log ""
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: $run runs in $(($(date +%s) - t0)) s, load average $LOAD_END at end"

# ------------------------------------------------------------------ medians

# Median of each metric per (target, shape, test), then rps ratios against
# direct and relay for the same shape and test. mawk has no asort: insertion
# sort, the lists are REPEATS long.
awk -F, -v OFS=, -v targets="$TARGETS" -v shapes="$SHAPES" -v tests="$TESTS" '
# median(list): sets lo and hi to the smallest and largest value too
function median(list,    a, m, i, j, v) {
    m = split(list, a, " ")
    for (i = 2; i <= m; i++) {
        v = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]
        a[j + 1] = v
    }
    lo = a[1]; hi = a[m]
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
NR > 1 {
    k = $2 SUBSEP $3 SUBSEP $4
    rps[k] = rps[k] " " $9; p50[k] = p50[k] " " $12; p99[k] = p99[k] " " $14
    avg[k] = avg[k] " " $10; cpu[k] = cpu[k] " " $16; nrep[k]++
}
END {
    print "target,shape,test,repeats,rps,p50_ms,p99_ms,avg_ms,cpu_us_per_req,x_direct,x_relay,rps_spread_pct"
    nt = split(targets, T, " "); ns = split(shapes, S, " "); nx = split(tests, X, " ")
    for (s = 1; s <= ns; s++) { sub(/:.*/, "", S[s]) }
    for (s = 1; s <= ns; s++) for (x = 1; x <= nx; x++) {
        kd = "direct" SUBSEP S[s] SUBSEP X[x]; kr = "relay" SUBSEP S[s] SUBSEP X[x]
        d = (kd in rps) ? median(rps[kd]) : 0
        r = (kr in rps) ? median(rps[kr]) : 0
        for (t = 1; t <= nt; t++) {
            k = T[t] SUBSEP S[s] SUBSEP X[x]
            if (!(k in rps)) continue
            v = median(rps[k])
            spread = v > 0 ? sprintf("%.0f", (hi - lo) * 100 / v) : ""
            print T[t], S[s], X[x], nrep[k], sprintf("%.0f", v), median(p50[k]), median(p99[k]),
                  median(avg[k]), median(cpu[k]),
                  d ? sprintf("%.3f", v / d) : "", r ? sprintf("%.3f", v / r) : "", spread
        }
    }
}' "$RAW" >"$SUMMARY"

# ------------------------------------------------------------------ table

{
    echo "$STAMP  $(nproc) cpus  load average $LOAD_START at start, $LOAD_END at end"
    echo "rzproxy $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?'), scale $SCALE, medians of $REPEATS repeat(s)"
    echo "x direct / x relay: rps ratio (1.00 = as fast); spread: (max - min) / median rps"
    echo "cpu us: CPU time of the target process (direct: redis-server) per request"
    echo
    awk -F, 'NR == 1 { printf "%-15s %-14s %-4s %9s %7s %7s %7s %8s %8s %7s\n", "target", "shape", "test",
                        "rps", "p50 ms", "p99 ms", "cpu us", "x direct", "x relay", "spread"; next }
             $2 != last && NR > 2 { print "" }
             { last = $2
               printf "%-15s %-14s %-4s %9s %7.3f %7.3f %7.2f %8s %8s %6s%%\n",
                      $1, $2, $3, $5, $6, $7, $9, $10, $11, $12 }' "$SUMMARY"
} | tee "$RESULTS/latest.txt"

# ------------------------------------------------------------------ chart

# One row per shape+test, one column per target (direct left out: it is 1.0)
chart_targets=$(tr ' ' '\n' <<<"$TARGETS" | grep -vx direct | tr '\n' ' ')
if [ -n "$chart_targets" ]; then
    awk -F, -v targets="$chart_targets" '
        NR > 1 { v[$2 " " $3, $1] = $10; if (!(($2 " " $3) in seen)) { seen[$2 " " $3] = 1; order[++n] = $2 " " $3 } }
        END {
            nt = split(targets, T, " ")
            printf "shape\ttest"; for (t = 1; t <= nt; t++) printf "\t%s", T[t]; printf "\n"
            for (i = 1; i <= n; i++) {
                label = order[i]; sub(/ /, "\t", label)
                printf "%s", label
                for (t = 1; t <= nt; t++) printf "\t%s", ((order[i], T[t]) in v) ? v[order[i], T[t]] : "0"
                printf "\n"
            }
        }' "$SUMMARY" >"$WORK/chart.dat"
    gnuplot -e "datafile='$WORK/chart.dat'; outfile='$CHART'; ncols=$(($(wc -w <<<"$chart_targets") + 2)); subtitle='$STAMP, $(nproc) cpus, medians of $REPEATS'" \
        "$BENCH_DIR/chart.gp" 2>"$WORK/gnuplot.err" ||
        { cat "$WORK/gnuplot.err" >&2; die "gnuplot failed"; }
fi

log "bench: wrote $SUMMARY, $RAW, $RESULTS/latest.txt and $CHART"
