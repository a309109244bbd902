#!/bin/sh
# Instructions per proxied GET, nginx without the module against nginx
# with the module loaded and "safedelete on": callgrind counts the same
# work the same way every time, where req/s on a shared 2-core machine
# swings by 20% between two identical servers.
#
#   sh bench/get-instructions.sh [REQUESTS]

set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
module="$repo/build/ngx_http_safedelete_module.so"
n=${1:-2000}
tmp=$(mktemp -d /tmp/safedelete-cg.XXXXXX)
pids=""

cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    rm -rf "$tmp"
}
[ -n "${CG_KEEP:-}" ] || trap cleanup EXIT INT TERM

free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen=>1,LocalAddr=>"127.0.0.1:0")->sockport'
}

wait_port() {
    i=0
    while ! perl -MIO::Socket::INET -e \
            "exit !IO::Socket::INET->new('127.0.0.1:$1')" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 300 ] && { echo "port $1 did not open" >&2; exit 1; }
        sleep 0.1
    done
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$tmp" >/dev/null 2>&1 &
pids="$pids $!"
wait_port "$redis_port"

# one nginx, single process, that is also its own upstream
run() {
    name=$1 load=$2 on=$3
    port=$(free_port)
    up=$(free_port)
    mkdir -p "$tmp/$name/logs"
    cat > "$tmp/$name/nginx.conf" <<CONF
$load
daemon off;
master_process off;
worker_processes 1;
pid $tmp/$name/logs/nginx.pid;
error_log $tmp/$name/logs/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $tmp/$name/body;
    proxy_temp_path $tmp/$name/proxy;
    fastcgi_temp_path $tmp/$name/fcgi;
    uwsgi_temp_path $tmp/$name/uwsgi;
    scgi_temp_path $tmp/$name/scgi;
    $( [ -n "$load" ] && echo "safedelete_redis redis://127.0.0.1:$redis_port;" )
    upstream up { server 127.0.0.1:$up; keepalive 8; }
    server {
        listen 127.0.0.1:$up;
        location / { default_type application/json;
                     return 200 '{"id":1,"name":"x"}'; }
    }
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000000;
        location /api/ {
            $on
            proxy_pass http://up/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    valgrind --tool=callgrind --callgrind-out-file="$tmp/$name/cg.out" \
        /usr/sbin/nginx -p "$tmp/$name/" -c "$tmp/$name/nginx.conf" \
        >"$tmp/$name/valgrind.log" 2>&1 &
    vg=$!
    # run() is a command substitution, a subshell: it stops its own nginx
    trap 'kill "$vg" 2>/dev/null || true' EXIT
    wait_port "$port"
    perl -MIO::Socket::INET -e '
        my ($port, $n) = @ARGV;
        my $s = IO::Socket::INET->new("127.0.0.1:$port") or die;
        for (1 .. $n) {
            print $s "GET /api/users/1 HTTP/1.1\r\nHost: x\r\n\r\n";
            my ($len, $line) = (0);
            while (defined($line = <$s>) && $line ne "\r\n") {
                $len = $1 if $line =~ /^Content-Length: (\d+)/i;
            }
            read($s, my $body, $len);
        }' "$port" "$n"
    kill -QUIT "$vg"
    wait "$vg" || true
    trap - EXIT
    grep -h "^summary:\|^totals:" "$tmp/$name/cg.out" | head -1 | awk '{print $2}'
}

on="safedelete on; safedelete_upstream http://127.0.0.1:1/;"

# n and 3n requests each: the difference is the requests alone, without
# startup, shutdown and the first calls that bind shared libraries
plain1=$(run plain1 "" "")
module1=$(run module1 "load_module $module;" "$on")
n1=$n
n=$((n * 3))
plain3=$(run plain3 "" "")
module3=$(run module3 "load_module $module;" "$on")

# instructions spent in the module's own functions
own() {
    callgrind_annotate --threshold=100 "$tmp/$1/cg.out" 2>/dev/null \
        | grep -i safedelete | grep -E '^ *[0-9,]+ ' \
        | awk '{ gsub(",", "", $1); s += $1 } END { print s + 0 }'
}

own1=$(own module1)
own3=$(own module3)

perl -e '
    my ($n1, $n3, $p1, $p3, $m1, $m3, $o1, $o3) = @ARGV;
    my $pr = ($p3 - $p1) / ($n3 - $n1);
    my $mr = ($m3 - $m1) / ($n3 - $n1);
    printf "proxied GET on a keepalive connection, instructions per request "
         . "(callgrind, %d vs %d requests)\n", $n3, $n1;
    printf "  plain nginx                     %9.0f\n", $pr;
    printf "  module loaded, safedelete on    %9.0f\n", $mr;
    printf "  difference                      %+9.0f  (%+.3f%%)\n",
           $mr - $pr, 100 * ($mr - $pr) / $pr;
    printf "  in the module'"'"'s own functions %9.0f  (%.3f%% of a request)\n",
           ($o3 - $o1) / ($n3 - $n1), 100 * ($o3 - $o1) / ($n3 - $n1) / $pr;
    print "  (the difference beyond that is where glibc malloc finds memory\n"
        . "   with other libraries loaded: layout, not work)\n";
' "$n1" "$n" "$plain1" "$plain3" "$module1" "$module3" "$own1" "$own3"
