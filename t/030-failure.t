# Fail closed: a record whose checks did not run is never deleted.
use Test::SafeDelete;

our $CONF = <<'_EOC_';
    safedelete_actor $http_x_user_id;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_upstream_timeout 500ms;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /open/ {
        safedelete          on;
        safedelete_fail     open;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_upstream_timeout 500ms;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

run_tests();

__DATA__

=== TEST 1: Redis stopped: 503 and the record untouched; restarted: works
--- config eval: $::CONF
--- flow
redis_stop();
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($r->{status}, 503, 'refused while Redis is down');
is($r->{json}{code}, 'STORE_UNAVAILABLE', 'code');
like($r->{headers}{'content-type'}, qr{^application/problem\+json}, 'problem document');
ok(!grep({ $_->{method} ne 'GET' } @{ backend_requests() }), 'nothing but reads reached the backend');
is(backend_get('/users/7')->{json}{status}, 'active', 'record untouched');

my $u = http('POST', '/_safedelete/undo/AAAAAAAAAAAAAAAAAAAAAA');
is($u->{status}, 503, 'undo refused while Redis is down');

redis_start();
my $ok = wait_for(sub {
    my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
    return $d->{status} == 200 ? $d : undef;
}, timeout => 10, interval => 0.2);
ok($ok, 'works again after Redis came back, without a reload');
is(backend_get('/users/7')->{json}{status}, 'deleted', 'now deleted');
like($ok->{headers}{'safedelete-undo'} // '', qr/^[A-Za-z0-9_-]{22}$/, 'with an undo token');
--- error_log_like
safedelete: redis (connection to "[^"]+" lost|connect to "[^"]+" failed)
redis is unavailable, DELETE of "http://127\.0\.0\.1:



=== TEST 2: a snapshot that times out refuses with 503
--- config eval: $::CONF
--- backend_faults
[{"method": "GET", "path": "/users/7", "delay_ms": 1500}]
--- request
DELETE /api/users/7
--- more_headers
X-User-Id: 7
--- error_code: 503
--- response_json
{"code": "SNAPSHOT_FAILED", "success": false}
--- no_backend_requests
PATCH
DELETE
--- backend_unchanged
--- error_log
snapshot GET "http://127.0.0.1:
timed out



=== TEST 3: a backend that is down refuses with 503
--- config
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:1/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/users/7
--- error_code: 503
--- response_json
{"code": "SNAPSHOT_FAILED"}
--- backend_unchanged
--- no_backend_requests
PATCH
DELETE



=== TEST 4: fail open forwards without undo and warns
--- config eval: $::CONF
--- flow
redis_stop();
my $r = http('DELETE', '/open/users/7', headers => { 'X-User-Id' => '7' });
is($r->{status}, 200, 'forwarded');
ok(!exists $r->{headers}{'safedelete-undo'}, 'no undo without Redis');
is(backend_get('/users/7')->{json}{status}, 'deleted', 'soft-deleted');
redis_start();
--- error_log
fail open: STORE_UNAVAILABLE



=== TEST 5: fail open also covers a snapshot timeout
--- config eval: $::CONF
--- backend_faults
[{"method": "GET", "path": "/users/8", "delay_ms": 1500, "times": 1}]
--- request
DELETE /open/users/8
--- more_headers
X-User-Id: 8
--- error_code: 200
--- backend
/users/8 {"status": "deleted"}
--- error_log
fail open: SNAPSHOT_FAILED



=== TEST 6: the backend answering 401 to the snapshot is passed on
--- config eval: $::CONF
--- backend_faults
[{"method": "GET", "path": "/users/7", "status": 401, "body": "{}"}]
--- request
DELETE /api/users/7
--- error_code: 401
--- response_json
{"code": "UPSTREAM_DENIED"}
--- backend_unchanged
--- no_backend_requests
PATCH




=== TEST 7: Redis replies of the wrong type: a clear answer and a log line
--- config eval: $::CONF
--- flow
# a key of another type where the module keeps an undo record
redis('SET', 'safedelete:undo:AAAAAAAAAAAAAAAAAAAAAA', 'not a hash');
my $u = http('POST', '/_safedelete/undo/AAAAAAAAAAAAAAAAAAAAAA');
is($u->{status}, 503, 'undo refused');
is($u->{json}{code}, 'STORE_UNAVAILABLE', 'code');
# the audit stream's key holding a string: the delete itself still works
redis('SET', 'safedelete:audit', 'not a stream');
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($d->{status}, 200, 'deleted');
my $tok = $d->{headers}{'safedelete-undo'};
my $r = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
is($r->{status}, 200, 'and undone');
--- error_log
WRONGTYPE




=== TEST 8: Redis over a unix socket, and with a password and a database
--- config
    location / { return 200 "main\n"; }
--- flow
my $dir = $ENV{TEST_NGINX_TMP_DIR};
my $sock = "$dir/redis.sock";
my $rport = 20000 + int(rand(20000));
my @kids;
for my $args (['--port', '0', '--unixsocket', $sock, '--unixsocketperm', '777'],
              ['--port', $rport, '--bind', '127.0.0.1', '--requirepass', 's3cret']) {
    my $pid = fork();
    if ($pid == 0) {
        exec 'redis-server', @$args, '--save', '', '--appendonly', 'no',
             '--dir', $dir;
        exit 1;
    }
    push @kids, $pid;
}
ok(wait_for(sub { -S $sock }), 'redis on a unix socket');
my $location = "safedelete_actor \$http_x_user_id;\n"
    . "location /api/ { safedelete on;\n"
    . "  safedelete_upstream http://127.0.0.1:$ENV{TEST_NGINX_BACKEND_PORT}/;\n"
    . "  proxy_pass http://127.0.0.1:$ENV{TEST_NGINX_BACKEND_PORT}/; }\n";

my $port = nginx_start(http_config => "safedelete_redis unix:$sock;\n",
                       no_default_redis => 1, config => $location);
my $r = wait_for(sub {
    my $x = http('DELETE', '/api/users/7', port => $port,
                 headers => { 'X-User-Id' => '7' });
    $x->{status} == 200 ? $x : undef });
ok($r, 'deleted with Redis on a unix socket');
is(`redis-cli -s $sock --raw XLEN safedelete:audit` + 0, 1, 'audited there');
nginx_stop(port => $port);

$port = nginx_start(
    http_config => "safedelete_redis redis://:s3cret\@127.0.0.1:$rport/2;\n",
    no_default_redis => 1, config => $location);
$r = wait_for(sub {
    my $x = http('DELETE', '/api/users/8', port => $port,
                 headers => { 'X-User-Id' => '8' });
    $x->{status} == 200 ? $x : undef });
ok($r, 'deleted with a password and database 2');
is(`redis-cli -p $rport -a s3cret -n 2 --no-auth-warning --raw XLEN safedelete:audit` + 0,
   1, 'audited in database 2');
nginx_stop(port => $port);

$port = nginx_start(
    http_config => "safedelete_redis redis://:wrong\@127.0.0.1:$rport;\n",
    no_default_redis => 1, config => $location);
$r = http('DELETE', '/api/users/9', port => $port, headers => { 'X-User-Id' => '9' });
is($r->{status}, 503, 'a wrong password: refused');
is(backend_get('/users/9')->{json}{status}, 'active', 'and nothing deleted');
like(error_log(port => $port), qr/refused setup|NOAUTH|WRONGPASS/, 'the log says why');
nginx_stop(port => $port);

kill 'TERM', @kids;
waitpid($_, 0) for @kids;
