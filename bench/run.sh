#!/bin/sh
# make bench: wrk against nginx without and with ngx_safedelete_module.
#
#   sh bench/run.sh            (from anywhere; make bench builds first)
#
# Starts, all on 127.0.0.1 on free ports under one mktemp -d directory that
# is removed on exit:
#   redis     redis-server, no persistence
#   upstream  nginx (no module): GET /users/<id> -> a JSON record,
#             any other method on the same URI -> 200 and a small JSON body
#   plain     nginx (no module): location /api/ -> proxy_pass upstream
#   module    nginx with the module: the same location plus "safedelete on",
#             and the locations of the deps3, confirm and parallel scenarios
#   slow      (parallel scenario only) node bench/slow-upstream.js: every
#             GET answered after BENCH_SLOW_MS ms
# then runs each scenario as a pair (plain, module) with wrk and prints a
# table.  Every nginx runs one worker (the machine has 2 cores).
#
# Environment:
#   BENCH_DURATION=10     seconds per measured wrk run
#   BENCH_WARMUP=2        seconds of warm-up against each side before a pair
#                         (0: none; never longer than BENCH_DURATION)
#   BENCH_THREADS=1  BENCH_CONNECTIONS=16   wrk -t / -c
#   BENCH_ROUNDS=1        measured pairs per scenario (one warm-up); with
#                         more, req/s are averaged, p50/p99 are medians and
#                         the ratio of every round is shown
#   BENCH_ORDER=alternate plain | module | alternate: which side of a pair
#                         is measured first (alternate: plain first in the
#                         1st, 3rd, ... measured pair, module first in the
#                         others, counting rounds and scenarios together)
#   BENCH_PIN="wrk:0 upstream:0 redis:0 plain:1 module:1"   taskset each
#                         role to CPUs (default off)
#   BENCH_BUSY_LIMIT=10   warn when others used this % of the CPUs in a run
#   BENCH_SCENARIOS="get delete deps3 confirm parallel"   which scenario_*
#                         functions to run; also "aa": plain against an
#                         identical second plain nginx, the noise floor of
#                         a ratio
#   BENCH_PARALLEL_DURATION=5  BENCH_PARALLEL_CONNECTIONS=2   wrk -d / -c of
#                         the parallel scenario (a latency measurement)
#   BENCH_SLOW_MS=20      delay of the slow lookups of the parallel scenario
#   BENCH_KEEP=1          keep the temp directory (configs, logs, wrk output)
#   BENCH_MODULE, BENCH_NGINX      the .so and the nginx binary
#
# Exit status: 0 when the bench ran (missed goals and errors are reported,
# not fatal), 1 when something could not be started.
#
# A new scenario: write scenario_NAME() calling bench_pair (see those
# below) and add NAME to SCENARIOS; a new nginx or location: a conf_*
# function printing its http{} fragment, started with start_nginx.

set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
MODULE_SO=${BENCH_MODULE:-$REPO/build/ngx_http_safedelete_module.so}
NGINX=${BENCH_NGINX:-/usr/sbin/nginx}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-1}
CONNS=${BENCH_CONNECTIONS:-16}
ORDER=${BENCH_ORDER:-alternate}
SCENARIOS=${BENCH_SCENARIOS:-get delete deps3 confirm parallel}
ROUNDS=${BENCH_ROUNDS:-1}
PAR_DURATION=${BENCH_PARALLEL_DURATION:-5}
PAR_CONNS=${BENCH_PARALLEL_CONNECTIONS:-2}
SLOW_MS=${BENCH_SLOW_MS:-20}
LUA=$REPO/bench/req.lua

[ "$WARMUP" -gt "$DURATION" ] 2>/dev/null && WARMUP=$DURATION

say() { printf '%s\n' "$*"; }
log() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: FAILED: %s\n' "$*" >&2; exit 1; }

T0=$(date +%s)

# --- checks ------------------------------------------------------------------

[ -x "$NGINX" ] || die "$NGINX not found (apt-get install nginx)"
[ -f "$MODULE_SO" ] || die "$MODULE_SO not built: run make (or make bench)"
for tool in redis-server redis-cli wrk perl curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
for f in "$LUA" "$REPO/bench/confirm.lua" "$REPO/bench/slow-upstream.js"; do
    [ -f "$f" ] || die "$f is missing"
done
case " $SCENARIOS " in
    *" parallel "*)
        command -v node >/dev/null 2>&1 ||
            die "node not found (the parallel scenario's slow upstream)" ;;
esac

# --- temp dir, and everything stopped on exit -----------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/safedelete-bench.XXXXXX") ||
    die "mktemp -d failed"
RES=$WORK/results
mkdir -p "$RES" "$WORK/redis" || die "cannot create $WORK"

PIDS=            # every server we started (nginx masters, redis)
WRK_PID=         # the wrk running now

stop_pid() {     # pid: TERM, wait up to 5 s, then KILL it and its children
    pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1; i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop on TERM, killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    for k in $kids; do
        kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null
    done
    return 0
}

