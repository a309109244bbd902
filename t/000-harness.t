# The harness itself, against plain proxying to the backend. Passes with
# TEST_NGINX_NO_MODULE=1 and with the module loaded (it is inert without
# its directives in a location).
use Test::SafeDelete;
run_tests();

__DATA__

=== TEST 1: GET through proxy_pass returns the seed user
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
GET /api/users/1
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
!SafeDelete-Undo
--- response_json
{"id": 1, "name": "Alice Admin", "email": "alice@example.com", "role": "admin",
 "status": "active", "deleted_at": null, "deleted_by": null,
 "password": "__ABSENT__"}
--- backend_requests
GET /users/1
--- no_backend_requests
DELETE
PATCH /users/1
--- backend_unchanged
--- no_error_log
[error]
[warn]



=== TEST 2: a backend fault comes back through the proxy, and is logged
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- backend_faults
[{"method": "DELETE", "path": "/users/7", "status": 500,
  "body": "{\"error\":\"database is on fire\"}", "content_type": "application/json",
  "headers": {"X-Fault": "yes"}, "times": 1}]
--- request
DELETE /api/users/7
--- error_code: 500
--- response_headers
X-Fault: yes
--- response_json
{"error": "database is on fire"}
--- backend_requests
DELETE /users/7
--- backend
/users/7 {"id": 7, "status": "active"}
--- backend_unchanged



=== TEST 3: a dropped backend connection is a 502 with an [error] line
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- backend_faults
[{"path_regex": "^/users/[0-9]+$", "drop": true}]
--- request
GET /api/users/2
--- error_code: 502
--- error_log
upstream prematurely closed connection
--- backend_requests
GET /users/2



=== TEST 4: a DELETE passed straight through really deletes (no module here)
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/users/9
--- error_code: 200
--- response_body chomp
{}
--- backend
/users/9 404
/users/8 {"id": 8, "name": "Heidi Helper"}



=== TEST 5: redis answers, and keys do not leak from block to block
--- redis
PING => ^PONG\s*$
DBSIZE => ^0\s*$
SET 'greeting' 'hello world' => ^OK\s*$
GET greeting => ^hello world\s*$



=== TEST 6: request body, more_headers and $TEST_NGINX_* substitution
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- more_headers
Content-Type: application/json
X-Backend-Port: $TEST_NGINX_BACKEND_PORT
--- request
PATCH /api/posts/4
{"status": "archived"}
--- error_code: 200
--- response_json
{"id": 4, "status": "archived", "author_id": 7}
--- backend
/posts/4 {"status": "archived", "title": "Goodbye for now"}
--- flow
my $log = backend_requests();
is(scalar @$log, 0, 'flow runs before the request');



=== TEST 7: a flow with http(), backend_get() and the backend log
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- flow
my $r = http(GET => '/api/posts?author_id=3');
is($r->{status}, 200, 'list posts of user 3');
is(scalar @{ $r->{json} }, 2, 'user 3 has two posts');

$r = http(PATCH => '/api/users/7',
          headers => { 'Content-Type' => 'application/json', 'X-User-Id' => '1' },
          body => encode_json({ status => 'deleted', deleted_by => '1' }));
is($r->{status}, 200, 'PATCH through nginx');
json_subset_ok($r->{json}, { id => 7, status => 'deleted' }, 'PATCH answer');

my $b = backend_get('/users/7');
is($b->{status}, 200, 'backend_get status');
is($b->{json}{deleted_by}, '1', 'backend has the soft-deleted user');

my $log = backend_requests();
is_deeply([ map { "$_->{method} $_->{url}" } @$log ],
          [ 'GET /posts?author_id=3', 'PATCH /users/7' ],
          'backend_get is not logged');
is($log->[1]{headers}{'x-user-id'}, '1', 'headers are logged');
is_deeply($log->[1]{body}, { status => 'deleted', deleted_by => '1' }, 'body is logged');

like(error_log(), qr/start worker process/, 'error_log() so far');
is(redis('PING'), "PONG\n", 'redis() helper');
--- backend_requests
GET /posts?author_id=3
PATCH /users/7



=== TEST 8: an absent header and raw bytes in the URI
--- config
    location /api/ {
        add_header X-Seen $request_uri always;
        return 404;
    }
--- request
DELETE /api/users/%0d%0aX-Injected:%20yes
--- error_code: 404
--- response_headers
!X-Injected
X-Seen: /api/users/%0d%0aX-Injected:%20yes
--- no_backend_requests
DELETE



=== TEST 9: several requests from --- request eval, per-request expectations
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request eval
["GET /api/categories/3", "GET /api/categories/42", "GET /api/" . ("x" x 2048)]
--- error_code eval
[200, 404, 404]
--- response_json eval
['{"id": 3, "name": "Tech"}', '{}', '{}']



=== TEST 10: raw_request goes out verbatim; a bad request is a 400
--- config
    location / {
        return 200 "ok\n";
    }
--- raw_request eval
"GET / HTTP/1.1\r\nHost: localhost\r\nHost: again\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- error_log
client sent duplicate host header



=== TEST 11: nginx_reload() and a second nginx from nginx_start()
--- config
    location / {
        return 200 "main\n";
    }
--- flow
is(http(GET => '/')->{body}, "main\n", 'main instance');
ok(nginx_reload(config => 'location / { return 200 "reloaded\n"; }'), 'reload');
is(http(GET => '/')->{body}, "reloaded\n", 'new config after reload');

my $port = nginx_start(config => 'location / { return 201 "extra\n"; }');
my $r = http(GET => '/', port => $port);
is($r->{status}, 201, 'extra instance status');
is($r->{body}, "extra\n", 'extra instance body');
isnt($port, $ENV{TEST_NGINX_SERVER_PORT}, 'on its own port');



=== TEST 12: redis_stop() and redis_start() keep the port
--- flow
redis('SET', 'k', 'v');
redis_stop();
like(redis('PING'), qr/Could not connect|refused/i, 'redis is down');
redis_start();
is(redis('PING'), "PONG\n", 'redis is back');
is(redis('GET', 'k'), "\n", 'no persistence: data is gone');



=== TEST 13: a chunked response and wait_for()
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_http_version 1.1;
        proxy_buffering off;
    }
--- backend_faults
[{"path": "/users/3", "delay_ms": 300}]
--- flow
my $t0 = time;
my $r = http(GET => '/api/users/3');
cmp_ok(time - $t0, '>=', 0.25, 'delay-only fault delays');
is($r->{json}{name}, 'Carol Creator', 'then json-server answers');
ok(wait_for(sub { @{ backend_requests() } == 1 }), 'wait_for');



=== TEST 14: a client that goes away is only an [info] line
--- config
    location /api/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- backend_faults
[{"path": "/users/5", "delay_ms": 500}]
--- flow
my $s = raw_connect_send("GET /api/users/5 HTTP/1.1\r\nHost: localhost\r\n\r\n");
ok(wait_for(sub { @{ backend_requests() } == 1 }), 'request reached the backend');
close $s;
ok(wait_for(sub { error_log() =~ /client prematurely closed connection/ }),
   'nginx saw the client go');
--- no_error_log
[error]
