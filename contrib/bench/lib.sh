# shellcheck shell=bash
# Shared by bench.sh, cpu.sh and mem.sh (sourced, not run).
#
# Starts every process on a free 127.0.0.1 port, remembers its pid, and
# stops exactly those pids (SIGTERM, then SIGKILL) on exit, error or Ctrl-C.
# Nothing here talks to an address other than 127.0.0.1.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$BENCH_DIR/../.." && pwd)
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
PY=/usr/bin/python3                   # stdlib only; not the python3 on PATH
RZPROXY=${RZPROXY:-$TOP/src/rzproxy}
RELAY=$BENCH_DIR/relay
LOCALHOST=127.0.0.1
# The ACL user every redis-server started here has, for the "modern client"
# shapes (redis-benchmark --user ... -a ...); the default user stays nopass.
ACL_USER=bench
ACL_PASS=benchpass

PIDS=()                               # every process we started, by pid
NAMES=()                              # its name, same index
WORK=""                               # scratch dir: confs, logs

log() { printf '%s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup

stop_pid() {                          # stop_pid PID [SECONDS]: SIGTERM, wait (5 s), SIGKILL
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq $((${2:-5} * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        [ -n "${PIDS[i]}" ] && stop_pid "${PIDS[i]}"
    done
    PIDS=()
    NAMES=()
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$rc" -ne 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
            log "bench: logs and confs kept in $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

setup_common() {
    trap on_exit EXIT
    trap 'log "bench: interrupted"; exit 130' INT
    trap 'log "bench: terminated"; exit 143' TERM
    mkdir -p "$RESULTS"
    WORK=$(mktemp -d /tmp/rzbench.XXXXXX)
    # 10k connections (mem.sh) and c=200 pinned need more than 1024 files
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# ---------------------------------------------------------------- deps

# need CMD... : install the Debian packages that provide missing commands
# (as root), or print what to install and fail.
need() {
    local cmd pkg missing=()
    for cmd in "$@"; do
        case $cmd in
            redis-server) pkg=redis-server ;;
            redis-benchmark | redis-cli) pkg=redis-tools ;;
            nutcracker) pkg=nutcracker ;;
            haproxy) pkg=haproxy ;;
            gnuplot) pkg=gnuplot-nox ;;
            valgrind | callgrind_annotate) pkg=valgrind ;;
            gcc | make) pkg=build-essential ;;
            autoreconf) pkg=autoconf ;;
            /usr/bin/python3) pkg=python3 ;;
            java) pkg=default-jre-headless ;;
            *) pkg=$cmd ;;
        esac
        if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "$cmd" ]; then
            case " ${missing[*]:-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    install_pkgs "${missing[@]}"
}