cleaned=
cleanup() {
    [ -n "$cleaned" ] && return
    cleaned=1
    [ -n "$WRK_PID" ] && kill -TERM "$WRK_PID" 2>/dev/null
    for pid in $PIDS; do
        stop_pid "$pid"
    done
    wait 2>/dev/null
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# nginx loads a copy: a make during the bench would otherwise rewrite the
# mapped .so under the running workers (they die on SIGILL/SIGSEGV)
cp "$MODULE_SO" "$WORK/ngx_http_safedelete_module.so" ||
    die "cannot copy $MODULE_SO"
MODULE_ID="$(ls -l --time-style=+%Y-%m-%dT%H:%M:%S "$MODULE_SO" |
    awk '{print $6}'), sha256 $(sha256sum "$MODULE_SO" | cut -c1-12)"
MODULE_SO=$WORK/ngx_http_safedelete_module.so

# --- ports ---------------------------------------------------------------------

# N free ports at once (all bound together, so they are distinct)
free_ports() {
    perl -MIO::Socket::INET -e '
        my @s = map { IO::Socket::INET->new(LocalAddr => "127.0.0.1",
                          LocalPort => 0, Proto => "tcp", Listen => 1)
                      or exit 1 } 1 .. $ARGV[0];
        print join(" ", map { $_->sockport } @s), "\n"' "$1"
}

port_open() {
    perl -MIO::Socket::INET -e '
        IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0],
                              Proto => "tcp", Timeout => 1) or exit 1' "$1"
}

wait_port() {    # name port pid log
    i=0
    while [ $i -lt 100 ]; do
        if ! kill -0 "$3" 2>/dev/null; then
            say "bench: $1 exited at start; last lines of $4:" >&2
            tail -n 20 "$4" >&2
            exit 1
        fi
        port_open "$2" && return 0
        sleep 0.1; i=$((i + 1))
    done
    say "bench: $1 is not listening on 127.0.0.1:$2 after 10 s; see $4" >&2
    tail -n 20 "$4" >&2
    exit 1
}

# shellcheck disable=SC2046
set -- $(free_ports 6)
[ $# -eq 6 ] || die "no free ports"
REDIS_PORT=$1 UP_PORT=$2 PLAIN_PORT=$3 MODULE_PORT=$4 PLAIN2_PORT=$5
SLOW_PORT=$6

# --- CPU pinning ----------------------------------------------------------------

# BENCH_PIN: "ROLE:CPUS ..." for the roles wrk, redis, upstream, plain,
# module (taskset -c syntax for CPUS), or "off"
PIN=${BENCH_PIN-off}
[ "$PIN" = off ] && PIN=
if [ -n "$PIN" ] && ! command -v taskset >/dev/null 2>&1; then
    log "taskset not found: BENCH_PIN ignored"
    PIN=
fi

pin() {      # pin ROLE: the taskset prefix for ROLE, or nothing
    for r in $PIN; do
        [ "${r%%:*}" = "$1" ] && { printf 'taskset -c %s' "${r#*:}"; return; }
    done
}

# --- nginx configs: a main file per server, an http{} fragment per role ------

USER_LINE=
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

# nginx_conf NAME LOAD_MODULE(0|1) FRAGMENT_FUNCTION
nginx_conf() {
    d=$WORK/$1
    mkdir -p "$d/conf" "$d/logs" "$d/tmp" || exit 1
    load=
    [ "$2" = 1 ] && load="load_module $MODULE_SO;"
    cat > "$d/conf/nginx.conf" <<EOF
# generated by bench/run.sh: $1
$load
$USER_LINE
worker_processes 1;
daemon off;
master_process on;
pid $d/logs/nginx.pid;
lock_file $d/logs/nginx.lock;
error_log $d/logs/error.log warn;

events { worker_connections 4096; }

http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $d/tmp/client_body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;

$($3)
}
EOF
}

# the backend: GET answers the record, every other method a small body;
# the lookups of the deps3 scenario (GET /orders?customer_id=<n>, /posts,
# /comments) answer a small JSON array at once, with X-Total-Count
conf_upstream() {
    cat <<EOF
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        default_type application/json;

        location ~ ^/users/(?<uid>[0-9]+)\$ {
            if (\$request_method = GET) {
                return 200 '{"id":\$uid,"name":"x","email":"x@example.com","status":"active"}';
            }
            return 200 '{"id":\$uid,"ok":true}';
        }

        location ~ ^/(orders|posts|comments)\$ {
            add_header X-Total-Count 2;
            return 200 '[{"id":1,"ref":"\$args"},{"id":2,"ref":"\$args"}]';
        }

        location / {
            return 404 '{"error":"not found"}';
        }
    }
EOF
}

# what plain and module share: the pool and the proxy settings
conf_pool() {
    cat <<EOF
    upstream upstream_pool {
        server 127.0.0.1:$UP_PORT;
        keepalive 32;
    }
EOF
}

PROXY_LINES='
            proxy_pass http://upstream_pool/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;'

conf_plain() {
    conf_pool
    cat <<EOF
    server {
        listen 127.0.0.1:$PLAIN_PORT backlog=4096;

        location /api/ {$PROXY_LINES
        }
    }
EOF
}

# a second plain nginx, for the A/A scenario (runs in $(...): no leak)
conf_plain2() {
    PLAIN_PORT=$PLAIN2_PORT
    conf_plain
}

