# A DELETE in a "safedelete on" location becomes a soft-delete PATCH.
use Test::SafeDelete;

our $SOFT = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_mode     soft;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_undo_window 30s;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /plain/ {
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

run_tests();

__DATA__

=== TEST 1: DELETE reaches the backend as a PATCH with the soft fields
--- config eval: $::SOFT
--- request
DELETE /api/users/7
--- more_headers
X-User-Id: 7
--- error_code: 200
--- response_headers_like
SafeDelete-Undo: ^[A-Za-z0-9_-]{22}$
SafeDelete-Undo-Expires: ^30$
--- response_json
{"id": 7, "status": "deleted", "deleted_by": "7", "name": "Grace Gone"}
--- backend_requests
GET /users/7
PATCH /users/7
--- no_backend_requests
DELETE
--- backend
/users/7 {"id": 7, "name": "Grace Gone", "email": "grace@example.com", "status": "deleted", "deleted_by": "7", "deleted_at": "__ANY__"}
/users/8 {"status": "active", "deleted_at": null}
--- redis
KEYS safedelete:undo:* => ^safedelete:undo:[A-Za-z0-9_-]{22}\s*$
XLEN safedelete:audit => ^1\s*$
--- no_error_log
[error]
[warn]



=== TEST 2: the PATCH body is JSON with deleted_at in ISO 8601 UTC
--- config eval: $::SOFT
--- flow
my $r = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '1' });
is($r->{status}, 200, 'soft delete answered');
my ($patch) = grep { $_->{method} eq 'PATCH' } @{ backend_requests() };
ok($patch, 'a PATCH reached the backend');
like($patch->{headers}{'content-type'}, qr{^application/json}, 'JSON content type');
my $body = decode_json($patch->{body} ne '' && !ref $patch->{body} ? $patch->{body} : encode_json($patch->{body}));
like($body->{deleted_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'deleted_at is ISO 8601 UTC');
is($body->{deleted_by}, '1', 'deleted_by is the actor');
is($body->{status}, 'deleted', 'status is deleted');
is(scalar(keys %$body), 3, 'only the default fields');
--- no_error_log
[error]



=== TEST 3: email mangling frees the unique email and keeps the original
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_soft_set email "deleted_${safedelete_id}_${safedelete_ts}@deleted.local";
        safedelete_soft_set original_email $safedelete_record_email;
        safedelete_soft_set_json flags '{"by": "$safedelete_actor", "n": 1}';
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- backend
/users/7 {"status": "deleted", "original_email": "grace@example.com", "flags": {"by": "7", "n": 1}}
--- flow
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($r->{status}, 200, 'deleted');
my $u = backend_get('/users/7')->{json};
like($u->{email}, qr/^deleted_7_\d{13}\@deleted\.local$/, 'email is freed');
--- no_error_log
[error]



=== TEST 4: non-DELETE methods are byte-identical with the module on and off
--- config eval: $::SOFT
--- flow
for my $case (['GET', '/users/3'], ['GET', '/posts?author_id=3'],
              ['GET', '/nope/1'], ['HEAD', '/users/2'],
              ['POST', '/categories', '{"name":"Zed"}'],
              ['PUT', '/categories/2', '{"name":"Newz"}'],
              ['PATCH', '/categories/3', '{"name":"Techy"}'],
              ['OPTIONS', '/users/1']) {
    my ($m, $p, $b) = @$case;
    my %o = (headers => { 'Content-Type' => 'application/json',
                          'X-User-Id' => '3' });
    $o{body} = $b if defined $b;
    backend_reset();
    my $on = http($m, "/api$p", %o);
    my $db_on = backend_db();
    backend_reset();
    my $off = http($m, "/plain$p", %o);
    my $db_off = backend_db();
    is($on->{status}, $off->{status}, "$m $p: same status");
    is($on->{body}, $off->{body}, "$m $p: same body");
    is($on->{headers}{'content-type'}, $off->{headers}{'content-type'},
       "$m $p: same content type");
    ok(!exists $on->{headers}{'safedelete-undo'}, "$m $p: no undo header");
    is_deeply($db_on, $db_off, "$m $p: same backend effect");
}
is(redis('XLEN', 'safedelete:audit') + 0, 0, 'nothing audited');
--- no_error_log
[error]



=== TEST 5: a record the backend does not have is 404 and nothing is sent
--- config eval: $::SOFT
--- request
DELETE /api/users/999
--- more_headers
X-User-Id: 1
--- error_code: 404
--- response_headers
Content-Type: application/problem+json
!SafeDelete-Undo
--- response_json
{"type": "urn:safedelete:problem:not-found", "title": "__ANY__",
 "status": 404, "detail": "__ANY__", "code": "NOT_FOUND",
 "success": false, "error": "__ANY__"}
--- backend_requests
GET /users/999
--- no_backend_requests
PATCH
DELETE
--- backend_unchanged
--- redis
KEYS safedelete:undo:* => ^\s*$
--- no_error_log
[error]



=== TEST 6: a backend 500 on the PATCH passes through, no undo, delete.failed
--- config eval: $::SOFT
--- backend_faults
[{"method": "PATCH", "path": "/users/7", "status": 500,
  "body": "{\"error\":\"boom\"}", "content_type": "application/json"}]
--- request
DELETE /api/users/7
--- more_headers
X-User-Id: 7
--- error_code: 500
--- response_headers
!SafeDelete-Undo
--- response_json
{"error": "boom"}
--- backend_requests
GET /users/7
PATCH /users/7
--- backend_unchanged
--- wait: 0.2
--- redis
KEYS safedelete:undo:* => ^\s*$
XLEN safedelete:audit => ^1\s*$
XREVRANGE safedelete:audit + - COUNT 1 => \bdelete\.failed\b.*\bstatus\s+500\b
--- error_log
backend answered 500 to the delete



=== TEST 7: a snapshot that is not JSON refuses the delete with 503
--- config eval: $::SOFT
--- backend_faults
[{"method": "GET", "path": "/users/7", "status": 200,
  "body": "<html>maintenance</html>", "content_type": "text/html"}]
--- request
DELETE /api/users/7
--- more_headers
X-User-Id: 7
--- error_code: 503
--- response_json
{"code": "SNAPSHOT_INVALID", "status": 503, "success": false}
--- no_backend_requests
PATCH
DELETE
--- backend_unchanged
--- error_log
safedelete: invalid JSON
is not a JSON object



=== TEST 8: a JSON array is no record either
--- config eval: $::SOFT
--- backend_faults
[{"method": "GET", "path": "/users/7", "status": 200,
  "body": "[1,2,3]", "content_type": "application/json"}]
--- request
DELETE /api/users/7
--- error_code: 503
--- response_json
{"code": "SNAPSHOT_INVALID"}
--- backend_unchanged



=== TEST 9: the client's Authorization reaches the snapshot GET
--- config eval: $::SOFT
--- flow
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7',
             'Authorization' => 'Bearer s3cret-token' });