# install_pkgs PKG...: apt-get install them (as root), or print the line to
# run and fail.
install_pkgs() {
    local missing=("$@")
    if [ "$(id -u)" -ne 0 ]; then
        die "missing packages; install them with: sudo apt-get install -y ${missing[*]}"
    fi
    log "bench: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$WORK/apt.log" 2>&1 ||
        { apt-get update >>"$WORK/apt.log" 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$WORK/apt.log" 2>&1; } ||
        die "apt-get install ${missing[*]} failed (see $WORK/apt.log)"
}

# ---------------------------------------------------------------- builds

build_rzproxy() {
    if [ -x "$RZPROXY" ]; then
        if [ "$RZPROXY" = "$TOP/src/rzproxy" ] &&
           [ -n "$(find "$TOP/src" -name '*.[ch]' -newer "$RZPROXY" 2>/dev/null | head -1)" ]; then
            log "bench: WARNING: src/ has files newer than src/rzproxy; run 'make' for a fresh binary"
        fi
        return 0
    fi
    [ "$RZPROXY" = "$TOP/src/rzproxy" ] || die "RZPROXY=$RZPROXY is not executable"
    need gcc make autoreconf
    log "bench: building rzproxy (log: $WORK/build.log)"
    (
        cd "$TOP"
        [ -f Makefile ] || { ./autogen.sh && ./configure; }
        make -j2
    ) >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log" >&2; die "building rzproxy failed"; }
}

build_relay() {
    if [ ! -x "$RELAY" ] || [ "$BENCH_DIR/relay.c" -nt "$RELAY" ]; then
        need gcc
        gcc -O2 -g -Wall -Wextra -std=gnu11 -o "$RELAY" "$BENCH_DIR/relay.c" ||
            die "building contrib/bench/relay failed"
    fi
}

# ---------------------------------------------------------------- ports, processes

free_port() {
    "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_open PORT: something listens on it. With ss, without connecting (a
# probe connection would be work the proxy does, counted by cpu.sh).
port_open() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/$LOCALHOST/$1") 2>/dev/null
    fi
}

# unspawn PID: forget a pid that was stopped already (its slot in the cleanup
# list is blanked, so a later stop_all cannot signal a reused pid).
unspawn() {
    local i
    for i in "${!PIDS[@]}"; do
        [ "${PIDS[i]}" = "$1" ] && PIDS[i]=""
    done
    return 0
}

# spawn NAME LOGFILE CMD...: start CMD in the background, remember its pid
# in SPAWNED_PID and in the cleanup list.
spawn() {
    local name=$1 logf=$2
    shift 2
    "$@" </dev/null >"$logf" 2>&1 &
    SPAWNED_PID=$!
    PIDS+=("$SPAWNED_PID")
    NAMES+=("$name")
}

# wait_up NAME PID PORT LOGFILE: wait until PORT accepts, or fail naming NAME.
wait_up() {
    local name=$1 pid=$2 port=$3 logf=$4 i
    for i in $(seq 600); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -15 "$logf" >&2 || true
            die "target '$name' did not start: exited (log: $logf)"
        fi
        port_open "$port" && return 0
        sleep 0.05
    done
    tail -15 "$logf" >&2 || true
    die "target '$name' did not start: port $port not open after 30 s (log: $logf)"
}

# probe NAME PORT: one SET and GET through the target must round-trip.
probe() {
    local name=$1 port=$2 got cli
    # shellcheck disable=SC2207  # tls_client_args is a list of arguments
    cli=(timeout 10 redis-cli -h "$LOCALHOST" -p "$port" $(tls_client_args "$name"))
    got=$("${cli[@]}" set "bench:probe:$name" ok 2>&1) || true
    if [ "$got" = OK ]; then
        got=$("${cli[@]}" get "bench:probe:$name" 2>&1) || true
    fi
    [ "$got" = ok ] || die "target '$name' (port $port) does not forward: got '$got'"
}

# probe_modern NAME PORT DB: the same through a session that starts like a
# modern client library's (RESP3, AUTH with a user, SELECT DB).
probe_modern() {
    local name=$1 port=$2 db=$3 got cli
    # shellcheck disable=SC2207  # tls_client_args is a list of arguments
    cli=(timeout 10 redis-cli -h "$LOCALHOST" -p "$port" -3 --user "$ACL_USER" --pass "$ACL_PASS"
         -n "$db" --no-auth-warning $(tls_client_args "$name"))
    got=$("${cli[@]}" set "bench:probe:$name" modern 2>&1) || true
    if [ "$got" = OK ]; then
        got=$("${cli[@]}" get "bench:probe:$name" 2>&1) || true
    fi
    [ "$got" = modern ] ||
        die "target '$name' (port $port) does not forward a HELLO 3 + AUTH $ACL_USER + SELECT $db session: got '$got'"
}

# WRAP (an array, e.g. valgrind ...) is put in front of the command line of
# the proxies start_target starts.
WRAP=()

# ---------------------------------------------------------------- TLS

# The TLS targets: rzproxy speaking TLS to the redis-server's --tls-port
# (clients still speak plain RESP to rzproxy), and direct-tls, redis-benchmark
# itself speaking TLS to that port. Each is measured against its plain
# counterpart (tls_plain_of).
TLS_TARGETS="direct-tls rzproxy-tls rzproxy-tls-pinned"

is_tls_target() { case " $TLS_TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

tls_plain_of() {                      # tls_plain_of TARGET: its plain counterpart
    case $1 in
        direct-tls) echo direct ;;
        rzproxy-tls) echo rzproxy-shared ;;
        rzproxy-tls-pinned) echo rzproxy-pinned ;;
    esac
}

any_tls_target() {                    # any_tls_target TARGET...: one of them needs the TLS port
    local t
    for t in "$@"; do is_tls_target "$t" && return 0; done
    return 1
}

# make_pki: a throwaway PKI in $WORK/pki, made with the openssl CLI: a CA
# and a server certificate it signs for IP:127.0.0.1, EC P-256 keys, valid
# 2 days. Sets TLS_CA, TLS_CERT, TLS_KEY.
make_pki() {
    local d=$WORK/pki
    mkdir -p "$d"
    printf '%s\n' "subjectAltName=IP:$LOCALHOST" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$d/server.ext"
    {
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=rzproxy bench CA" &&
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=$LOCALHOST" &&
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
            -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.crt" &&
        openssl verify -CAfile "$d/ca.crt" "$d/server.crt"
    } >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "making the bench PKI with openssl failed"; }
    TLS_CA=$d/ca.crt TLS_CERT=$d/server.crt TLS_KEY=$d/server.key
}