# the module's locations: /api/ (get, delete), /deps/ (deps3), /confirm/
# (confirm), /slow1/ and /slow3/ (parallel: the snapshot, the PATCH and
# Redis as in /api/, plus 1 or 3 lookups on the slow node upstream)
conf_module() {
    conf_pool
    cat <<EOF
    safedelete_redis redis://127.0.0.1:$REDIS_PORT;
    safedelete_secret_file $WORK/secret.key;

    server {
        listen 127.0.0.1:$MODULE_PORT backlog=4096;

        location /api/ {
            safedelete on;
            safedelete_upstream http://127.0.0.1:$UP_PORT/;
            safedelete_actor \$http_x_user_id;
            safedelete_undo_window 30s;
$PROXY_LINES
        }

        location /deps/ {
            safedelete on;
            safedelete_upstream http://127.0.0.1:$UP_PORT/;
            safedelete_actor \$http_x_user_id;
            safedelete_undo_window 30s;
            safedelete_dependency orders "/orders?customer_id=\$safedelete_id" report;
            safedelete_dependency posts "/posts?author_id=\$safedelete_id" report;
            safedelete_dependency comments "/comments?user_id=\$safedelete_id" report;
$PROXY_LINES
        }

        location /confirm/ {
            safedelete on;
            safedelete_confirm on;
            safedelete_upstream http://127.0.0.1:$UP_PORT/;
            safedelete_actor \$http_x_user_id;
            safedelete_undo_window 30s;
$PROXY_LINES
        }

        location /slow1/ {
            safedelete on;
            safedelete_upstream http://127.0.0.1:$UP_PORT/;
            safedelete_actor \$http_x_user_id;
            safedelete_undo_window 30s;
            safedelete_dependency orders "http://127.0.0.1:$SLOW_PORT/orders?customer_id=\$safedelete_id" report;
$PROXY_LINES
        }

        location /slow3/ {
            safedelete on;
            safedelete_upstream http://127.0.0.1:$UP_PORT/;
            safedelete_actor \$http_x_user_id;
            safedelete_undo_window 30s;
            safedelete_dependency orders "http://127.0.0.1:$SLOW_PORT/orders?customer_id=\$safedelete_id" report;
            safedelete_dependency posts "http://127.0.0.1:$SLOW_PORT/posts?author_id=\$safedelete_id" report;
            safedelete_dependency comments "http://127.0.0.1:$SLOW_PORT/comments?user_id=\$safedelete_id" report;
$PROXY_LINES
        }
    }
EOF
}

# start_nginx NAME PORT: test the config, start it in the foreground of a
# background job, wait for the port
start_nginx() {
    d=$WORK/$1
    if ! "$NGINX" -t -q -p "$d/" -e "$d/logs/error.log" \
             -c "$d/conf/nginx.conf" >"$d/logs/test.log" 2>&1; then
        cat "$d/logs/test.log" >&2
        die "nginx -t failed for $1 ($d/conf/nginx.conf)"
    fi
    $(pin "$1") "$NGINX" -p "$d/" -e "$d/logs/error.log" -c "$d/conf/nginx.conf" \
        >"$d/logs/stderr.log" 2>&1 &
    pid=$!
    PIDS="$pid $PIDS"
    wait_port "$1" "$2" "$pid" "$d/logs/error.log"
    log "$1 nginx up on 127.0.0.1:$2 (pid $pid)"
}