is($r->{status}, 200, 'deleted');
my ($get) = grep { $_->{method} eq 'GET' } @{ backend_requests() };
is($get->{headers}{authorization}, 'Bearer s3cret-token', 'snapshot GET carries Authorization');
--- no_error_log
[error]



=== TEST 10: a soft delete over a reused keepalive upstream connection
--- http_config
    upstream backend {
        server 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        keepalive 4;
    }
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://backend/;
        proxy_http_version  1.1;
        proxy_set_header    Connection "";
        proxy_next_upstream error timeout non_idempotent;
    }
--- workers: 1
--- flow
for my $id (1 .. 3) {
    my $g = http('GET', "/api/posts/$id");
    is($g->{status}, 200, "GET post $id warms the keepalive pool");
}
for my $id (7, 8, 9) {
    my $r = http('DELETE', "/api/users/$id", headers => { 'X-User-Id' => '1' });
    is($r->{status}, 200, "DELETE user $id over a kept-alive connection");
    is(backend_get("/users/$id")->{json}{status}, 'deleted', "user $id soft-deleted");
}
--- no_error_log
[error]



=== TEST 11: PUT as soft method sends the whole record with the marks
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_soft_method PUT;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/users/7
--- more_headers
X-User-Id: 7
--- error_code: 200
--- backend_requests
GET /users/7
PUT /users/7
--- backend
/users/7 {"name": "Grace Gone", "email": "grace@example.com", "role": "user", "status": "deleted", "deleted_by": "7"}
--- no_error_log
[error]