# tls_client_args TARGET: what redis-cli and redis-benchmark need to reach
# TARGET (only direct-tls: the others are reached in plain RESP)
tls_client_args() {
    case $1 in
        direct-tls) echo "--tls --cacert $TLS_CA" ;;
    esac
}

# start_redis [tls] -> REDIS_PORT, REDIS_PID; with tls, the same process also
# listens with TLS on REDIS_TLS_PORT (make_pki's certificate, no client
# certificate asked for), so the plain and the TLS routes reach one server.
REDIS_TLS_PORT=""
start_redis() {
    local tlsargs=() got
    REDIS_PORT=$(free_port)
    if [ "${1:-}" = tls ]; then
        make_pki
        REDIS_TLS_PORT=$(free_port)
        tlsargs=(--tls-port "$REDIS_TLS_PORT" --tls-cert-file "$TLS_CERT" --tls-key-file "$TLS_KEY"
                 --tls-ca-cert-file "$TLS_CA" --tls-auth-clients no)
    fi
    spawn redis "$WORK/redis.log" redis-server --port "$REDIS_PORT" --bind "$LOCALHOST" \
        --save "" --appendonly no --maxclients 30000 --dir "$WORK" "${tlsargs[@]}"
    REDIS_PID=$SPAWNED_PID
    wait_up redis "$REDIS_PID" "$REDIS_PORT" "$WORK/redis.log"
    if [ -n "$REDIS_TLS_PORT" ]; then
        wait_up redis-tls "$REDIS_PID" "$REDIS_TLS_PORT" "$WORK/redis.log"
        got=$(timeout 10 redis-cli -h "$LOCALHOST" -p "$REDIS_TLS_PORT" --tls --cacert "$TLS_CA" ping 2>&1) || true
        [ "$got" = PONG ] ||
            die "redis-server: no PONG on its TLS port $REDIS_TLS_PORT: '$got' (built without TLS? log: $WORK/redis.log)"
    fi
    got=$(timeout 10 redis-cli -h "$LOCALHOST" -p "$REDIS_PORT" \
        ACL SETUSER "$ACL_USER" on ">$ACL_PASS" '~*' '&*' +@all 2>&1) || true
    [ "$got" = OK ] || die "redis-server: ACL SETUSER $ACL_USER failed: '$got'"
}

# start_target NAME: NAME is one of rzproxy-shared rzproxy-pinned
# rzproxy-tls rzproxy-tls-pinned twemproxy haproxy relay (direct and
# direct-tls are the redis-server itself, on its plain and its TLS port; the
# TLS ones need start_redis tls). Sets TPORT and TPID.
start_target() {
    local name=$1 conf logf=$WORK/$1.log
    case $name in
        direct)
            TPORT=$REDIS_PORT TPID=$REDIS_PID
            return 0 ;;
        direct-tls)
            [ -n "$REDIS_TLS_PORT" ] || die "target '$name': the redis-server has no TLS port"
            TPORT=$REDIS_TLS_PORT TPID=$REDIS_PID
            return 0 ;;
    esac
    TPORT=$(free_port)
    conf=$WORK/$name.conf
    case $name in
        rzproxy-shared | rzproxy-pinned | rzproxy-tls | rzproxy-tls-pinned)
            local sharing=yes master=$LOCALHOST:$REDIS_PORT
            case $name in *-pinned) sharing=no ;; esac
            if is_tls_target "$name"; then
                [ -n "$REDIS_TLS_PORT" ] || die "target '$name': the redis-server has no TLS port"
                master=$LOCALHOST:$REDIS_TLS_PORT
            fi
            cat >"$conf" <<EOF
# written by contrib/bench
loglevel notice
maxclients ${BENCH_MAXCLIENTS:-20000}
pool bench
    listen $LOCALHOST:$TPORT
    master $master
    backend-sharing $sharing
    backend-connections ${BENCH_RZ_BACKENDS:-2}