start_redis() {
    $(pin redis) redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$WORK/redis" --daemonize no \
        >"$WORK/redis/redis.log" 2>&1 &
    pid=$!
    PIDS="$pid $PIDS"
    wait_port redis "$REDIS_PORT" "$pid" "$WORK/redis/redis.log"
    log "redis up on 127.0.0.1:$REDIS_PORT (pid $pid)"
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# the slow lookup backend of the parallel scenario (node), started when
# that scenario runs
SLOW_STARTED=
start_slow() {
    mkdir -p "$WORK/slow" || exit 1
    SLOW_MS=$SLOW_MS $(pin slow) node "$REPO/bench/slow-upstream.js" "$SLOW_PORT" \
        >"$WORK/slow/slow.log" 2>&1 &
    pid=$!
    PIDS="$pid $PIDS"
    wait_port slow "$SLOW_PORT" "$pid" "$WORK/slow/slow.log"
    log "slow upstream (node, GET after ${SLOW_MS} ms) up on 127.0.0.1:$SLOW_PORT (pid $pid)"
    SLOW_STARTED=1
}

# --- start -----------------------------------------------------------------------

log "work dir $WORK"
log "module built $MODULE_ID"
log "wrk -t$THREADS -c$CONNS -d${DURATION}s, warm-up ${WARMUP}s per side, $ROUNDS round(s), order $ORDER${PIN:+, pinned: $PIN}"

# the key of the confirmation tokens (safedelete_secret_file): 32 bytes
(umask 077 && head -c 24 /dev/urandom | base64 > "$WORK/secret.key") ||
    die "cannot write $WORK/secret.key"

nginx_conf upstream 0 conf_upstream
nginx_conf plain 0 conf_plain
nginx_conf module 1 conf_module

start_redis
start_nginx upstream "$UP_PORT"
start_nginx plain "$PLAIN_PORT"
start_nginx module "$MODULE_PORT"

PLAIN=http://127.0.0.1:$PLAIN_PORT
MODULE=http://127.0.0.1:$MODULE_PORT
MODULE_URL=$MODULE     # the real module nginx (MODULE is swapped by some scenarios)

# --- one request each way before measuring ----------------------------------------

PROBLEMS=        # lines printed loudly at the end

problem() { PROBLEMS="$PROBLEMS
  !! $*"; log "PROBLEM: $*"; }

WARNINGS=        # not errors, but the numbers deserve less trust
BUSY_LIMIT=${BENCH_BUSY_LIMIT:-10}    # % of the machine used by others

warning() { WARNINGS="$WARNINGS
  ! $*"; log "WARNING: $*"; }

probe() {    # label expected-status curl-args...
    label=$1 want=$2; shift 2
    got=$(curl -s -o "$RES/probe.body" -D "$RES/probe.head" \
              -w '%{http_code}' --max-time 10 "$@")
    if [ "$got" = "$want" ]; then
        log "probe $label: $got"
    else
        problem "probe $label answered $got, expected $want: $(head -c 300 "$RES/probe.body")"
    fi
}

probe "GET via plain" 200 "$PLAIN/api/users/1"
probe "GET via module" 200 "$MODULE/api/users/1"
probe "PATCH via plain" 200 -X PATCH -H 'Content-Type: application/json' \
    --data '{"status":"deleted"}' "$PLAIN/api/users/1"
probe "DELETE via module" 200 -X DELETE -H 'X-User-Id: 1' \
    "$MODULE/api/users/999999999"
if [ -f "$RES/probe.head" ]; then
    undo=$(grep -i '^safedelete-undo' "$RES/probe.head" | tr -d '\r' | tr '\n' ' ')
    [ -n "$undo" ] && log "probe DELETE via module: $undo"
fi
PROBE_DELETES=1

# --- CPU accounting: how much of the machine went to others during a run ------

NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# cpu_sample > FILE (never inside $(...), where times would see a fresh
# subshell): "wall busy servers children", all in seconds: uptime, busy
# time of the whole machine, CPU time of our servers (masters, workers,
# redis), CPU time of this shell's reaped children (wrk)
cpu_sample() {
    times > "$RES/times"
    stats=
    for p in $PIDS $(for m in $PIDS; do ps -o pid= --ppid "$m"; done); do
        [ -r "/proc/$p/stat" ] && stats="$stats /proc/$p/stat"
    done
    # shellcheck disable=SC2086
    awk -v hz="$HZ" '
        FILENAME == "/proc/uptime" { wall = $1; next }
        # user nice system steal; irq and softirq time (much of it our own
        # loopback traffic) is charged to no process, so it is left out
        FILENAME == "/proc/stat"   { if ($1 == "cpu") busy = $2 + $3 + $4 + $9; next }
        FILENAME ~ /times$/ {
            if (FNR == 2) {
                for (i = 1; i <= 2; i++) {
                    split($i, t, /[ms]/); kids += t[1] * 60 + t[2]
                }
            }
            next
        }
        { sub(/.*\) /, ""); srv += $12 + $13 }
        END { printf "%s %.2f %.2f %.2f\n", wall, busy / hz, srv / hz, kids }
    ' /proc/uptime /proc/stat "$RES/times" $stats
}

# others_pct "BEFORE" "AFTER": % of all CPUs used by processes not ours
others_pct() {
    awk -v a="$1" -v b="$2" -v n="$NCPU" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        wall = y[1] - x[1]
        other = (y[2] - x[2]) - (y[3] - x[3]) - (y[4] - x[4])
        if (wall <= 0) { print 0; exit }
        pct = 100 * other / (n * wall)
        printf "%.0f\n", pct < 0 ? 0 : pct
    }'
}

# --- wrk ---------------------------------------------------------------------------

RUN_NO=0
DELETES_SENT=0   # DELETE requests wrk completed against the module
CONFIRM_CHECK=   # the confirm runs whose 2xx and 428 counts do not match
: > "$RES/pairs.tsv"
: > "$RES/runs.tsv"

# run_wrk TAG SECONDS URL [METHOD PREFIX [SCRIPT]]: wrk output in
# $RES/TAG.out.  With METHOD, bench/req.lua sends METHOD PREFIX<n> with a
# new n each time; SCRIPT "confirm" runs bench/confirm.lua instead (the
# two-step delete of PREFIX<n>, METHOD is DELETE).  wrk -c and -d come
# from CONNS and the SECONDS given (the parallel scenario changes CONNS).
run_wrk() {
    tag=$1 secs=$2 url=$3
    RUN_NO=$((RUN_NO + 1))
    out=$RES/$tag.out
    # in the background, so that a signal to this shell is handled at once
    if [ $# -ge 6 ] && [ "$6" = confirm ]; then
        $(pin wrk) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency \
            -s "$REPO/bench/confirm.lua" "$url" -- "$5" $((RUN_NO * 10000000)) \
            >"$out" 2>&1 &
    elif [ $# -ge 5 ]; then
        $(pin wrk) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency \
            -s "$LUA" "$url" -- "$4" "$5" $((RUN_NO * 10000000)) >"$out" 2>&1 &
    else
        $(pin wrk) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency \
            "$url" >"$out" 2>&1 &
    fi
    WRK_PID=$!
    wait $WRK_PID
    rc=$?
    WRK_PID=
    if [ $rc -ne 0 ] || ! grep -q '^Requests/sec:' "$out"; then
        problem "wrk $tag failed (exit $rc): $(tail -n 3 "$out" | tr '\n' ' ')"
    fi
    # every DELETE the module answered leaves an audit entry (a 428 too)
    case $url in
        "$MODULE_URL"/*)
            if [ $# -ge 5 ] && [ "$4" = DELETE ]; then
                n=$(awk '/ requests in /{print $1; exit}' "$out")
                DELETES_SENT=$((DELETES_SENT + ${n:-0}))
            fi ;;
    esac
}

# parse_wrk FILE: "rps p50 p99 requests non2xx socket_errors note",
# latencies in ms.  For a bench/confirm.lua run, rps is confirmed deletes
# (2xx) per second, non2xx counts the answers that are neither 2xx nor 428
# (and 428s without a token), and note is "2xx=A/428=B"; else note is "-".
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/)  return v * 60000
            if (v ~ /s$/)  return v * 1000
            return v + 0
        }
        /^Requests\/sec:/        { rps = $2 }
        /^ +50% /                { p50 = ms($2) }
        /^ +99% /                { p99 = ms($2) }
        / requests in /          { reqs = $1; secs = $4; sub(/,$/, "", secs)
                                   secs = ms(secs) / 1000 }
        /Non-2xx or 3xx/         { non2xx = $NF }
        /Socket errors:/         { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
        /^confirm: 2xx /         { confirm = 1; ok = $3; c428 = $5
                                   other = $7; unpaired = $9 }
        END {
            note = "-"
            if (confirm) {
                rps = secs > 0 ? ok / secs : 0
                non2xx = other + unpaired
                note = "2xx=" ok "/428=" c428
            }
            printf "%.2f %.3f %.3f %d %d %d %s\n",
                   rps, p50, p99, reqs, non2xx, sock, note
        }' "$1"
}

# measure_side KEY SIDE ROUND FIRST URL [METHOD PREFIX [SCRIPT]]: one
# measured run, a line in $RES/runs.tsv
measure_side() {
    key=$1 side=$2 round=$3 first=$4; shift 4
    tag=$key.$side.$round
    log "  $key: $side ${DURATION}s"
    cpu_sample > "$RES/cpu.before"    # not in $(...): times needs this shell
    run_wrk "$tag" "$DURATION" "$@"
    cpu_sample > "$RES/cpu.after"
    others=$(others_pct "$(cat "$RES/cpu.before")" "$(cat "$RES/cpu.after")")
    if [ "$others" -ge "$BUSY_LIMIT" ]; then
        warning "$key/$side: other processes used $others% of the ${NCPU} CPUs during the run: numbers are noisy"
    fi
    # shellcheck disable=SC2046
    set -- $(parse_wrk "$RES/$tag.out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$key" "$side" "$round" "$first" "$1" "$2" "$3" "$4" "$5" "$6" \
        "$others" "$7" >> "$RES/runs.tsv"
    if [ "$5" != 0 ] || [ "$6" != 0 ]; then
        if [ "$7" = - ]; then
            problem "$key/$side: $5 non-2xx responses and $6 socket errors out of $4 requests (wrk output above)"
        else
            problem "$key/$side: $5 responses neither 2xx nor 428 (or a 428 without a token) and $6 socket errors out of $4 requests (wrk output above)"
        fi
        sed 's/^/      /' "$RES/$tag.out"
    fi
    # the two-step delete: every 428 is followed by its confirmed DELETE;
    # at the end at most one per connection is still waiting
    case $7 in
        2xx=*)
            ok=${7#2xx=}; ok=${ok%%/*}; c428=${7#*/428=}
            d=$((c428 - ok))
            if [ $ok -eq 0 ] || [ $d -lt 0 ] || [ $d -gt "$CONNS" ]; then
                problem "$key/$side: $ok confirmed deletes (2xx) for $c428 answers 428: expected about as many, at most $CONNS (connections) fewer"
                sed 's/^/      /' "$RES/$tag.out"
            else
                CONFIRM_CHECK="$CONFIRM_CHECK
  $key/$side round $round: $ok confirmed deletes (2xx) for $c428 answers 428 ($d still unconfirmed when wrk stopped)"
            fi ;;
    esac
}

PAIRS_DONE=0

# bench_pair KEY LABEL GOAL PLAIN_ARGS MODULE_ARGS [PLAIN_NAME MODULE_NAME]
# *_ARGS: "PATH", "PATH METHOD PREFIX" (through req.lua), or "PATH DELETE
# PREFIX confirm" (through confirm.lua).  GOAL: a number N (module req/s /
# plain req/s >= N), "report" (that ratio, no goal), or "p50<=N" (module
# p50 / plain p50 <= N).  *_NAME: what the two sides are called in the
# per-run table (plain, module).
bench_pair() {
    key=$1 label=$2 goal=$3 pargs=$4 margs=$5
    printf '%s\t%s\t%s\t%s\t%s\n' "$key" "$label" "$goal" \
        "${6:-plain}" "${7:-module}" >> "$RES/pairs.tsv"

    log "$label"
    # shellcheck disable=SC2086
    set -- $pargs; ppath=$1; shift; pextra="$*"
    # shellcheck disable=SC2086
    set -- $margs; mpath=$1; shift; mextra="$*"

    if [ "$WARMUP" -gt 0 ]; then
        w=$WARMUP
        [ "$w" -gt "$DURATION" ] && w=$DURATION
        log "  $key: warm-up ${w}s each side"
        # shellcheck disable=SC2086
        run_wrk "$key.warmup.plain" "$w" "$PLAIN$ppath" $pextra
        # shellcheck disable=SC2086
        run_wrk "$key.warmup.module" "$w" "$MODULE$mpath" $mextra
    fi

    round=1
    while [ $round -le "$ROUNDS" ]; do
        PAIRS_DONE=$((PAIRS_DONE + 1))
        first=plain
        case $ORDER in
            module) first=module ;;
            alternate) [ $((PAIRS_DONE % 2)) = 0 ] && first=module ;;
        esac
        [ "$ROUNDS" -gt 1 ] && log "  $key: round $round of $ROUNDS"
        for side in $first $( [ $first = plain ] && echo module || echo plain ); do
            if [ $side = plain ]; then
                # shellcheck disable=SC2086
                measure_side "$key" plain $round $first "$PLAIN$ppath" $pextra
            else
                # shellcheck disable=SC2086
                measure_side "$key" module $round $first "$MODULE$mpath" $mextra
            fi
        done
        round=$((round + 1))
    done
}

