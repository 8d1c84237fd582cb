#!/usr/bin/env bash
# Throughput and latency of every target in front of one redis-server, side
# by side: the same redis-benchmark runs against direct redis, rzproxy
# (shared and pinned), twemproxy, HAProxy (mode tcp) and a minimal relay,
# interleaved, REPEATS times; the medians go to a table, a CSV and a chart.
# See README.md in this directory for the knobs and how to read the output.
#
#   bench.sh          every shape (plain and modern-client ones)
#   bench.sh modern   only the modern-client shapes and the plain shapes they
#                     are compared with (results/modern.*)
#   bench.sh tls      the plain shapes, direct and through rzproxy (shared,
#                     pinned), each also with TLS to the redis-server's TLS
#                     port: what TLS costs per request (results/tls.*)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE=${1:-all}
case $MODE in
    tls) TARGETS=${BENCH_TARGETS:-direct direct-tls rzproxy-shared rzproxy-tls rzproxy-pinned rzproxy-tls-pinned} ;;
    *) TARGETS=${BENCH_TARGETS:-direct rzproxy-shared rzproxy-pinned twemproxy haproxy relay} ;;
esac
# c<clients>-P<pipeline>[-d<value bytes>][-m][:<requests>]; requests are
# scaled by BENCH_SCALE. -m: a "modern client" (MODERN_ARGS below: RESP3,
# AUTH with an ACL user, SELECT on every connection). The defaults take
# ~1.5-4 s per run on a 2-core machine.
case $MODE in
    all)
        SHAPES=${BENCH_SHAPES:-c1-P1:30000 c50-P1:150000 c50-P1-m:150000 c50-P16:1000000 c50-P16-m:1000000 c200-P4-d1024:400000}
        NAME=latest ;;
    modern)
        SHAPES=${BENCH_SHAPES:-c50-P1:150000 c50-P1-m:150000 c50-P16:1000000 c50-P16-m:1000000}
        NAME=modern ;;
    tls)
        SHAPES=${BENCH_SHAPES:-c1-P1:30000 c50-P1:150000 c50-P16:1000000 c200-P4-d1024:400000}
        NAME=tls ;;
    *) die "usage: bench.sh [modern|tls]" ;;
esac
MODERN_DB=${BENCH_MODERN_DB:-2}
MODERN_ARGS="-3 --dbnum $MODERN_DB --user $ACL_USER -a $ACL_PASS"
GOAL_RATIO=${BENCH_GOAL_RATIO:-0.9}   # modern shapes, rzproxy-shared: rps >= this x plain
GOAL_CONNS=${BENCH_GOAL_CONNS:-4}     # ... and at most this many master connections
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
# shellcheck disable=SC2086  # word splitting wanted
if any_tls_target $TARGETS; then any_tls=1; else any_tls=0; fi
# "tls_target:plain_target ..." for the TLS summary
TLS_PAIRS=""
for t in $TARGETS; do
    if is_tls_target "$t"; then TLS_PAIRS="$TLS_PAIRS $t:$(tls_plain_of "$t")"; fi
done

CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$RESULTS/$NAME-raw.csv
SUMMARY=$RESULTS/$NAME.csv
TABLE=$RESULTS/$NAME.txt
CHART=$RESULTS/$NAME.png

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: $(nproc) cpus, load average $LOAD_START at start"
log "bench: rzproxy $("$RZPROXY" --version 2>&1 | head -1) ($RZPROXY), git $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')"

shape_args() {                        # shape_args c50-P16-d1024-m -> "50 16 1024 1"
    local c=1 p=1 d=3 m=0 part
    local IFS=-
    for part in $1; do
        case $part in
            c[0-9]*) c=${part#c} ;;
            P[0-9]*) p=${part#P} ;;
            d[0-9]*) d=${part#d} ;;
            m) m=1 ;;
            *) die "bad shape '$1' (want c<clients>-P<pipeline>[-d<bytes>][-m])" ;;
        esac
    done
    echo "$c $p $d $m"
}

# skip_reason TARGET MODERN(0|1): why TARGET cannot run such a shape (empty: it can)
skip_reason() {
    case $1:$2 in
        twemproxy:1)
            echo "nutcracker 0.5 closes the connection on HELLO and SELECT ('parsed unsupported command') and on AUTH with a user name (it knows only AUTH <password>, checked against its own redis_auth; the db is the pool's redis_db), so no client that opens with HELLO 3 / AUTH user pass / SELECT n gets through" ;;
    esac
}

