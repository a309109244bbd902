# Identity and permissions: safedelete_require_actor and
# safedelete_owner_field. A refused DELETE changes nothing and, for a
# missing actor, does not even reach the backend.
use Test::SafeDelete;

# posts carry author_id: only the author (or an admin) may delete one
our $CONF = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /api/posts/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/posts/;
        safedelete_owner_field author_id;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/posts/;
    }

    # the same owner rule for any collection, to see records without it
    location /owned/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_owner_field author_id;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /strict/ {
        safedelete          on;
        safedelete_require_actor on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# require_actor given at server level, turned off again in one location
our $INHERIT = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_require_actor on;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /anon/ {
        safedelete          on;
        safedelete_require_actor off;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: require_actor: no actor is 401 ACTOR_REQUIRED, the backend sees nothing
--- config eval: $::CONF
--- request
DELETE /strict/users/7
--- error_code: 401
--- response_headers
Content-Type: application/problem+json
!SafeDelete-Undo
--- response_json
{"type": "urn:safedelete:problem:actor-required", "title": "__ANY__",
 "status": 401, "detail": "__ANY__", "code": "ACTOR_REQUIRED",
 "success": false, "error": "__ANY__"}
--- no_backend_requests
GET
HEAD
PATCH
PUT
POST
DELETE
--- backend_unchanged
--- redis
KEYS safedelete:undo:* => ^\s*$
XREVRANGE safedelete:audit + - COUNT 1 => \bdelete\.denied\b.*\bACTOR_REQUIRED\b
--- error_log
safedelete: DELETE refused: 401 ACTOR_REQUIRED



=== TEST 2: require_actor: an empty actor header is no actor
--- config eval: $::CONF
--- request
DELETE /strict/users/7
--- more_headers
X-User-Id:
--- error_code: 401
--- response_json
{"code": "ACTOR_REQUIRED", "status": 401, "success": false}
--- no_backend_requests
GET
PATCH
DELETE
--- backend_unchanged



=== TEST 3: require_actor: with an actor the delete goes on
--- config eval: $::CONF
--- request
DELETE /strict/users/7
--- more_headers
X-User-Id: 7
--- error_code: 200
--- response_headers_like
SafeDelete-Undo: ^[A-Za-z0-9_-]{22}$
--- backend_requests
GET /users/7
PATCH /users/7
--- backend
/users/7 {"status": "deleted", "deleted_by": "7", "deleted_at": "__ANY__"}
--- no_error_log
[error]



=== TEST 4: require_actor is off by default: no actor, deleted_by null
--- config eval: $::CONF
--- request
DELETE /api/users/9
--- error_code: 200
--- backend
/users/9 {"status": "deleted", "deleted_by": null}
--- no_error_log
[error]



=== TEST 5: require_actor is inherited from server and can be turned off
--- config eval: $::INHERIT
--- flow
my $r = http('DELETE', '/api/users/7');
problem_ok($r, 401, 'ACTOR_REQUIRED', 'inherited from server');
is(scalar(@{ backend_requests() }), 0, 'the backend saw no request');
is(backend_get('/users/7')->{json}{status}, 'active', 'user 7 untouched');

$r = http('DELETE', '/anon/users/8');
is($r->{status}, 200, 'location with require_actor off: deleted');
is(backend_get('/users/8')->{json}{status}, 'deleted', 'user 8 soft-deleted');

$r = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($r->{status}, 200, 'with an actor: deleted');
is(backend_get('/users/7')->{json}{deleted_by}, '7', 'deleted_by');
--- no_error_log
[error]



=== TEST 6: owner: user 5 may not delete post 2 of user 3 (403, untouched)
--- config eval: $::CONF
--- request
DELETE /api/posts/2
--- more_headers
X-User-Id: 5
--- error_code: 403
--- response_headers
Content-Type: application/problem+json
!SafeDelete-Undo
--- response_json
{"type": "urn:safedelete:problem:access-denied", "title": "__ANY__",
 "status": 403, "detail": "__ANY__", "code": "ACCESS_DENIED",
 "success": false, "error": "__ANY__"}
--- backend_requests
GET /posts/2
--- no_backend_requests
PATCH
PUT
DELETE
POST
--- backend_unchanged
--- redis
KEYS safedelete:undo:* => ^\s*$
XLEN safedelete:audit => ^1\s*$
XREVRANGE safedelete:audit + - COUNT 1 => \bdelete\.denied\b.*\bACCESS_DENIED\b
--- error_log
safedelete: DELETE refused: 403 ACCESS_DENIED



=== TEST 7: owner: the author (user 3) deletes post 2
--- config eval: $::CONF
--- request
DELETE /api/posts/2
--- more_headers
X-User-Id: 3
--- error_code: 200
--- response_headers_like
SafeDelete-Undo: ^[A-Za-z0-9_-]{22}$
--- response_json
{"id": 2, "status": "deleted", "deleted_by": "3"}
--- backend_requests
GET /posts/2
PATCH /posts/2
--- backend
/posts/2 {"title": "Soft deletes done right", "author_id": 3, "status": "deleted", "deleted_by": "3", "deleted_at": "__ANY__"}
/posts/3 {"status": "draft", "deleted_at": null}
--- redis
XREVRANGE safedelete:audit + - COUNT 1 => \bdelete\.soft\b
--- no_error_log
[error]



=== TEST 8: owner: an admin (user 1, X-Admin: 1) deletes anyone's post
--- config eval: $::CONF
--- request
DELETE /api/posts/2
--- more_headers
X-User-Id: 1
X-Admin: 1
--- error_code: 200
--- response_headers_like
SafeDelete-Undo: ^[A-Za-z0-9_-]{22}$
--- backend
/posts/2 {"author_id": 3, "status": "deleted", "deleted_by": "1"}
--- no_error_log
[error]



=== TEST 9: owner: X-Admin "0" or empty is no admin
--- config eval: $::CONF
--- flow
for my $admin ('0', '') {
    my $r = http('DELETE', '/api/posts/2',
                 headers => { 'X-User-Id' => '1', 'X-Admin' => $admin });
    problem_ok($r, 403, 'ACCESS_DENIED', "X-Admin '$admin'");
}
my $r = http('DELETE', '/api/posts/2', headers => { 'X-User-Id' => '1' });
problem_ok($r, 403, 'ACCESS_DENIED', 'no X-Admin');
ok(!grep({ $_->{method} ne 'GET' } @{ backend_requests() }),
   'only reads reached the backend');
is_deeply(backend_get('/posts/2')->{json},
          { id => 2, title => 'Soft deletes done right', author_id => 3,
            category_id => 3, status => 'published', deleted_at => undef },
          'post 2 untouched');
--- no_error_log
[error]



=== TEST 10: owner: compared as text, exactly ("3" owns 3; "03", "3x", "33" do not)
--- config eval: $::CONF
--- flow
for my $actor ('03', '3x', '33', '3.0', '-3') {
    my $r = http('DELETE', '/api/posts/2', headers => { 'X-User-Id' => $actor });
    problem_ok($r, 403, 'ACCESS_DENIED', "actor '$actor'");
}
is(backend_get('/posts/2')->{json}{status}, 'published', 'still published');
ok(!grep({ $_->{method} ne 'GET' } @{ backend_requests() }),
   'only reads reached the backend');
my $r = http('DELETE', '/api/posts/2', headers => { 'X-User-Id' => '3' });
is($r->{status}, 200, 'actor "3" owns author_id 3 (a number)');
is(backend_get('/posts/2')->{json}{status}, 'deleted', 'deleted');
--- no_error_log
[error]



=== TEST 11: owner: a string field "3" equals actor 3 too
--- config eval: $::CONF
--- backend_faults
[{"method": "GET", "path": "/posts/2", "status": 200,
  "body": {"id": 2, "title": "Soft deletes done right", "author_id": "3"}}]
--- request
DELETE /api/posts/2
--- more_headers
X-User-Id: 3
--- error_code: 200
--- backend_requests
GET /posts/2
PATCH /posts/2
--- backend
/posts/2 {"status": "deleted", "deleted_by": "3"}
--- no_error_log
[error]



=== TEST 12: owner: a record without the owner field is refused (403)
--- config eval: $::CONF
--- request
DELETE /owned/categories/2
--- more_headers
X-User-Id: 1
--- error_code: 403
--- response_json
{"code": "ACCESS_DENIED", "status": 403, "success": false}
--- backend_requests
GET /categories/2
--- no_backend_requests
PATCH
DELETE
--- backend_unchanged



=== TEST 13: owner: a null owner never matches, not even an empty actor or "null"
--- config eval: $::CONF
--- backend_faults
[{"method": "GET", "path": "/posts/2", "status": 200,
  "body": {"id": 2, "title": "Soft deletes done right", "author_id": null}}]
--- flow
my @cases = ([ 'no actor', {} ],
             [ 'empty actor', { 'X-User-Id' => '' } ],
             [ 'actor "null"', { 'X-User-Id' => 'null' } ]);
for my $c (@cases) {
    my $r = http('DELETE', '/api/posts/2', headers => $c->[1]);
    problem_ok($r, 403, 'ACCESS_DENIED', $c->[0]);
}
ok(!grep({ $_->{method} ne 'GET' } @{ backend_requests() }),
   'only reads reached the backend');
is(backend_get('/posts/2')->{json}{status}, 'published', 'post 2 untouched');



=== TEST 14: owner: no actor at all cannot own a post
--- config eval: $::CONF
--- request
DELETE /api/posts/2
--- error_code: 403
--- response_json
{"code": "ACCESS_DENIED"}
--- no_backend_requests
PATCH
--- backend_unchanged



=== TEST 15: owner: a record that does not exist is still 404, not 403
--- config eval: $::CONF
--- request
DELETE /api/posts/999
--- more_headers
X-User-Id: 5
--- error_code: 404
--- response_json
{"code": "NOT_FOUND"}
--- backend_unchanged



=== TEST 16: owner: the permission check comes before dependency lookups
--- config
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_owner_field author_id;
        safedelete_dependency comments "/comments?post_id=$safedelete_id" report;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/posts/2
--- more_headers
X-User-Id: 5
--- error_code: 403
--- response_json
{"code": "ACCESS_DENIED"}
--- backend_requests
GET /posts/2
--- no_backend_requests
GET /comments
PATCH
--- backend_unchanged



=== TEST 17: owner: the author's delete can be undone by the author
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/posts/3', headers => { 'X-User-Id' => '3' });
is($d->{status}, 200, 'author deleted post 3');
my $tok = $d->{headers}{'safedelete-undo'};
like($tok // '', qr/^[A-Za-z0-9_-]{22}$/, 'undo token');
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '5' });
is($u->{status}, 403, 'another user may not undo');
$u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '3' });
is($u->{status}, 200, 'the author undoes');
my $p = backend_get('/posts/3')->{json};
is($p->{status}, 'draft', 'restored to its own status');
is($p->{deleted_at}, undef, 'deleted_at cleared');
--- no_error_log
[error]