# --- scenarios -----------------------------------------------------------------------

# GET passes the module untouched: the cost of having it loaded and on
scenario_get() {
    bench_pair get "GET (module on)" 0.99 \
        "/api/users/1" \
        "/api/users/1"
}

# a soft DELETE (snapshot GET + Redis undo record and audit entry +
# the rewritten PATCH) against the PATCH it becomes, sent straight
scenario_delete() {
    bench_pair delete "soft DELETE vs PATCH" 0.5 \
        "/api/users/ PATCH /api/users/" \
        "/api/users/ DELETE /api/users/"
}

# a soft DELETE in a location with three "report" lookups (orders, posts,
# comments: GETs on the upstream, each answered at once with a JSON array
# of 2 and X-Total-Count: 2) against a plain proxied DELETE.  The spec
# sets no goal for this ratio: it is reported.
scenario_deps3() {
    probe "DELETE via module, 3 lookups" 200 -X DELETE -H 'X-User-Id: 1' \
        "$MODULE_URL/deps/users/999999998"
    PROBE_DELETES=$((PROBE_DELETES + 1))
    deps=$(rcli XREVRANGE safedelete:audit + - COUNT 1 2>&1 |
        awk 'p { print; exit } /^dependencies$/ { p = 1 }')
    log "probe DELETE via module, 3 lookups: audited dependencies $deps"
    for d in orders posts comments; do
        case $deps in
            *"\"$d\""*) ;;
            *) problem "the audit entry of the 3-lookup probe has no count of $d: $deps"
               break ;;
        esac
    done
    bench_pair deps3 "DELETE + 3 lookups" report \
        "/api/users/ DELETE /api/users/" \
        "/deps/users/ DELETE /deps/users/"
}

