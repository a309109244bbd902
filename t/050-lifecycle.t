# Clients that go away, reloads under traffic, workers that exit.
use Test::SafeDelete;
use Time::HiRes qw(sleep);

our $CONF = <<'_EOC_';
    safedelete_actor $http_x_user_id;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

run_tests();

__DATA__

=== TEST 1: a client that closes during the snapshot: no crash, nothing deleted
--- config eval: $::CONF
--- backend_faults
[{"method": "GET", "path_regex": "^/users/", "delay_ms": 700}]
--- flow
for my $i (1 .. 5) {
    my $s = raw_connect_send("DELETE /api/users/7 HTTP/1.1\r\nHost: x\r\n"
                             . "X-User-Id: 7\r\n\r\n");
    sleep 0.1;
    close $s;
}
sleep 1.2;
is(backend_get('/users/7')->{json}{status}, 'active', 'record untouched');
ok(!grep({ $_->{method} eq 'PATCH' } @{ backend_requests() }), 'no PATCH was sent');
my $r = http('GET', '/api/users/7');
is($r->{status}, 200, 'workers still serve');
like(error_log(), qr/client prematurely closed connection|499/, 'the abort was noticed')
    or diag(error_log());
--- no_error_log
[alert]
[crit]
exited on signal



=== TEST 2: a client that closes while Redis is being written: no crash
--- config eval: $::CONF
--- flow
for my $i (1 .. 20) {
    my $s = raw_connect_send("DELETE /api/posts/" . (1 + $i % 6) . " HTTP/1.1\r\n"
                             . "Host: x\r\nX-User-Id: 1\r\n\r\n");
    sleep 0.002 * $i;
    close $s;
}
sleep 0.5;
is(http('GET', '/api/posts/1')->{status}, 200, 'workers still serve');
--- no_error_log
[alert]
[crit]
exited on signal



=== TEST 3: nginx -s reload in the middle of traffic fails no request
--- config eval: $::CONF
--- timeout: 20
--- flow
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my @kids;
for my $k (1 .. 3) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $bad = 0;
        for my $i (1 .. 60) {
            my $id = 1 + ($i + $k) % 10;
            my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10)
                or do { $bad++; next };
            print $s "DELETE /api/users/$id HTTP/1.1\r\nHost: x\r\n"
                   . "X-User-Id: 1\r\nConnection: close\r\n\r\n";
            my $line = <$s> // '';
            $bad++ unless $line =~ m{^HTTP/1\.1 200 };
            close $s;
        }
        POSIX::_exit($bad > 255 ? 255 : $bad);
    }
    push @kids, $pid;
}
for (1 .. 3) {
    sleep 0.3;
    ok(nginx_reload(), 'reloaded');
}
my $failed = 0;
for my $pid (@kids) {
    waitpid($pid, 0);
    $failed += $? >> 8;
}
is($failed, 0, 'no request failed across three reloads');
wait_for(sub { redis('XLEN', 'safedelete:audit') + 0 >= 180 });
is(redis('XLEN', 'safedelete:audit') + 0, 180, 'every delete audited');
--- no_error_log
[alert]
[crit]
exited on signal



=== TEST 4: a reload while a delete waits for its snapshot finishes it
--- config eval: $::CONF
--- backend_faults
[{"method": "GET", "path": "/users/8", "delay_ms": 800, "times": 1}]
--- flow
my $s = raw_connect_send("DELETE /api/users/8 HTTP/1.1\r\nHost: x\r\n"
                         . "X-User-Id: 8\r\nConnection: close\r\n\r\n");
sleep 0.2;
ok(nginx_reload(), 'reloaded while the delete waits');
local $/;
my $resp = <$s> // '';
like($resp, qr{^HTTP/1\.1 200 }, 'the old worker finished the delete');
like($resp, qr{SafeDelete-Undo: [A-Za-z0-9_-]{22}}, 'with its undo token');
is(backend_get('/users/8')->{json}{status}, 'deleted', 'deleted');
--- no_error_log
[alert]
[crit]



=== TEST 5: the undo endpoint survives a client that goes away
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '9' });
my $tok = $d->{headers}{'safedelete-undo'};
backend_faults([{ method => 'GET', path => '/users/9', delay_ms => 500, times => 1 }]);
my $s = raw_connect_send("POST /_safedelete/undo/$tok HTTP/1.1\r\nHost: x\r\n"
                         . "X-User-Id: 9\r\nContent-Length: 0\r\n\r\n");
sleep 0.1;
close $s;
sleep 0.8;
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '9' });
is($u->{status}, 200, 'the token was given back') or diag($u->{body});
is(backend_get('/users/9')->{json}{status}, 'active', 'restored');
--- no_error_log
[alert]
[crit]