EOF
            # TLS to the master: its certificate is verified against the
            # bench CA, its IP SAN against the master's host (127.0.0.1)
            if is_tls_target "$name"; then
                printf '    tls yes\n    tls-ca-cert-file %s\n' "$TLS_CA" >>"$conf"
            fi
            # extra pool lines (newline-separated), e.g. a knob of a newer build
            if [ -n "${BENCH_RZ_CONF_EXTRA:-}" ]; then
                printf '%s\n' "$BENCH_RZ_CONF_EXTRA" | sed 's/^[[:space:]]*/    /' >>"$conf"
            fi
            "$RZPROXY" --test-conf "$conf" >"$WORK/$name.test-conf" 2>&1 ||
                { cat "$WORK/$name.test-conf" >&2; die "target '$name': bad conf $conf"; }
            spawn "$name" "$logf" "${WRAP[@]}" "$RZPROXY" "$conf" ;;
        twemproxy)
            cat >"$conf" <<EOF
bench:
  listen: $LOCALHOST:$TPORT
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  preconnect: true
  server_connections: 1
  servers:
   - $LOCALHOST:$REDIS_PORT:1
EOF
            spawn "$name" "$logf" "${WRAP[@]}" nutcracker -c "$conf" \
                -s "$(free_port)" -a "$LOCALHOST" -o "$logf.nc" ;;
        haproxy)
            cat >"$conf" <<EOF
global
    maxconn ${BENCH_HAPROXY_MAXCONN:-4096}
    nbthread ${BENCH_HAPROXY_THREADS:-1}
defaults
    mode tcp
    maxconn ${BENCH_HAPROXY_MAXCONN:-4096}
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend bench
    bind $LOCALHOST:$TPORT
    default_backend redis
backend redis
    server r1 $LOCALHOST:$REDIS_PORT
EOF
            spawn "$name" "$logf" "${WRAP[@]}" haproxy -db -f "$conf" ;;
        relay)
            spawn "$name" "$logf" "${WRAP[@]}" "$RELAY" "$TPORT" "$LOCALHOST" "$REDIS_PORT" ;;
        *)
            die "unknown target '$name' (known: direct direct-tls rzproxy-shared rzproxy-pinned rzproxy-tls rzproxy-tls-pinned twemproxy haproxy relay)" ;;
    esac
    TPID=$SPAWNED_PID
    wait_up "$name" "$TPID" "$TPORT" "$logf"
}

# deps_for TARGET...: the commands those targets need
deps_for() {
    local t
    echo redis-server redis-cli redis-benchmark /usr/bin/python3
    for t in "$@"; do
        case $t in
            twemproxy) echo nutcracker ;;
            haproxy) echo haproxy ;;
            relay) echo gcc ;;
            direct-tls | rzproxy-tls | rzproxy-tls-pinned) echo openssl ;;
        esac
    done
}

# ---------------------------------------------------------------- master connections

# conns_start EXCLUDE_PID...: start conns.py on REDIS_PORT (it leaves out its
# own connection and those of the EXCLUDE_PIDs) and wait until it has taken
# its first sample. conns_stop then sets CONNS_MAX to the highest count seen.
conns_start() {
    local pids i
    pids=$(tr ' ' ',' <<<"$*")
    rm -f "$WORK/conns.out" "$WORK/conns.log"
    spawn conns "$WORK/conns.log" "$PY" "$BENCH_DIR/conns.py" "$REDIS_PORT" "$WORK/conns.out" \
        --exclude-pids "$pids" --interval "${BENCH_CONNS_INTERVAL:-0.02}" \
        --also-port "${REDIS_TLS_PORT:-0}" \
        --max-seconds "$((${RUN_TIMEOUT:-120} + 30))"
    CONNS_PID=$SPAWNED_PID
    for i in $(seq 200); do
        grep -qx ready "$WORK/conns.log" 2>/dev/null && return 0
        kill -0 "$CONNS_PID" 2>/dev/null || break
        sleep 0.025
    done
    cat "$WORK/conns.log" >&2
    die "conns.py (the master connection sampler) did not start"
}

conns_stop() {
    local i
    kill -TERM "$CONNS_PID" 2>/dev/null || true
    for i in $(seq 100); do       # it takes a last sample and writes its result
        kill -0 "$CONNS_PID" 2>/dev/null || break
        sleep 0.02
    done
    stop_pid "$CONNS_PID"
    unspawn "$CONNS_PID"
    CONNS_MAX=""
    if [ -s "$WORK/conns.out" ]; then read -r CONNS_MAX _ <"$WORK/conns.out"; fi
    [ -n "$CONNS_MAX" ] || { cat "$WORK/conns.log" >&2; die "conns.py (the master connection sampler) wrote no result"; }
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# An awk function for the summaries (prepend it to a program): the median of
# a space-separated list; sets lo and hi to its smallest and largest value
# too. mawk has no asort: insertion sort, the lists are a few repeats long.
AWK_MEDIAN='
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
'
