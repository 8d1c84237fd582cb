#!/usr/bin/env bash
# Replica reads (issue 16): does `read-from replicas` take the GET load off
# the master, and what throughput does it give next to `read-from master`?
#
# One master and two replicas (replicaof, replica-read-only yes) on
# loopback, a standalone ZooKeeper whose znode is redis_failover JSON
# {"master": M, "slaves": [R1, R2]}, and one rzproxy per pool on that
# znode: `read-from replicas` and `read-from master`. Load: a 90% GET /
# 10% SET mix at c=50 P=1, measured over a fixed window from the servers'
# own counters (INFO commandstats) and /proc CPU times. READS_LOAD:
#   mix (default)    mixload.c, one process, 50 clients, each sends 9 GETs
#                    then 1 SET: exactly 90/10, and client-side latency
#   redis-benchmark  two redis-benchmark processes at once against the pool,
#                    45 clients GET and 5 SET: the mix they reach is what
#                    the servers count (more SETs than 10% here, see README)
# See README.md in this directory ("run reads").
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGETS=${READS_TARGETS:-rzproxy-replicas rzproxy-master direct}
SCALE=${BENCH_SCALE:-1}
REPEATS=${REPEATS:-3}
LOAD=${READS_LOAD:-mix}
CLIENTS=${READS_CLIENTS:-50}          # mix: clients in total
EVERY=${READS_SET_EVERY:-10}          # mix: every EVERY-th command of a client is a SET
GET_CLIENTS=${READS_GET_CLIENTS:-45}  # redis-benchmark: the GET process's clients
SET_CLIENTS=${READS_SET_CLIENTS:-5}   # ... and the SET process's
MIXLOAD=$BENCH_DIR/mixload
PIPELINE=${READS_PIPELINE:-1}
SIZE=${READS_SIZE:-3}
WARMUP=${READS_WARMUP:-2}             # seconds of load before the window opens
# the measured window: READS_SECONDS (10) x BENCH_SCALE, at least 1 s
WINDOW=$(awk -v s="${READS_SECONDS:-10}" -v k="$SCALE" 'BEGIN { w = s * k; if (w < 1) w = 1; print w }')
ZK_JAR=${BENCH_ZK_JAR:-/usr/share/java/zookeeper.jar}
ZNODE=/rzbench/reads
NAME=reads

case $LOAD in mix | redis-benchmark) ;; *) die "READS_LOAD must be mix or redis-benchmark" ;; esac
for t in $TARGETS; do
    case $t in
        direct | rzproxy-replicas | rzproxy-master) ;;
        *) die "unknown reads target '$t' (known: rzproxy-replicas rzproxy-master direct)" ;;
    esac
done

setup_common
need redis-server redis-cli redis-benchmark /usr/bin/python3 java
[ -f "$ZK_JAR" ] || install_pkgs zookeeper
"$PY" -c 'import kazoo' 2>/dev/null || install_pkgs python3-kazoo
[ -f "$ZK_JAR" ] || die "no ZooKeeper jar at $ZK_JAR (Debian package zookeeper; or set BENCH_ZK_JAR)"
"$PY" -c 'import kazoo' 2>/dev/null || die "$PY cannot import kazoo (Debian package python3-kazoo)"
case " $TARGETS " in *" rzproxy-"*) build_rzproxy ;; esac
if [ "$LOAD" = mix ] && { [ ! -x "$MIXLOAD" ] || [ "$BENCH_DIR/mixload.c" -nt "$MIXLOAD" ]; }; then
    need gcc
    gcc -O2 -g -Wall -Wextra -std=gnu11 -o "$MIXLOAD" "$BENCH_DIR/mixload.c" ||
        die "building contrib/bench/mixload failed"
fi

CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$RESULTS/$NAME-raw.csv
SUMMARY=$RESULTS/$NAME.csv
TABLE=$RESULTS/$NAME.txt
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: $(nproc) cpus, load average $LOAD_START at start"
log "bench: rzproxy $("$RZPROXY" --version 2>&1 | head -1) ($RZPROXY), git $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')"

# ------------------------------------------------------------------ servers