# the two-step delete (safedelete_confirm on): a DELETE without a token
# (428 and a token), then the same DELETE with "SafeDelete-Confirm:
# <token>" (200), through bench/confirm.lua.  The module's req/s are
# confirmed deletes (pairs) per second, against plain proxied DELETEs per
# second; the 428s are expected, not errors.  No goal in the spec.
scenario_confirm() {
    probe "DELETE via module, confirm, no token" 428 -X DELETE \
        -H 'X-User-Id: 1' "$MODULE_URL/confirm/users/999999997"
    token=$(tr -d '\r' < "$RES/probe.head" |
        awk 'tolower($1) == "safedelete-confirm:" { print $2; exit }')
    [ -n "$token" ] || problem "the 428 of the confirm probe has no SafeDelete-Confirm header"
    probe "DELETE via module, confirm, with the token" 200 -X DELETE \
        -H 'X-User-Id: 1' -H "SafeDelete-Confirm: $token" \
        "$MODULE_URL/confirm/users/999999997"
    PROBE_DELETES=$((PROBE_DELETES + 2))
    bench_pair confirm "confirm: 428 + 200" report \
        "/api/users/ DELETE /api/users/" \
        "/confirm/users/ DELETE /confirm/users/ confirm"
}

# the lookups of one request run at the same time: a soft DELETE with ONE
# slow "report" lookup (the node upstream answers after BENCH_SLOW_MS)
# against one with THREE, both through the module (snapshot, PATCH and
# Redis on the fast servers), at low concurrency.  Ratio: p50 of three
# over p50 of one: about 1 when the lookups run in parallel, about 3 (for
# the lookup part) if they ran one after the other.
scenario_parallel() {
    [ -n "$SLOW_STARTED" ] || start_slow
    probe "DELETE via module, 1 slow lookup" 200 -X DELETE \
        -H 'X-User-Id: 1' "$MODULE_URL/slow1/users/999999996"
    probe "DELETE via module, 3 slow lookups" 200 -X DELETE \
        -H 'X-User-Id: 1' "$MODULE_URL/slow3/users/999999995"
    PROBE_DELETES=$((PROBE_DELETES + 2))
    saved_plain=$PLAIN saved_duration=$DURATION saved_conns=$CONNS
    PLAIN=$MODULE_URL DURATION=$PAR_DURATION CONNS=$PAR_CONNS
    bench_pair parallel "parallel: 3 vs 1 slow" "p50<=1.5" \
        "/slow1/users/ DELETE /slow1/users/" \
        "/slow3/users/ DELETE /slow3/users/" \
        1-lookup 3-lookups
    PLAIN=$saved_plain DURATION=$saved_duration CONNS=$saved_conns
}

