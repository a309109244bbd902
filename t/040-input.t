# Bad input gets a clear 400, a log line, and deletes nothing.
use Test::SafeDelete;

our $CONF = <<'_EOC_';
    large_client_header_buffers 4 32k;
    safedelete_actor $http_x_user_id;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /byheader/ {
        safedelete          on;
        safedelete_id       $http_x_record_id;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_record_uri /users/$safedelete_id;
        safedelete_soft_uri /byheader/users/$safedelete_id;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: an id with an encoded NUL is refused
--- config eval: $::CONF
--- request
DELETE /api/users/7%00
--- error_code: 400
--- backend_unchanged
--- no_backend_requests
PATCH
DELETE
--- no_error_log
[alert]



=== TEST 2: an id with CR LF is a 400 INVALID_ID
--- config eval: $::CONF
--- request
DELETE /api/users/7%0d%0aX-Injected:%20yes
--- error_code: 400
--- response_json
{"code": "INVALID_ID", "status": 400, "success": false}
--- response_headers
Content-Type: application/problem+json
!X-Injected
--- backend_unchanged
--- no_backend_requests
GET
PATCH
--- error_log
safedelete: DELETE refused: 400 INVALID_ID



=== TEST 3: an id of ".." is a 400
--- config eval: $::CONF
--- request
DELETE /api/users/%2e%2e%2e
--- error_code: 400
--- response_json
{"code": "INVALID_ID"}
--- backend_unchanged
--- no_backend_requests
GET



=== TEST 4: a path that ends in a slash names no record
--- config eval: $::CONF
--- request
DELETE /api/users/
--- error_code: 400
--- response_json
{"code": "INVALID_ID", "detail": "the request names no record id"}
--- backend_unchanged
--- no_backend_requests
GET



=== TEST 5: a 10 KB id is a 400
--- config eval: $::CONF
--- request eval
"DELETE /api/users/" . ("7" x 10240)
--- error_code: 400
--- response_json
{"code": "INVALID_ID"}
--- backend_unchanged
--- no_backend_requests
GET



=== TEST 6: an id from a header is checked the same way
--- config eval: $::CONF
--- flow
for my $bad ('../users/1', '7/../../8', 'a?b=1', 'x#y', 'x' x 600) {
    my $r = http('DELETE', '/byheader/users', headers => { 'X-Record-Id' => $bad });
    is($r->{status}, 400, "id '" . substr($bad, 0, 20) . "' refused");
    is($r->{json}{code}, 'INVALID_ID', 'code');
}
is(scalar(@{ backend_requests() }), 0, 'the backend saw nothing');
my $ok = http('DELETE', '/byheader/users', headers => { 'X-Record-Id' => '7' });
is($ok->{status}, 200, 'a good id from a header works');
is(backend_get('/users/7')->{json}{status}, 'deleted', 'deleted');
--- no_error_log
[alert]



=== TEST 7: an id with a space reaches the backend escaped
--- config eval: $::CONF
--- request
DELETE /api/users/a%20b
--- error_code: 404
--- response_json
{"code": "NOT_FOUND"}
--- backend_requests
GET /users/a%20b
--- backend_unchanged



=== TEST 8: a DELETE with a body: the body is replaced by the soft fields
--- config eval: $::CONF
--- request
DELETE /api/users/7
{"status": "hacked", "role": "admin"}
--- more_headers
Content-Type: application/json
X-User-Id: 7
--- error_code: 200
--- backend
/users/7 {"status": "deleted", "role": "user"}