# start_server NAME ARGS...: a redis-server on a free port -> SPORT, SPID
start_server() {
    local name=$1
    shift
    SPORT=$(free_port)
    mkdir -p "$WORK/$name"
    spawn "$name" "$WORK/$name.log" redis-server --port "$SPORT" --bind "$LOCALHOST" \
        --save "" --appendonly no --maxclients 30000 --dir "$WORK/$name" "$@"
    SPID=$SPAWNED_PID
    wait_up "$name" "$SPID" "$SPORT" "$WORK/$name.log"
}

# info_field PORT SECTION FIELD: one field of a redis-server's INFO
info_field() {
    timeout 10 redis-cli -h "$LOCALHOST" -p "$1" info "$2" 2>/dev/null |
        tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'
}

# The master answers replicas at once (no 5 s wait for more replicas to
# share a diskless transfer): its data set is empty anyway.
start_server master --repl-diskless-sync-delay 0
M_PORT=$SPORT M_PID=$SPID
start_server replica1 --replicaof "$LOCALHOST" "$M_PORT" --replica-read-only yes
R1_PORT=$SPORT R1_PID=$SPID
start_server replica2 --replicaof "$LOCALHOST" "$M_PORT" --replica-read-only yes
R2_PORT=$SPORT R2_PID=$SPID
for p in "$R1_PORT" "$R2_PORT"; do
    for _ in $(seq 300); do
        [ "$(info_field "$p" replication master_link_status)" = up ] && break
        sleep 0.1
    done
    [ "$(info_field "$p" replication master_link_status)" = up ] ||
        die "replica on port $p: link to the master not up after 30 s (logs: $WORK/replica*.log)"
done
# A replica that just loaded its first copy gets the stream once the master
# has its REPLCONF ACK (up to a second): wait until a write reaches both.
timeout 10 redis-cli -h "$LOCALHOST" -p "$M_PORT" set bench:reads:sync 1 >/dev/null
for p in "$R1_PORT" "$R2_PORT"; do
    for _ in $(seq 200); do
        [ "$(timeout 10 redis-cli -h "$LOCALHOST" -p "$p" get bench:reads:sync 2>/dev/null)" = 1 ] && break
        sleep 0.1
    done
    [ "$(timeout 10 redis-cli -h "$LOCALHOST" -p "$p" get bench:reads:sync 2>/dev/null)" = 1 ] ||
        die "replica on port $p: a write to the master did not arrive within 20 s"
done
log "bench: master $M_PORT (pid $M_PID), replicas $R1_PORT (pid $R1_PID) and $R2_PORT (pid $R2_PID), both streaming"

# ------------------------------------------------------------------ zookeeper

# Standalone, as tests/integration/zkutil.py starts it: a small JVM, one znode.
ZK_PORT=$(free_port)
mkdir -p "$WORK/zk/data"
printf '%s\n' "tickTime=200" "dataDir=$WORK/zk/data" "clientPort=$ZK_PORT" \
    "clientPortAddress=$LOCALHOST" "admin.enableServer=false" "4lw.commands.whitelist=*" \
    "maxClientCnxns=0" "autopurge.purgeInterval=0" >"$WORK/zk/zoo.cfg"
spawn zookeeper "$WORK/zookeeper.log" java -Xms32m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.net.preferIPv4Stack=true -Dzookeeper.admin.enableServer=false \
    -cp "/etc/zookeeper/conf:$ZK_JAR:/usr/share/java/slf4j-simple.jar" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$WORK/zk/zoo.cfg"
ZK_PID=$SPAWNED_PID
wait_up zookeeper "$ZK_PID" "$ZK_PORT" "$WORK/zookeeper.log"
ZNODE_DATA="{\"master\":\"$LOCALHOST:$M_PORT\",\"slaves\":[\"$LOCALHOST:$R1_PORT\",\"$LOCALHOST:$R2_PORT\"]}"
timeout 30 "$PY" - "$LOCALHOST:$ZK_PORT" "$ZNODE" "$ZNODE_DATA" >"$WORK/znode.log" 2>&1 <<'EOF' ||
import sys
from kazoo.client import KazooClient
hosts, path, data = sys.argv[1:4]
kz = KazooClient(hosts=hosts, timeout=10.0)
kz.start(timeout=20)
kz.ensure_path(path.rsplit("/", 1)[0] or "/")
if kz.exists(path):
    kz.set(path, data.encode())
