# Confirmation tokens: safedelete_confirm answers a first DELETE with 428
# and a token; the same DELETE with "SafeDelete-Confirm: <token>" goes on.
# Tokens are bound to the record and the actor, expire, work once, and
# work on every gateway that shares the secret file and the Redis.
use Test::SafeDelete;
use File::Temp qw(tempdir);
use IO::Select;

# The secret must exist before nginx starts: a directory of this file.
our $SECRET_DIR = tempdir('safedelete-secret-XXXXXX', TMPDIR => 1, CLEANUP => 1);
{
    open my $fh, '>', "$SECRET_DIR/secret.key" or die "secret.key: $!";
    print {$fh} 'test-secret-0123456789abcdef0123456789abcdef';
    close $fh;
}
our $HTTP = "    safedelete_secret_file $SECRET_DIR/secret.key;\n";

our $CONF = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_confirm  on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /short/ {
        safedelete          on;
        safedelete_confirm  on;
        safedelete_confirm_ttl 2s;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /deps/ {
        safedelete          on;
        safedelete_confirm  on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" report;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" report;
        safedelete_dependency orders
            "/orders?customer_id=$safedelete_id&status=pending" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /owned/ {
        safedelete          on;
        safedelete_confirm  on;
        safedelete_owner_field author_id;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /noconfirm/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# "METHOD /path" of every request that changed something, in order
sub main::writes {
    return map { "$_->{method} " . ($_->{url} =~ s/\?.*//sr) }
           grep { $_->{method} ne 'GET' && $_->{method} ne 'HEAD' }
           @{ Test::SafeDelete::Flow::backend_requests() };
}

# The token from a 428 (or 412 EXPIRED): body member and response header
# must agree.
sub main::token_of {
    my ($r, $what) = @_;
    my $t = $r->{json}{confirm_token};
    Test::SafeDelete::Flow::ok(defined $t && !ref $t && length $t,
                               "$what: confirm_token in the body");
    Test::SafeDelete::Flow::is($r->{headers}{'safedelete-confirm'}, $t,
                               "$what: the same token in SafeDelete-Confirm");
    return $t;
}

# The token with character $pos changed so that the bytes it stands for
# change (the top bit of its 6-bit value, in either base64 alphabet).
sub main::flip {
    my ($tok, $pos) = @_;
    my $alpha = $tok =~ m{[+/]}
        ? join('', 'A' .. 'Z', 'a' .. 'z', '0' .. '9', '+', '/')
        : join('', 'A' .. 'Z', 'a' .. 'z', '0' .. '9', '-', '_');
    $pos += length $tok if $pos < 0;
    # skip separators such as '.' or '='
    $pos++ while $pos < length($tok) - 1
                 && index($alpha, substr($tok, $pos, 1)) < 0;
    my $i = index($alpha, substr($tok, $pos, 1));
    my $c = $i < 0 ? (substr($tok, $pos, 1) eq 'A' ? 'B' : 'A')
                   : substr($alpha, $i ^ 32, 1);
    substr($tok, $pos, 1) = $c;
    return $tok;
}

# Send a request on a raw socket now; read_status() reads its answer later.
sub main::send_raw {
    my ($path, %h) = @_;
    my $req = "DELETE $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n";
    return Test::SafeDelete::Flow::raw_connect_send($req);
}

sub main::read_status {
    my ($s) = @_;
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + 10;
    while (time < $deadline) {
        next unless $sel->can_read(0.5);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    my ($status) = $buf =~ m{^HTTP/1\.\d (\d{3})};
    my ($body) = $buf =~ m{\r\n\r\n(.*)\z}s;
    my $json = eval { JSON::PP::decode_json($body // '') };
    return { status => $status // 0, json => $json, raw => $buf };
}

run_tests();

__DATA__

=== TEST 1: a DELETE without SafeDelete-Confirm gets 428 and a token; nothing changes
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- request
DELETE /api/users/7
--- more_headers
X-User-Id: 7
--- error_code: 428
--- response_headers
Content-Type: application/problem+json
!SafeDelete-Undo
--- response_headers_like
SafeDelete-Confirm: ^\S{16,}$
--- response_json
{"type": "urn:safedelete:problem:confirmation-required", "title": "__ANY__",
 "status": 428, "detail": "__ANY__", "code": "CONFIRMATION_REQUIRED",
 "success": false, "error": "__ANY__",
 "confirm_token": "__ANY__", "expires_in": 60,
 "record": {"id": 7, "name": "Grace Gone", "email": "grace@example.com",
            "role": "user", "status": "active", "deleted_at": null,
            "deleted_by": null}}
--- backend_requests
GET /users/7
--- no_backend_requests
PATCH
PUT
POST
DELETE
--- backend_unchanged
--- redis
KEYS safedelete:undo:* => ^\s*$
XLEN safedelete:audit => ^1\s*$
XREVRANGE safedelete:audit + - COUNT 1 => \bdelete\.confirm_required\b
--- no_error_log
[error]



=== TEST 2: the confirmed retry deletes; the token works only once
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- flow
my $seed = backend_db();
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
problem_ok($r, 428, 'CONFIRMATION_REQUIRED', 'first DELETE');
is($r->{reason}, 'Precondition Required', '428 with its reason phrase');
my $tok = main::token_of($r, 'first DELETE');
is_deeply($r->{json}{record}, (grep { $_->{id} == 7 } @{ $seed->{users} })[0],
          'record is the snapshot');
is_deeply(backend_db(), $seed, 'nothing changed');

$r = http('DELETE', '/api/users/7',
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
is($r->{status}, 200, 'confirmed DELETE goes on');
like($r->{headers}{'safedelete-undo'} // '', qr/^[A-Za-z0-9_-]{22}$/, 'undo token');
my $u = backend_get('/users/7')->{json};
is($u->{status}, 'deleted', 'user 7 soft-deleted');
is($u->{deleted_by}, '7', 'deleted_by');

my $after = backend_db();
backend_clear_requests();
$r = http('DELETE', '/api/users/7',
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
problem_ok($r, 412, 'CONFIRMATION_USED', 'the same token again');
ok(!exists $r->{headers}{'safedelete-undo'}, 'no undo token');
is_deeply(backend_db(), $after, 'the replay changed nothing');
is_deeply([ main::writes() ], [], 'the replay sent no change');

my @ev = map { $_->{event} } @{ audit_events() };
ok(grep({ $_ eq 'delete.confirm_required' } @ev), 'delete.confirm_required audited');
ok(grep({ $_ eq 'delete.soft' } @ev), 'delete.soft audited');
--- no_error_log
[error]



=== TEST 3: forged, altered, truncated and misdirected tokens are CONFIRMATION_INVALID
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- flow
my $seed = backend_db();
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
my $tok = main::token_of($r, '428');
my $r8 = http('DELETE', '/api/users/8', headers => { 'X-User-Id' => '7' });
my $tok8 = main::token_of($r8, '428 for user 8');
isnt($tok8, $tok, 'a token per record');
my @bad = (
    [ 'a random string', '/api/users/7', '7', 'dGhpcyBpcyBub3QgYSB0b2tlbg' ],
    [ 'garbage', '/api/users/7', '7', '!!!...???' ],
    [ 'first character changed', '/api/users/7', '7', main::flip($tok, 0) ],
    [ 'a middle character changed', '/api/users/7', '7',
      main::flip($tok, int(length($tok) / 2)) ],
    [ 'last character changed', '/api/users/7', '7', main::flip($tok, -1) ],
    [ 'truncated by one', '/api/users/7', '7', substr($tok, 0, -1) ],
    [ 'truncated by half', '/api/users/7', '7', substr($tok, 0, length($tok) / 2) ],
    [ 'one character more', '/api/users/7', '7', $tok . 'A' ],
    [ 'oversized', '/api/users/7', '7', 'A' x 4000 ],
    [ "user 7's token on user 8", '/api/users/8', '7', $tok ],
    [ "user 8's token on user 7", '/api/users/7', '7', $tok8 ],
    [ 'another actor', '/api/users/7', '8', $tok ],
    [ 'an admin who did not ask', '/api/users/7', '1', $tok ],
    [ 'no actor', '/api/users/7', undef, $tok ],
    [ 'another location', '/short/users/7', '7', $tok ],
);
backend_clear_requests();
for my $c (@bad) {
    my ($what, $path, $actor, $t) = @$c;
    my %h = ('SafeDelete-Confirm' => $t);
    $h{'X-User-Id'} = $actor if defined $actor;
    $h{'X-Admin'} = '1' if defined $actor && $actor eq '1';
    my $res = http('DELETE', $path, headers => \%h);
    problem_ok($res, 412, 'CONFIRMATION_INVALID', $what);
    ok(!exists $res->{headers}{'safedelete-undo'}, "$what: no undo token");
}
is_deeply(backend_db(), $seed, 'nothing changed');
is(scalar(@{ backend_requests() }), 0,
   'a bad token is refused before the backend is asked anything');
unlike(redis('KEYS', 'safedelete:undo:*'), qr/undo/, 'no undo record');

# none of that used the real token up
$r = http('DELETE', '/api/users/7',
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
is($r->{status}, 200, 'the real token still works');
is(backend_get('/users/7')->{json}{status}, 'deleted', 'user 7 deleted');
is(backend_get('/users/8')->{json}{status}, 'active', 'user 8 untouched');



=== TEST 4: an expired token is CONFIRMATION_EXPIRED with a fresh token that works
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- flow
my $seed = backend_db();
my $r = http('DELETE', '/short/users/7', headers => { 'X-User-Id' => '7' });
problem_ok($r, 428, 'CONFIRMATION_REQUIRED', 'first DELETE');
is($r->{json}{expires_in}, 2, 'expires_in is the ttl');
my $tok = main::token_of($r, '428');
# 2 s, however the expiry is rounded to seconds
sleep 3.2;
$r = http('DELETE', '/short/users/7',
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
problem_ok($r, 412, 'CONFIRMATION_EXPIRED', 'after the ttl');
my $fresh = main::token_of($r, '412 EXPIRED');
isnt($fresh, $tok, 'a fresh token');
is_deeply(backend_db(), $seed, 'nothing changed');
is_deeply([ main::writes() ], [], 'no change reached the backend');
$r = http('DELETE', '/short/users/7',
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $fresh });
is($r->{status}, 200, 'the fresh token works');
is(backend_get('/users/7')->{json}{status}, 'deleted', 'user 7 deleted');
--- no_error_log
[error]



=== TEST 5: the confirmation shows the dependency counts
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- request
DELETE /deps/users/3
--- more_headers
X-User-Id: 3
--- error_code: 428
--- response_json
{"code": "CONFIRMATION_REQUIRED", "confirm_token": "__ANY__",
 "dependencies": {"posts": 2, "comments": 3, "orders": 0},
 "record": {"id": 3, "name": "Carol Creator"}}
--- no_backend_requests
PATCH
--- backend_unchanged
--- no_error_log
[error]



=== TEST 6: checks that refuse come before the confirmation
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- flow
my $seed = backend_db();
my $r = http('DELETE', '/deps/users/2', headers => { 'X-User-Id' => '2' });
problem_ok($r, 409, 'HAS_DEPENDENCIES', 'blocked by pending orders');
ok(!exists $r->{headers}{'safedelete-confirm'}, 'no token for a delete that cannot happen');
$r = http('DELETE', '/owned/posts/2', headers => { 'X-User-Id' => '5' });
problem_ok($r, 403, 'ACCESS_DENIED', 'not the author');
ok(!exists $r->{headers}{'safedelete-confirm'}, 'no token for another user');
$r = http('DELETE', '/api/users/999', headers => { 'X-User-Id' => '1' });
problem_ok($r, 404, 'NOT_FOUND', 'no such record');
$r = http('DELETE', '/owned/posts/2', headers => { 'X-User-Id' => '3' });
problem_ok($r, 428, 'CONFIRMATION_REQUIRED', 'the author is asked');
is_deeply(backend_db(), $seed, 'nothing changed');
--- no_error_log
[error]



=== TEST 7: two confirmations racing with one token: exactly one deletes
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- backend_faults
[{"method": "PATCH", "path": "/users/7", "delay_ms": 500}]
--- flow
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
my $tok = main::token_of($r, '428');
my @s = map { main::send_raw('/api/users/7', 'X-User-Id' => '7',
                             'SafeDelete-Confirm' => $tok) } 1 .. 2;
my @res = map { main::read_status($_) } @s;
is_deeply([ sort map { $_->{status} } @res ], [ 200, 412 ],
          'one 200 and one 412');
my ($lost) = grep { $_->{status} == 412 } @res;
is($lost && $lost->{json}{code}, 'CONFIRMATION_USED', 'the loser is told it was used');
is(scalar(grep { $_->{method} eq 'PATCH' } @{ backend_requests() }), 1,
   'one PATCH reached the backend');
--- no_error_log
[error]



=== TEST 8: gateways sharing the secret file and Redis share tokens; others do not
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- flow
my $seed = backend_db();
my $gw_b = nginx_start(http_config => $::HTTP, config => $::CONF);
my $other = "$ENV{TEST_NGINX_TMP_DIR}/other.key";
open my $fh, '>', $other or die "$other: $!";
print {$fh} 'another-secret-fedcba9876543210fedcba98765432';
close $fh;
my $c = nginx_start(http_config => "    safedelete_secret_file $other;\n",
                    config => $::CONF);

my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
my $tok = main::token_of($r, 'token from gateway A');

$r = http('DELETE', '/api/users/7', port => $c,
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
problem_ok($r, 412, 'CONFIRMATION_INVALID', 'gateway C, another secret');
is_deeply(backend_db(), $seed, 'gateway C changed nothing');

$r = http('DELETE', '/api/users/7', port => $gw_b,
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
is($r->{status}, 200, 'gateway B accepts the token of gateway A');
is(backend_get('/users/7')->{json}{status}, 'deleted', 'user 7 deleted');

my $after = backend_db();
$r = http('DELETE', '/api/users/7',
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
problem_ok($r, 412, 'CONFIRMATION_USED', 'back on gateway A');
is_deeply(backend_db(), $after, 'the replay changed nothing');

$r = http('DELETE', '/api/users/8', port => $gw_b, headers => { 'X-User-Id' => '8' });
my $tok8 = main::token_of($r, 'token from gateway B');
$r = http('DELETE', '/api/users/8',
          headers => { 'X-User-Id' => '8', 'SafeDelete-Confirm' => $tok8 });
is($r->{status}, 200, 'gateway A accepts the token of gateway B');
unlike(error_log(port => $gw_b) . error_log(), qr/\[warn\][^\n]*secret/i,
       'no warning about the secret when a file is given');
--- no_error_log
[error]



=== TEST 9: without a secret file: a warning, one key for all workers, a new one per start
--- config eval: $::CONF
--- workers: 2
--- flow
my $log = error_log();
if (open my $fh, '<', "$ENV{TEST_NGINX_TMP_DIR}/logs/stderr.log") {
    local $/;
    $log .= <$fh> // '';
}
like($log, qr/\[warn\][^\n]*safedelete[^\n]*secret/i,
     'a warning says the key is random');
# each request is a new connection; with two workers both answer some
for my $id (1 .. 10) {
    my $r = http('DELETE', "/api/categories/1", headers => { 'X-User-Id' => "u$id" });
    my $tok = $r->{json}{confirm_token} // '';
    $r = http('DELETE', "/api/posts/1", headers => { 'X-User-Id' => "u$id" });
    my $tok2 = $r->{json}{confirm_token} // '';
    $r = http('DELETE', "/api/categories/1",
              headers => { 'X-User-Id' => "u$id", 'SafeDelete-Confirm' => $tok });
    is($r->{status}, 200, "token $id accepted by whichever worker answers");
    $r = http('DELETE', "/api/posts/1",
              headers => { 'X-User-Id' => "u$id", 'SafeDelete-Confirm' => $tok2 });
    is($r->{status}, 200, "token $id b accepted by whichever worker answers");
}
# a second nginx without a secret file has a key of its own
my $d = nginx_start(config => $::CONF);
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
my $tok = $r->{json}{confirm_token} // '';
my $seed = backend_db();
$r = http('DELETE', '/api/users/7', port => $d,
          headers => { 'X-User-Id' => '7', 'SafeDelete-Confirm' => $tok });
problem_ok($r, 412, 'CONFIRMATION_INVALID', 'another start, another key');
is_deeply(backend_db(), $seed, 'nothing changed');
--- no_error_log
[error]



=== TEST 10: a token survives a delete refused by another check, and works after
--- http_config eval: $::HTTP
--- config eval: $::CONF
--- flow
# user 9 has no pending order when asked to confirm; one appears before
# the confirmation, and is gone again later
my $r = http('DELETE', '/deps/users/9', headers => { 'X-User-Id' => '9' });
problem_ok($r, 428, 'CONFIRMATION_REQUIRED', 'first DELETE');
my $tok = main::token_of($r, '428');
backend_faults([ { method => 'GET', path => '/orders', status => 200,
                   body => [ { id => 99, customer_id => 9, status => 'pending' } ] } ]);
my $seed = backend_db();
$r = http('DELETE', '/deps/users/9',
          headers => { 'X-User-Id' => '9', 'SafeDelete-Confirm' => $tok });
problem_ok($r, 409, 'HAS_DEPENDENCIES', 'confirmed, but an order is pending now');
is_deeply(backend_db(), $seed, 'nothing changed');
backend_faults([]);
$r = http('DELETE', '/deps/users/9',
          headers => { 'X-User-Id' => '9', 'SafeDelete-Confirm' => $tok });
is($r->{status}, 200, 'the same token deletes once nothing blocks');
is(backend_get('/users/9')->{json}{status}, 'deleted', 'user 9 deleted');
--- no_error_log
[error]