# A/A: plain against an identical second plain nginx, in the module's
# column.  Not a default: it shows how far two equal servers differ on
# this machine, i.e. what a GET ratio can tell at all.
scenario_aa() {
    if [ -z "$PLAIN2_STARTED" ]; then
        nginx_conf plain2 0 conf_plain2
        start_nginx plain2 "$PLAIN2_PORT"
        PLAIN2_STARTED=1
    fi
    saved=$MODULE
    MODULE=http://127.0.0.1:$PLAIN2_PORT
    bench_pair aa "A/A: plain vs plain2" 0.99 \
        "/api/users/1" \
        "/api/users/1"
    MODULE=$saved
}
PLAIN2_STARTED=

for s in $SCENARIOS; do
    "scenario_$s"
done

# --- report ------------------------------------------------------------------------

sleep 0.5    # the last audit writes of the last run

say ""
rounds_note=
[ "$ROUNDS" -gt 1 ] && rounds_note=", $ROUNDS rounds (mean req/s, median p50/p99)"
par_note=
case " $SCENARIOS " in
    *" parallel "*) par_note=" (parallel: -c$PAR_CONNS -d${PAR_DURATION}s)" ;;
esac
say "ngx_safedelete_module bench: wrk -t$THREADS -c$CONNS -d${DURATION}s$par_note$rounds_note"
say "1 nginx worker each, loopback, latencies in ms; module built $MODULE_ID"
say ""

# the table: per pair, req/s averaged over rounds, latency medians
awk -F '\t' -v rounds="$ROUNDS" '
    function median(list,    a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
                t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
            }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    FILENAME ~ /pairs.tsv$/ { keys[++npairs] = $1; label[$1] = $2; goal[$1] = $3; next }
    {
        k = $1 SUBSEP $2
        rps[k] += $5; n[k]++; p50[k] = p50[k] " " $6; p99[k] = p99[k] " " $7
        reqs[k] += $8; bad[k] += $9 + $10
        if (rounds == 1) first[$1] = $4
        if ($2 == "plain") { pr[$1, $3] = $5; pl[$1, $3] = $6 }
        else               { mr[$1, $3] = $5; ml[$1, $3] = $6 }
    }
    END {
        fmt = "%-22s %12s %8s %8s  %12s %8s %8s  %7s  %-10s %s\n"
        printf fmt, "scenario", "plain req/s", "p50", "p99",
               "module req/s", "p50", "p99", "ratio", "goal", "verdict"
        printf fmt, "--------", "-----------", "---", "---",
               "------------", "---", "---", "-----", "----", "-------"
        for (i = 1; i <= npairs; i++) {
            key = keys[i]; P = key SUBSEP "plain"; M = key SUBSEP "module"
            if (!n[P] || !n[M]) continue
            prps = rps[P] / n[P]; mrps = rps[M] / n[M]
            pp50 = median(p50[P]); mp50 = median(p50[M])
            g = goal[key]
            if (g ~ /^p50<=/) {
                # a latency ratio: the module side p50 over the plain side p50
                limit = substr(g, 6) + 0
                ratio = pp50 > 0 ? mp50 / pp50 : 0
                gtext = "p50 <= " substr(g, 6)
                verdict = ratio > 0 && ratio <= limit ? "ok" : "MISSED"
            } else if (g == "report") {
                ratio = prps > 0 ? mrps / prps : 0
                gtext = "report"
                verdict = "-"
            } else {
                ratio = prps > 0 ? mrps / prps : 0
                gtext = ">= " g
                verdict = ratio >= g ? "ok" : "MISSED"
            }
            if (bad[P] + bad[M] > 0) verdict = verdict ", ERRORS"
            if (rounds == 1) verdict = verdict " (" first[key] " first)"
            printf fmt, label[key], sprintf("%.0f", prps),
                   sprintf("%.3f", pp50), sprintf("%.3f", median(p99[P])),
                   sprintf("%.0f", mrps),
                   sprintf("%.3f", mp50), sprintf("%.3f", median(p99[M])),
                   sprintf("%.3fx", ratio), gtext, verdict
            if (rounds > 1) {
                s = ""
                for (r = 1; r <= rounds; r++) {
                    if (g ~ /^p50<=/) {
                        if (pl[key, r] > 0) s = s sprintf(" %.2f", ml[key, r] / pl[key, r])
                    } else if (pr[key, r] > 0) {
                        s = s sprintf(" %.2f", mr[key, r] / pr[key, r])
                    }
                }
                printf "%-22s   ratio per round:%s\n", "", s
            }
        }
    }' "$RES/pairs.tsv" "$RES/runs.tsv"

# what the rows that are not "the same request, plain and module" measure
ran() { awk -F '\t' -v k="$1" '$1 == k { f = 1 } END { exit !f }' "$RES/pairs.tsv"; }
legend=
if ran deps3; then
    legend=1
    say ""
    say "DELETE + 3 lookups: plain = DELETE /api/users/<n> proxied; module = a soft"
    say "  DELETE in a location with 3 report lookups (orders, posts, comments), each"
    say "  answered by the upstream at once (JSON array, X-Total-Count: 2). No goal in"
    say "  the spec: the ratio is reported."