else:
    kz.create(path, data.encode())
print(kz.get(path)[0].decode())
kz.stop()
kz.close()
EOF
    { cat "$WORK/znode.log" >&2; die "writing the znode $ZNODE with kazoo failed"; }
log "bench: zookeeper $LOCALHOST:$ZK_PORT (pid $ZK_PID), $ZNODE = $ZNODE_DATA"

# ------------------------------------------------------------------ proxies

# proxy_info PORT: PROXY INFO asked on a pool's listener (it describes that pool)
proxy_info() { timeout 5 redis-cli -h "$LOCALHOST" -p "$1" proxy info 2>/dev/null | tr -d '\r'; }

# replica_states PORT: "addr=state addr=state" from PROXY INFO's replicaN lines
replica_states() {
    proxy_info "$1" | awk -F'[:,]' '$1 ~ /^replica[0-9]+$/ {
        addr = ""; st = ""
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^addr=/) { addr = substr($i, 6); if ($(i + 1) ~ /^[0-9]+$/) addr = addr ":" $(i + 1) }
            if ($i ~ /^state=/) st = substr($i, 7)
        }
        printf "%s%s=%s", n++ ? " " : "", addr, st }'
}

# wait_replicas_ok NAME PORT: both replicas state=ok in PROXY INFO (30 s)
wait_replicas_ok() {
    local want got=""
    want=$(printf '%s\n' "$LOCALHOST:$R1_PORT=ok" "$LOCALHOST:$R2_PORT=ok" | sort | tr '\n' ' ')
    want=${want% }
    for _ in $(seq 300); do
        got=$(replica_states "$2" | tr ' ' '\n' | sort | tr '\n' ' ')
        [ "${got% }" = "$want" ] && return 0
        sleep 0.1
    done
    proxy_info "$2" >&2 || true
    die "target '$1': PROXY INFO does not say both replicas are state=ok after 30 s (got '${got% }', want '$want')"
}

declare -A PORT PID
start_reads_proxy() {                 # start_reads_proxy NAME master|replicas -> TPORT, TPID
    local name=$1 from=$2 conf=$WORK/$1.conf
    TPORT=$(free_port)
    cat >"$conf" <<EOF
# written by contrib/bench/reads.sh
loglevel notice
maxclients ${BENCH_MAXCLIENTS:-20000}
zookeeper $LOCALHOST:$ZK_PORT
zk-session-timeout 4000
pool $name
    listen $LOCALHOST:$TPORT
    znode $ZNODE
    znode-format json
    read-from $from
    backend-sharing yes
    backend-connections ${BENCH_RZ_BACKENDS:-2}
EOF
    if [ -n "${BENCH_RZ_CONF_EXTRA:-}" ]; then
        printf '%s\n' "$BENCH_RZ_CONF_EXTRA" | sed 's/^[[:space:]]*/    /' >>"$conf"
    fi
    "$RZPROXY" --test-conf "$conf" >"$WORK/$name.test-conf" 2>&1 ||
        { cat "$WORK/$name.test-conf" >&2; die "target '$name': bad conf $conf"; }
    spawn "$name" "$WORK/$name.log" "$RZPROXY" "$conf"
    TPID=$SPAWNED_PID
    wait_up "$name" "$TPID" "$TPORT" "$WORK/$name.log"
    local st=""
    for _ in $(seq 300); do
        st=$(proxy_info "$TPORT" | awk -F: '$1 == "state" { print $2; exit }')
        [ "$st" = READY ] && break
        sleep 0.1
    done
    [ "$st" = READY ] || { proxy_info "$TPORT" >&2 || true; die "target '$name': pool not READY after 30 s (state '$st', log $WORK/$name.log)"; }
}