=== TEST 12: safedelete_mode deny answers 405 and deletes nothing
--- config
    location /api/ {
        safedelete          on;
        safedelete_mode     deny;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/users/7
--- error_code: 405
--- response_json
{"code": "DELETE_NOT_ALLOWED", "status": 405}
--- no_backend_requests
GET
PATCH
DELETE
--- backend_unchanged



=== TEST 13: hard mode forwards the DELETE after keeping a backup
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_mode     hard;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- backend_requests
GET /categories/2
DELETE /categories/2
--- backend
/categories/2 404
--- flow
my $r = http('DELETE', '/api/categories/2', headers => { 'X-User-Id' => '1' });
is($r->{status}, 200, 'deleted');
like($r->{headers}{'safedelete-undo'}, qr/^[A-Za-z0-9_-]{22}$/, 'undo token');
my ($key) = split /\n/, redis('KEYS', 'safedelete:undo:*');
like(redis('HGET', $key, 'snapshot'), qr/"name":"News"/, 'backup holds the record');
is(redis('HGET', $key, 'mode'), "hard\n", 'backup is marked hard');
--- no_error_log
[error]



=== TEST 14: an admin may ask for a hard delete where the location allows it
--- config
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;
    location /api/ {
        safedelete          on;
        safedelete_hard_override on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
    location /strict/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- flow
my $r = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '9',
             'SafeDelete-Mode' => 'hard' });
is($r->{status}, 200, 'a user asking for hard gets soft');
is(backend_get('/users/9')->{json}{status}, 'deleted', 'soft-deleted');
$r = http('DELETE', '/strict/users/10', headers => { 'X-User-Id' => '1',
          'X-Admin' => '1', 'SafeDelete-Mode' => 'hard' });
is(backend_get('/users/10')->{json}{status}, 'deleted', 'no override here: soft');
$r = http('DELETE', '/api/users/8', headers => { 'X-User-Id' => '1',
          'X-Admin' => '1', 'SafeDelete-Mode' => 'hard' });
is($r->{status}, 200, 'admin hard delete');
is(backend_get('/users/8')->{status}, 404, 'gone');
like($r->{headers}{'safedelete-undo'} // '', qr/^[A-Za-z0-9_-]{22}$/, 'with a backup to undo');
wait_for(sub { redis('XLEN', 'safedelete:audit') + 0 >= 3 });
like(redis('XRANGE', 'safedelete:audit', '-', '+'), qr/delete\.hard/, 'audited as hard');
--- no_error_log
[error]



=== TEST 15: fixed headers on the module's calls; forwarding can be turned off
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_forward_headers off;
        safedelete_upstream_header X-Service-Key "svc-$safedelete_id";
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
    location /fwd/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_forward_headers X-Tenant Authorization;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- flow
my $r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7',
             'Authorization' => 'Bearer t1' });
is($r->{status}, 200, 'deleted');
my ($get) = grep { $_->{method} eq 'GET' } @{ backend_requests() };
is($get->{headers}{'x-service-key'}, 'svc-7', 'the fixed header, with a variable');
ok(!exists $get->{headers}{authorization}, 'no Authorization when forwarding is off');
backend_clear_requests();
$r = http('DELETE', '/fwd/users/8', headers => { 'X-User-Id' => '8',
          'Authorization' => 'Bearer t2', 'X-Tenant' => 'acme' });
($get) = grep { $_->{method} eq 'GET' } @{ backend_requests() };
is($get->{headers}{'x-tenant'}, 'acme', 'a listed header is forwarded');
is($get->{headers}{authorization}, 'Bearer t2', 'and the other one');
--- no_error_log
[error]