fi
if ran confirm; then
    [ -n "$legend" ] || say ""
    legend=1
    say "confirm: 428 + 200: plain = DELETE /api/users/<n> proxied; module req/s ="
    say "  confirmed deletes per second, each a DELETE answered 428 with a token and"
    say "  the same DELETE with SafeDelete-Confirm answered 200 (bench/confirm.lua);"
    say "  module p50/p99 are per HTTP request (either step). No goal in the spec."
fi
if ran parallel; then
    [ -n "$legend" ] || say ""
    legend=1
    say "parallel: 3 vs 1 slow: both sides are soft DELETEs through the module, wrk"
    say "  -c$PAR_CONNS -d${PAR_DURATION}s: plain columns = ONE report lookup, module columns = THREE,"
    say "  each answered after ${SLOW_MS} ms by node (bench/slow-upstream.js; snapshot and"
    say "  PATCH not delayed). ratio = p50 of three / p50 of one: ~1 when the lookups"
    say "  run in parallel, ~3 (for the ${SLOW_MS} ms part) when one after the other."
fi

say ""
say "per measured run: requests, non-2xx responses, socket errors, and the share"
say "of the ${NCPU} CPUs used by processes other than the bench (others):"
awk -F '\t' '
    BEGIN {
        fmt = "  %-8s %-9s %5s %-8s %10s %9s %8s %8s  %6s%s\n"
        printf fmt, "pair", "side", "round", "first", "req/s", "requests",
               "non-2xx", "socket", "others", ""
    }
    FILENAME ~ /pairs.tsv$/ { name[$1, "plain"] = $4; name[$1, "module"] = $5; next }
    {
        side = name[$1, $2] != "" ? name[$1, $2] : $2
        fst = name[$1, $4] != "" ? name[$1, $4] : $4
        # confirm runs: req/s are confirmed deletes, non-2xx the answers
        # neither 2xx nor 428; the 2xx and 428 counts at the end
        note = $12 == "-" || $12 == "" ? "" : "  " $12
        printf fmt, $1, side, $3, fst, $5, $8, $9, $10, $11 "%", note
    }' "$RES/pairs.tsv" "$RES/runs.tsv"
if [ -n "$CONFIRM_CHECK" ]; then
    say "confirm runs (req/s: confirmed deletes; non-2xx: answers neither 2xx nor 428):$CONFIRM_CHECK"
fi

say ""
audit=$(rcli XLEN safedelete:audit 2>&1)
keys=$(rcli DBSIZE 2>&1)
say "redis: XLEN safedelete:audit = $audit, DBSIZE = $keys"
say "       (DELETEs answered to wrk: $DELETES_SENT, plus $PROBE_DELETES probe)"
case $audit in
    ''|*[!0-9]*)
        problem "redis-cli XLEN safedelete:audit failed: $audit" ;;
    *)
        if [ "$audit" -lt $((DELETES_SENT + PROBE_DELETES)) ]; then
            problem "fewer audit entries ($audit) than DELETEs answered ($((DELETES_SENT + PROBE_DELETES)))"
        fi ;;
esac

say ""
say "nginx error logs ([emerg]/[alert]/[crit]/[error], [warn]):"
for n in module plain upstream ${PLAIN2_STARTED:+plain2}; do
    f=$WORK/$n/logs/error.log
    bad=$(grep -cE '\[(emerg|alert|crit|error)\]' "$f" 2>/dev/null)
    warn=$(grep -c '\[warn\]' "$f" 2>/dev/null)
    say "  $n: ${bad:-0} error-level lines, ${warn:-0} warnings"
    if [ "${bad:-0}" -gt 0 ]; then
        grep -E '\[(emerg|alert|crit|error)\]' "$f" | head -n 5 |
            cut -c1-300 | sed 's/^/      /'
        [ $n = module ] && problem "module nginx logged $bad error-level lines"
    fi
    if [ "${warn:-0}" -gt 0 ]; then
        grep '\[warn\]' "$f" | head -n 3 | cut -c1-300 | sed 's/^/      /'
    fi
done
if [ -n "$SLOW_STARTED" ]; then
    # node prints one line at start; anything else went wrong there
    extra=$(grep -vc '^slow-upstream: ' "$WORK/slow/slow.log")
    say "  slow upstream (node): ${extra:-0} lines besides its start line"
    if [ "${extra:-0}" -gt 0 ]; then
        grep -v '^slow-upstream: ' "$WORK/slow/slow.log" | head -n 5 |
            cut -c1-300 | sed 's/^/      /'
        problem "the slow upstream (node) wrote $extra lines to its log"
    fi
fi

for pid in $PIDS; do
    kill -0 "$pid" 2>/dev/null || problem "server pid $pid died during the bench"
done

say ""
if [ -n "$PROBLEMS" ]; then
    say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    say "!! THIS RUN HAD PROBLEMS: the numbers above may be meaningless"
    say "!!$PROBLEMS"
    say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
else
    say "no errors, no non-2xx responses"
fi
if [ -n "$WARNINGS" ]; then
    say ""
    say "WARNING: the machine was busy with other work during the bench$WARNINGS"
fi
say "bench took $(( $(date +%s) - T0 )) s"
exit 0