case $LOAD in mix | redis-benchmark) ;; *) die "READS_LOAD must be mix or redis-benchmark" ;; esac
for t in $TARGETS; do
    case $t in
        direct) PORT[$t]=$M_PORT PID[$t]=$M_PID ;;
        rzproxy-replicas) start_reads_proxy "$t" replicas; PORT[$t]=$TPORT PID[$t]=$TPID ;;
        rzproxy-master) start_reads_proxy "$t" master; PORT[$t]=$TPORT PID[$t]=$TPID ;;
    esac
    if [ "$t" = rzproxy-replicas ]; then
        wait_replicas_ok "$t" "${PORT[$t]}"
        # which commands are reads is asked of the master once (COMMAND)
        for _ in $(seq 100); do
            n=$(proxy_info "${PORT[$t]}" | awk -F: '$1 == "readonly_commands" { print $2; exit }')
            [ "${n:-0}" -gt 50 ] && break
            sleep 0.1
        done
        [ "${n:-0}" -gt 50 ] || die "target '$t': readonly_commands is '${n:-}' after 10 s (the master's COMMAND reply not read?)"
    fi
    # SET through the target, then GET until it shows (a GET may be answered
    # by a replica that has not received the SET yet)
    got=$(timeout 10 redis-cli -h "$LOCALHOST" -p "${PORT[$t]}" set "bench:probe:$t" ok 2>&1) || true
    [ "$got" = OK ] || die "target '$t' (port ${PORT[$t]}) does not forward SET: got '$got'"
    for _ in $(seq 50); do
        got=$(timeout 10 redis-cli -h "$LOCALHOST" -p "${PORT[$t]}" get "bench:probe:$t" 2>&1) || true
        [ "$got" = ok ] && break
        sleep 0.1
    done
    [ "$got" = ok ] || die "target '$t' (port ${PORT[$t]}) does not forward GET: got '$got'"
    log "bench: $t up on port ${PORT[$t]} (pid ${PID[$t]})"
done

# ------------------------------------------------------------------ runs

# calls PORT: "<GET calls> <SET calls>" from a redis-server's INFO commandstats
calls() {
    timeout 10 redis-cli -h "$LOCALHOST" -p "$1" info commandstats 2>/dev/null | tr -d '\r' |
        awk -F'[:=,]' '$1 == "cmdstat_get" { g = $3 } $1 == "cmdstat_set" { s = $3 }
                       END { print g + 0, s + 0 }'
}

# snapshot PROXY_PID BENCH_PID...: one line, "time cpu(master r1 r2 proxy
# bench) get/set(master r1 r2)"; cpu in ticks, time in ns
snapshot() {
    local ppid=$1 now pc bc=0 b
    shift
    now=$(date +%s%N)
    if [ "$ppid" = "$M_PID" ]; then pc=0; else pc=$(cpu_ticks "$ppid"); fi
    for b in "$@"; do bc=$((bc + $(cpu_ticks "$b"))); done
    echo "$now $(cpu_ticks "$M_PID") $(cpu_ticks "$R1_PID") $(cpu_ticks "$R2_PID") $pc $bc" \
        "$(calls "$M_PORT") $(calls "$R1_PORT") $(calls "$R2_PORT")"
}