any_modern=0
for spec in $SHAPES; do
    read -r c _ _ m <<<"$(shape_args "${spec%%:*}")"
    [ -n "$c" ] || exit 1             # shape_args said why
    if [ "$m" = 1 ]; then any_modern=1; fi
done

if [ "$any_tls" = 1 ]; then start_redis tls; else start_redis; fi
declare -A PORT PID
for t in $TARGETS; do
    start_target "$t"
    PORT[$t]=$TPORT
    PID[$t]=$TPID
    probe "$t" "$TPORT"
    if [ "$any_modern" = 1 ] && [ -z "$(skip_reason "$t" 1)" ]; then
        probe_modern "$t" "$TPORT" "$MODERN_DB"
    fi
    log "bench: $t up on port $TPORT (pid $TPID)"
done
if [ "$any_tls" = 1 ]; then
    log "bench: redis-server TLS port $REDIS_TLS_PORT; $(openssl version); rzproxy-tls* speak TLS to it, their clients plain RESP"
fi
if [ "$any_modern" = 1 ]; then
    log "bench: modern-client shapes run redis-benchmark $MODERN_ARGS"
    for t in $TARGETS; do
        r=$(skip_reason "$t" 1)
        [ -z "$r" ] || log "bench: $t skipped for the modern-client shapes: $r"
    done
fi

# ------------------------------------------------------------------ runs