echo "rep,target,seconds,get_rps,set_rps,total_rps,set_pct,get_master,get_replica1,get_replica2,set_master,cpu_master_s,cpu_replica1_s,cpu_replica2_s,cpu_proxy_s,cpu_bench_s,proxy_us_per_req,servers_us_per_req,replicas_end,loadavg,get_p50_us,get_p99_us,set_p50_us,set_p99_us,client_errors" >"$RAW"
read -ra target_list <<<"$TARGETS"
ntargets=${#target_list[@]}
nruns=$((ntargets * REPEATS))
run=0
t0=$(date +%s)
if [ "$LOAD" = mix ]; then
    LOAD_DESC="mixload: $CLIENTS clients, each 1 SET in $EVERY commands, the rest GET"
else
    LOAD_DESC="redis-benchmark -c $GET_CLIENTS -t get and -c $SET_CLIENTS -t set at once"
fi
log "bench: $nruns runs: $LOAD_DESC, P=$PIPELINE, ${SIZE}-byte values, ${WARMUP} s warm-up, ${WINDOW} s measured"
for ((rep = 1; rep <= REPEATS; rep++)); do
    for ((k = 0; k < ntargets; k++)); do
        t=${target_list[(k + rep - 1) % ntargets]}
        run=$((run + 1))
        [ -t 2 ] && printf '\rbench: run %d/%d  rep %d  %-18s' "$run" "$nruns" "$rep" "$t" >&2
        if [ "$t" = rzproxy-replicas ]; then wait_replicas_ok "$t" "${PORT[$t]}"; fi
        BPIDS=()
        if [ "$LOAD" = mix ]; then
            # it measures its own window (the same length, from the same
            # start: latency), then goes on loading, unmeasured, for up to
            # 20 s more, until stopped after the servers' window
            spawn mixload "$WORK/mixload.out" "$MIXLOAD" "${PORT[$t]}" "$CLIENTS" "$PIPELINE" "$EVERY" \
                "$SIZE" "$WARMUP" "$WINDOW" 20
            BPIDS+=("$SPAWNED_PID")
        else
            # both loads at once, no end of their own (-n 10^9): stopped by pid
            # after the window
            spawn bench-get "$WORK/bench-get.log" redis-benchmark -h "$LOCALHOST" -p "${PORT[$t]}" \
                -c "$GET_CLIENTS" -P "$PIPELINE" -d "$SIZE" -n 1000000000 -t get
            BPIDS+=("$SPAWNED_PID")
            spawn bench-set "$WORK/bench-set.log" redis-benchmark -h "$LOCALHOST" -p "${PORT[$t]}" \
                -c "$SET_CLIENTS" -P "$PIPELINE" -d "$SIZE" -n 1000000000 -t set
            BPIDS+=("$SPAWNED_PID")
        fi
        sleep "$WARMUP"
        s0=$(snapshot "${PID[$t]}" "${BPIDS[@]}")
        sleep "$WINDOW"
        for b in "${BPIDS[@]}"; do
            kill -0 "$b" 2>/dev/null || {
                log ""; tail -c 600 "$WORK/mixload.out" "$WORK/bench-get.log" "$WORK/bench-set.log" >&2 2>/dev/null
                die "the load against '$t' ($LOAD) ended before the window closed"; }
        done
        s1=$(snapshot "${PID[$t]}" "${BPIDS[@]}")
        states=""
        if [ "$t" = rzproxy-replicas ]; then states=$(replica_states "${PORT[$t]}"); fi
        for b in "${BPIDS[@]}"; do stop_pid "$b"; unspawn "$b"; done
        kill -0 "${PID[$t]}" 2>/dev/null || die "target '$t' died (log: $WORK/$t.log)"
        client=""
        if [ "$LOAD" = mix ]; then
            client=$(grep '^gets=' "$WORK/mixload.out" | tail -1) ||
                { log ""; cat "$WORK/mixload.out" >&2; die "mixload against '$t' printed no result"; }
            if grep -q 'error reply' "$WORK/mixload.out"; then
                log ""; log "bench: $t: $(grep -m1 'error reply' "$WORK/mixload.out")"
            fi
        fi
        load=$(cut -d' ' -f1 /proc/loadavg)
        awk -v OFS=, -v rep="$rep" -v t="$t" -v hz="$CLK_TCK" -v states="${states// /;}" -v load="$load" \
            -v proxy="$([ "${PID[$t]}" = "$M_PID" ] && echo 0 || echo 1)" -v a="$s0" -v b="$s1" \
            -v client="$client" '
            BEGIN {
                # mixload: latency percentiles (us) and error replies, client side
                n = split(client, kv, " ")
                for (i = 1; i <= n; i++) { split(kv[i], f, "="); cl[f[1]] = f[2] }
                split(a, x, " "); split(b, y, " ")
                secs = (y[1] - x[1]) / 1e9
                # 2-6: cpu ticks of master, r1, r2, proxy, bench; 7-12: get/set calls of master, r1, r2
                for (i = 2; i <= 12; i++) d[i] = y[i] - x[i]
                get = d[7] + d[9] + d[11]; set = d[8]; n = get + set
                if (n <= 0) exit 1
                srv = (d[2] + d[3] + d[4] + d[5]) / hz
                print rep, t, sprintf("%.3f", secs), sprintf("%.0f", get / secs), sprintf("%.0f", set / secs),
                      sprintf("%.0f", n / secs), sprintf("%.1f", set * 100 / n),
                      d[7], d[9], d[11], d[8],
                      sprintf("%.2f", d[2] / hz), sprintf("%.2f", d[3] / hz), sprintf("%.2f", d[4] / hz),
                      proxy ? sprintf("%.2f", d[5] / hz) : "", sprintf("%.2f", d[6] / hz),
                      proxy ? sprintf("%.2f", d[5] / hz * 1e6 / n) : "", sprintf("%.2f", srv * 1e6 / n),
                      states, load, ("get_p50_us" in cl) ? cl["get_p50_us"] : "",
                      ("get_p99_us" in cl) ? cl["get_p99_us"] : "", ("set_p50_us" in cl) ? cl["set_p50_us"] : "",
                      ("set_p99_us" in cl) ? cl["set_p99_us"] : "", ("errors" in cl) ? cl["errors"] : ""
            }' >>"$RAW" || { log ""; die "no GET or SET counted during the window against '$t'"; }
    done
done
[ -t 2 ] && log ""
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: $run runs in $(($(date +%s) - t0)) s, load average $LOAD_END at end"

# ------------------------------------------------------------------ medians

# Per target, the median of each column over the repeats (AWK_MEDIAN,
# lib.sh); the CPU shares are those of the median CPU
# seconds, the GET shares those of the median GET counts. client_errors is
# the sum over the repeats.
awk -F, -v OFS=, -v targets="$TARGETS" "$AWK_MEDIAN"'
function med(t, i) { return ((t, i) in col) ? median(col[t, i]) : "" }
NR > 1 {
    t = $2; nrep[t]++
    for (i = 3; i <= 24; i++) if (i != 19 && i != 20 && $i != "") col[t, i] = col[t, i] " " $i
    if ($19 != "") { n = split($19, st, ";"); for (i = 1; i <= n; i++) if (st[i] !~ /=ok$/) notok[t]++ }
    errs[t] += $25
}
END {
    print "target,repeats,seconds,get_rps,set_rps,total_rps,set_pct,rps_spread_pct,get_share_master_pct,get_share_replica1_pct,get_share_replica2_pct,cpu_master_s,cpu_replica1_s,cpu_replica2_s,cpu_proxy_s,share_master_pct,share_replica1_pct,share_replica2_pct,share_proxy_pct,proxy_us_per_req,servers_us_per_req,cpu_bench_s,replica_not_ok_at_end,x_rzproxy_master,get_p50_us,get_p99_us,set_p50_us,set_p99_us,client_errors"
    nt = split(targets, T, " ")
    base = ("rzproxy-master", 6) in col ? median(col["rzproxy-master", 6]) : 0
    pct = "%.1f"
    for (k = 1; k <= nt; k++) {
        t = T[k]
        if (!(t in nrep)) continue
        tot = median(col[t, 6]); spread = tot > 0 ? sprintf("%.0f", (hi - lo) * 100 / tot) : ""
        gm = median(col[t, 8]); g1 = median(col[t, 9]); g2 = median(col[t, 10]); g = gm + g1 + g2
        cm = median(col[t, 12]); c1 = median(col[t, 13]); c2 = median(col[t, 14])
        cp = ((t, 15) in col) ? median(col[t, 15]) : 0
        cs = cm + c1 + c2 + cp
        pu = med(t, 17)
        print t, nrep[t], sprintf("%.2f", med(t, 3)), sprintf("%.0f", med(t, 4)), sprintf("%.0f", med(t, 5)),
              sprintf("%.0f", tot), sprintf("%.1f", med(t, 7)), spread,
              g ? sprintf(pct, gm * 100 / g) : "", g ? sprintf(pct, g1 * 100 / g) : "", g ? sprintf(pct, g2 * 100 / g) : "",
              sprintf("%.2f", cm), sprintf("%.2f", c1), sprintf("%.2f", c2), ((t, 15) in col) ? sprintf("%.2f", cp) : "",
              cs ? sprintf(pct, cm * 100 / cs) : "", cs ? sprintf(pct, c1 * 100 / cs) : "",
              cs ? sprintf(pct, c2 * 100 / cs) : "", (cs && ((t, 15) in col)) ? sprintf(pct, cp * 100 / cs) : "",
              pu == "" ? "" : sprintf("%.2f", pu), sprintf("%.2f", med(t, 18)), sprintf("%.2f", med(t, 16)),
              notok[t] + 0, base ? sprintf("%.3f", tot / base) : "",
              med(t, 21), med(t, 22), med(t, 23), med(t, 24), errs[t] + 0
    }
}' "$RAW" >"$SUMMARY"

# ------------------------------------------------------------------ table

{
    echo "$STAMP  $(nproc) cpus  load average $LOAD_START at start, $LOAD_END at end"
    echo "rzproxy $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?') ($RZPROXY), medians of $REPEATS repeat(s)"
    echo "master, replica1, replica2: redis-server on 127.0.0.1 (replicaof, replica-read-only yes); znode $ZNODE"
    echo "  = $ZNODE_DATA"
    echo "load: $LOAD_DESC, P=$PIPELINE, ${SIZE}-byte values, one key;"
    echo "      ${WARMUP} s warm-up, then a ${WINDOW} s window: requests counted by the servers (INFO commandstats), CPU from /proc"
    echo
    echo "throughput: GETs served by master + replicas, SETs by the master; spread: (max - min) / median of total rps"
    echo "x master: total rps / total rps of rzproxy-master"
    echo
    awk -F, 'NR == 1 { printf "%-17s %9s %8s %9s %6s %7s %8s   %-8s %8s %8s %8s\n", "target", "get rps", "set rps",
                       "total rps", "set %", "spread", "x master", "GETs on:", "master", "replica1", "replica2"; next }
             { printf "%-17s %9s %8s %9s %6s %6s%% %8s   %-8s %7s%% %7s%% %7s%%\n", $1, $4, $5, $6, $7, $8,
                      $24 == "" ? "-" : sprintf("%.2f", $24), "", $9, $10, $11 }' "$SUMMARY"
    echo
    echo "CPU during the window: user+sys seconds (/proc/PID/stat) and share of the four processes' sum"
    echo "proxy us: the proxy's CPU per request (GET or SET); 4 procs us: the four's CPU per request;"
    echo "load s: CPU of the load generator(s), not in the sum"
    echo
    awk -F, 'NR == 1 { printf "%-17s %14s %14s %14s %14s %9s %11s %7s\n", "target", "master", "replica1", "replica2",
                       "proxy", "proxy us", "4 procs us", "load s"; next }
             function cell(s, p) { return s == "" ? "-" : sprintf("%5.2f s %5.1f%%", s, p) }
             { printf "%-17s %14s %14s %14s %14s %9s %11s %7s\n", $1, cell($12, $16), cell($13, $17), cell($14, $18),
                      cell($15, $19), $20 == "" ? "-" : $20, $21, $22 }' "$SUMMARY"
    if [ "$LOAD" = mix ]; then
        echo
        echo "client-side latency (mixload: from a command's write to its reply, us; medians over the repeats):"
        echo
        awk -F, 'NR == 1 { printf "%-17s %8s %8s %8s %8s %7s\n", "target", "GET p50", "GET p99", "SET p50", "SET p99", "errors"; next }
                 { printf "%-17s %8s %8s %8s %8s %7s\n", $1, $25, $26, $27, $28, $29 }' "$SUMMARY"
    fi
    awk -F, 'NR > 1 && $23 > 0 { printf "\n%s: a replica was not state=ok at the end of %d run(s) (see %s)\n", $1, $23, raw }' \
        raw="$RAW" "$SUMMARY"
} | tee "$TABLE"

log "bench: wrote $SUMMARY, $RAW and $TABLE"