echo "rep,target,shape,test,clients,pipeline,size,modern,requests,rps,avg_ms,min_ms,p50_ms,p95_ms,p99_ms,max_ms,cpu_us_per_req,redis_cpu_us_per_req,master_conns" >"$RAW"
read -ra target_list <<<"$TARGETS"
ntargets=${#target_list[@]}
nruns=0
for spec in $SHAPES; do
    read -r _ _ _ m <<<"$(shape_args "${spec%%:*}")"
    for t in $TARGETS; do [ -n "$(skip_reason "$t" "$m")" ] || nruns=$((nruns + 1)); done
done
nruns=$((nruns * REPEATS * $(wc -w <<<"$TESTS")))
run=0
t0=$(date +%s)
for ((rep = 1; rep <= REPEATS; rep++)); do
    for spec in $SHAPES; do
        shape=${spec%%:*}
        base=${spec#*:}
        [ "$base" = "$spec" ] && base=100000
        read -r c p d m <<<"$(shape_args "$shape")"
        margs=""
        if [ "$m" = 1 ]; then margs=$MODERN_ARGS; fi
        n=$(awk -v b="$base" -v s="$SCALE" -v c="$c" -v p="$p" \
            'BEGIN { n = int(b * s); if (n < c * p) n = c * p; print n }')
        # rotate the order each repeat so no target always runs first
        for ((k = 0; k < ntargets; k++)); do
            t=${target_list[(k + rep - 1) % ntargets]}
            [ -z "$(skip_reason "$t" "$m")" ] || continue
            # the master connections of the other targets are not this one's
            others=()
            for o in $TARGETS; do [ "${PID[$o]}" = "${PID[$t]}" ] || [ "${PID[$o]}" = "$REDIS_PID" ] || others+=("${PID[$o]}"); done
            for test in $TESTS; do
                run=$((run + 1))
                if [ -t 2 ]; then
                    printf '\rbench: run %d/%d  rep %d  %-18s %-16s %-4s' \
                        "$run" "$nruns" "$rep" "$t" "$shape" "$test" >&2
                fi
                out=$WORK/out.csv
                conns_start "${others[@]}"
                cpu0=$(cpu_ticks "${PID[$t]}")
                rcpu0=$(cpu_ticks "$REDIS_PID")
                rc=0
                # shellcheck disable=SC2086,SC2046  # margs, EXTRA, tls args are lists of arguments
                timeout --foreground "$RUN_TIMEOUT" redis-benchmark -h "$LOCALHOST" -p "${PORT[$t]}" \
                    -n "$n" -c "$c" -P "$p" -d "$d" -t "$test" --csv $margs $(tls_client_args "$t") $EXTRA \
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
                rcpu1=$(cpu_ticks "$REDIS_PID")
                conns_stop
                line=$(grep -i "^\"$test\"" "$out" | head -1) ||
                    { log ""; cat "$out" "$WORK/bench.err" >&2; die "no $test result from '$t' ($shape)"; }
                # cpu: the target process (none for direct and direct-tls: it
                # is redis), rcpu: redis-server
                echo "$line" | awk -F, -v OFS=, -v rep="$rep" -v t="$t" -v shape="$shape" \
                    -v proxy="$([ "${PID[$t]}" = "$REDIS_PID" ] && echo 0 || echo 1)" \
                    -v c="$c" -v p="$p" -v d="$d" -v m="$m" -v n="$n" \
                    -v cpu="$((cpu1 - cpu0))" -v rcpu="$((rcpu1 - rcpu0))" -v hz="$CLK_TCK" \
                    -v conns="$CONNS_MAX" '
                    { gsub(/"/, "")
                      if ($2 + 0 <= 0) exit 1
                      print rep, t, shape, tolower($1), c, p, d, m, n, $2, $3, $4, $5, $6, $7, $8,
                            proxy ? sprintf("%.2f", cpu / hz * 1e6 / n) : "",
                            sprintf("%.2f", rcpu / hz * 1e6 / n), conns }' >>"$RAW" ||
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
# direct and relay for the same shape and test, and for a modern shape
# (-m) against the plain shape with the same c/P: rzproxy-shared's and the
# target's own. For a TLS target, against its plain counterpart (TLS_PAIRS):
# the rps ratio and the extra CPU per request of proxy, redis and both.
# master_conns is the highest over the repeats. mawk has no asort: insertion
# sort, the lists are REPEATS long.
awk -F, -v OFS=, -v targets="$TARGETS" -v shapes="$SHAPES" -v tests="$TESTS" -v pairs="$TLS_PAIRS" "$AWK_MEDIAN"'
# plain(shape): the same shape without its -m, or "" if it has none
function plain(shape,    a, n, i, out, found) {
    n = split(shape, a, "-"); out = ""; found = 0
    for (i = 1; i <= n; i++) if (a[i] == "m") found = 1; else out = out (out == "" ? "" : "-") a[i]
    return found ? out : ""
}
NR > 1 {
    k = $2 SUBSEP $3 SUBSEP $4
    rps[k] = rps[k] " " $10; p50[k] = p50[k] " " $13; p99[k] = p99[k] " " $15
    avg[k] = avg[k] " " $11; rcpu[k] = rcpu[k] " " $18; nrep[k]++
    if ($17 != "") cpu[k] = cpu[k] " " $17
    if (!(k in conns) || $19 + 0 > conns[k]) conns[k] = $19 + 0
}
END {
    print "target,shape,test,repeats,rps,p50_ms,p99_ms,avg_ms,cpu_us_per_req,redis_cpu_us_per_req,sum_cpu_us_per_req,master_conns,x_direct,x_relay,rps_spread_pct,plain_shape,x_plain_shared,x_own_plain,tls_plain_target,x_tls_plain,extra_proxy_us,extra_redis_us,extra_sum_us,x_direct_tls"
    np = split(pairs, PP, " ")
    for (i = 1; i <= np; i++) { split(PP[i], pr, ":"); plainof[pr[1]] = pr[2] }
    nt = split(targets, T, " "); ns = split(shapes, S, " "); nx = split(tests, X, " ")
    for (s = 1; s <= ns; s++) { sub(/:.*/, "", S[s]) }
    for (s = 1; s <= ns; s++) for (x = 1; x <= nx; x++) {
        kd = "direct" SUBSEP S[s] SUBSEP X[x]; kr = "relay" SUBSEP S[s] SUBSEP X[x]
        kdt = "direct-tls" SUBSEP S[s] SUBSEP X[x]
        d = (kd in rps) ? median(rps[kd]) : 0
        r = (kr in rps) ? median(rps[kr]) : 0
        dt = (kdt in rps) ? median(rps[kdt]) : 0
        ps = plain(S[s]); kps = "rzproxy-shared" SUBSEP ps SUBSEP X[x]
        sh = (ps != "" && (kps in rps)) ? median(rps[kps]) : 0
        for (t = 1; t <= nt; t++) {
            k = T[t] SUBSEP S[s] SUBSEP X[x]
            if (!(k in rps)) continue
            kop = T[t] SUBSEP ps SUBSEP X[x]
            op = (ps != "" && (kop in rps)) ? median(rps[kop]) : 0
            v = median(rps[k])
            spread = v > 0 ? sprintf("%.0f", (hi - lo) * 100 / v) : ""
            c = (k in cpu) ? median(cpu[k]) : ""
            rc = median(rcpu[k])
            # a TLS target against its plain counterpart
            tp = (T[t] in plainof) ? plainof[T[t]] : ""; ktp = tp SUBSEP S[s] SUBSEP X[x]
            xtp = xpc = xrc = xsc = ""
            if (tp != "" && (ktp in rps)) {
                pv = median(rps[ktp]); prc = median(rcpu[ktp])
                pc = (ktp in cpu) ? median(cpu[ktp]) : ""
                xtp = pv ? sprintf("%.3f", v / pv) : ""
                xpc = (c != "" && pc != "") ? sprintf("%.2f", c - pc) : ""
                xrc = sprintf("%.2f", rc - prc)
                xsc = sprintf("%.2f", (c + rc) - (pc + prc))
            }
            print T[t], S[s], X[x], nrep[k], sprintf("%.0f", v), median(p50[k]), median(p99[k]),
                  median(avg[k]), c, rc, sprintf("%.2f", c + rc), conns[k],
                  d ? sprintf("%.3f", v / d) : "", r ? sprintf("%.3f", v / r) : "", spread,
                  ps, sh ? sprintf("%.3f", v / sh) : "", op ? sprintf("%.3f", v / op) : "",
                  tp, xtp, xpc, xrc, xsc, (dt && tp != "") ? sprintf("%.3f", v / dt) : ""
        }
    }
}' "$RAW" >"$SUMMARY"

# ------------------------------------------------------------------ table

{
    echo "$STAMP  $(nproc) cpus  load average $LOAD_START at start, $LOAD_END at end"
    echo "rzproxy $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?') ($RZPROXY), scale $SCALE, medians of $REPEATS repeat(s)"
    echo "x direct / x relay: rps ratio (1.00 = as fast); spread: (max - min) / median rps"
    echo "conns: most connections the redis-server had from this target during a run (highest over the repeats)"
    echo "proxy us / redis us: CPU time (user+sys) of the target process / of redis-server per request; sum us: both"
    if [ "$any_modern" = 1 ]; then echo "-m shapes: modern clients, redis-benchmark $MODERN_ARGS"; fi
    echo
    awk -F, 'NR == 1 { printf "%-18s %-14s %-4s %9s %7s %7s %6s %8s %8s %7s %8s %8s %7s\n", "target", "shape", "test",
                        "rps", "p50 ms", "p99 ms", "conns", "proxy us", "redis us", "sum us", "x direct", "x relay", "spread"; next }
             $2 != last && NR > 2 { print "" }
             { last = $2
               printf "%-18s %-14s %-4s %9s %7.3f %7.3f %6s %8s %8.2f %7.2f %8s %8s %6s%%\n",
                      $1, $2, $3, $5, $6, $7, $12, $9 == "" ? "-" : sprintf("%.2f", $9), $10, $11,
                      $13, $14, $15 }' "$SUMMARY"
    if [ "$any_modern" = 1 ]; then
        echo
        echo "modern clients (AUTH $ACL_USER, SELECT $MODERN_DB, HELLO 3 on every connection) against plain ones:"
        echo "x plain shared: rps / rps of rzproxy-shared on the plain shape with the same c/P and test"
        echo "x own plain: rps / rps of the same target on that plain shape"
        echo "goal (rzproxy-shared): x plain shared >= $GOAL_RATIO and conns <= $GOAL_CONNS"
        echo
        awk -F, -v gr="$GOAL_RATIO" -v gc="$GOAL_CONNS" '
            NR == 1 { printf "%-18s %-14s %-4s %9s %6s %14s %11s  %s\n", "target", "shape", "test",
                              "rps", "conns", "x plain shared", "x own plain", "goal"; next }
            $16 == "" { next }
            $2 != last && last != "" { print "" }
            { last = $2; goal = ""
              if ($1 == "rzproxy-shared") {
                  why = ""
                  if ($17 == "") why = "no plain rzproxy-shared run to compare with"
                  else if ($17 + 0 < gr + 0) why = sprintf("%.2fx < %.2fx", $17, gr)
                  if ($12 + 0 > gc + 0) why = why (why == "" ? "" : "; ") sprintf("%d conns > %d", $12, gc)
                  goal = why == "" ? "met" : "MISSED (" why ")"
              }
              line = sprintf("%-18s %-14s %-4s %9s %6s %14s %11s  %s", $1, $2, $3, $5, $12,
                             $17 == "" ? "-" : $17, $18 == "" ? "-" : $18, goal)
              sub(/ +$/, "", line); print line }' "$SUMMARY"
        for t in $TARGETS; do
            r=$(skip_reason "$t" 1)
            [ -z "$r" ] || { echo; echo "$t: not run with modern clients: $r" | fold -s -w 100 | sed "s/ *$//"; }
        done
    fi
    if [ "$any_tls" = 1 ]; then
        echo
        echo "TLS to the redis-server (its --tls-port, same process) against the same route in plain:"
        echo "rzproxy-tls* clients speak plain RESP to rzproxy, which speaks TLS to redis; direct-tls is"
        echo "redis-benchmark speaking TLS itself (its own TLS work is on the client, not counted below)"
        echo "x plain: rps / rps of the plain route (same shape and test)"
        echo "+proxy us, +redis us, +sum us: CPU per request (user+sys, /proc) over the plain route's"
        echo "x direct-tls: rps / rps of direct-tls: the sidecar against a client that speaks TLS itself"
        echo
        awk -F, 'NR == 1 { printf "%-18s %-14s %-14s %-4s %9s %9s %7s %9s %9s %8s %6s %12s\n", "tls target",
                          "vs plain", "shape", "test", "plain rps", "tls rps", "x plain", "+proxy us",
                          "+redis us", "+sum us", "conns", "x direct-tls"; next }
            { k = $1 SUBSEP $2 SUBSEP $3; rpsof[k] = $5 }
            $19 == "" { next }
            { row[++n] = $0 }
            END {
                for (i = 1; i <= n; i++) {
                    split(row[i], f, ",")
                    if (f[2] != last && i > 1) print ""
                    last = f[2]
                    pk = f[19] SUBSEP f[2] SUBSEP f[3]
                    line = sprintf("%-18s %-14s %-14s %-4s %9s %9s %7s %9s %9s %8s %6s %12s", f[1], f[19], f[2],
                                   f[3], (pk in rpsof) ? rpsof[pk] : "-", f[5], f[20] == "" ? "-" : f[20],
                                   f[21] == "" ? "-" : f[21], f[22] == "" ? "-" : f[22],
                                   f[23] == "" ? "-" : f[23], f[12], f[24] == "" ? "-" : f[24])
                    sub(/ +$/, "", line); print line
                }
            }' "$SUMMARY"
    fi
} | tee "$TABLE"

# ------------------------------------------------------------------ chart

# One row per shape+test, one column per target (direct left out: it is 1.0);
# a target that was skipped for a shape has no bar there.
chart_targets=$(tr ' ' '\n' <<<"$TARGETS" | grep -vx direct | tr '\n' ' ')
if [ -n "$chart_targets" ]; then
    awk -F, -v targets="$chart_targets" '
        NR > 1 { v[$2 " " $3, $1] = $13; if (!(($2 " " $3) in seen)) { seen[$2 " " $3] = 1; order[++n] = $2 " " $3 } }
        END {
            nt = split(targets, T, " ")
            printf "shape\ttest"; for (t = 1; t <= nt; t++) printf "\t%s", T[t]; printf "\n"
            for (i = 1; i <= n; i++) {
                label = order[i]; sub(/ /, "\t", label)
                printf "%s", label
                for (t = 1; t <= nt; t++) printf "\t%s", ((order[i], T[t]) in v) ? v[order[i], T[t]] : "NaN"
                printf "\n"
            }
        }' "$SUMMARY" >"$WORK/chart.dat"
    gnuplot -e "datafile='$WORK/chart.dat'; outfile='$CHART'; ncols=$(($(wc -w <<<"$chart_targets") + 2)); subtitle='$STAMP, $(nproc) cpus, medians of $REPEATS'" \
        "$BENCH_DIR/chart.gp" 2>"$WORK/gnuplot.err" ||
        { cat "$WORK/gnuplot.err" >&2; die "gnuplot failed"; }
fi

log "bench: wrote $SUMMARY, $RAW, $TABLE and $CHART"
