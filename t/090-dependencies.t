# Dependency lookups: safedelete_dependency NAME URI [block|report], their
# counts, HAS_DEPENDENCIES with the admin's SafeDelete-Force, and lookups
# that fail (503 DEPENDENCY_CHECK_FAILED, nothing deleted).
use Test::SafeDelete;
use File::Temp qw(tempdir);

# The guide's story: a user with pending orders cannot be deleted.
our $CONF = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_upstream_timeout 500ms;
        safedelete_dependency orders
            "/orders?customer_id=$safedelete_id&status=pending" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# Several lookups with different actions; every count is reported.
our $MANY = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency orders
            "/orders?customer_id=$safedelete_id&status=pending" block;
        safedelete_dependency subscriptions
            "/subscriptions?user_id=$safedelete_id&status=active" block;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" report;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# "anchor" always blocks user 2 (2 pending orders), so the 409 shows the
# count the module made of "probe", whose answer the backend fault rules
# dictate; "limited" is json-server paging (X-Total-Count, one item).
our $COUNT = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_upstream_timeout 500ms;
        safedelete_dependency anchor
            "/orders?customer_id=$safedelete_id&status=pending" block;
        safedelete_dependency probe "/probe?user=$safedelete_id" report;
        safedelete_dependency limited
            "/orders?customer_id=$safedelete_id&_limit=1" report;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
_EOC_

# A lookup whose answer the fault rules dictate, on a user without
# pending orders (9): a bad answer is the only reason to refuse.
our $FAIL = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_upstream_timeout 500ms;
        safedelete_dependency orders
            "/orders?customer_id=$safedelete_id&status=pending" block;
        safedelete_dependency probe "/probe?user=$safedelete_id" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
_EOC_

sub main::nginx_t_redis { Test::SafeDelete::Flow::nginx_t($_[0], 1) }

run_tests();

__DATA__

=== TEST 1: the guide's story: user 2 has 2 pending orders: 409, nothing changed
--- config eval: $::CONF
--- request
DELETE /api/users/2
--- more_headers
X-User-Id: 2
--- error_code: 409
--- response_headers
Content-Type: application/problem+json
!SafeDelete-Undo
--- response_json
{"type": "urn:safedelete:problem:has-dependencies", "title": "__ANY__",
 "status": 409, "detail": "__ANY__", "code": "HAS_DEPENDENCIES",
 "success": false, "error": "__ANY__",
 "dependencies": {"orders": 2}, "blocked_by": ["orders"]}
--- backend_requests
GET /users/2
GET /orders?customer_id=2&status=pending
--- no_backend_requests
PATCH
PUT
POST
DELETE
--- backend_unchanged
--- redis
KEYS safedelete:undo:* => ^\s*$
XLEN safedelete:audit => ^1\s*$
XREVRANGE safedelete:audit + - COUNT 1 => \bdelete\.(?:denied|blocked)\b.*\bHAS_DEPENDENCIES\b
--- error_log
safedelete: DELETE refused: 409 HAS_DEPENDENCIES



=== TEST 2: the guide's story: an admin forces it: user 2 soft-deleted, orders untouched
--- config eval: $::CONF
--- request
DELETE /api/users/2
--- more_headers
X-User-Id: 1
X-Admin: 1
SafeDelete-Force: 1
--- error_code: 200
--- response_headers_like
SafeDelete-Undo: ^[A-Za-z0-9_-]{22}$
--- response_json
{"id": 2, "status": "deleted", "deleted_by": "1"}
--- backend_requests
GET /users/2
GET /orders?customer_id=2&status=pending
PATCH /users/2
--- no_backend_requests
PATCH /orders/1
PATCH /orders/2
DELETE
--- backend
/users/2 {"name": "Bob Buyer", "status": "deleted", "deleted_by": "1", "deleted_at": "__ANY__"}
/orders/1 {"customer_id": 2, "status": "pending", "customer_name": "Bob Buyer"}
/orders/2 {"customer_id": 2, "status": "pending", "customer_name": "Bob Buyer"}
--- no_error_log
[error]



=== TEST 3: SafeDelete-Force is only an admin's: others stay blocked
--- config eval: $::CONF
--- flow
my $seed = backend_db();
my @cases = (
    [ 'non-admin with Force: 1', { 'X-User-Id' => '2', 'SafeDelete-Force' => '1' } ],
    [ 'X-Admin: 0 with Force: 1', { 'X-User-Id' => '1', 'X-Admin' => '0',
                                    'SafeDelete-Force' => '1' } ],
    [ 'admin without Force', { 'X-User-Id' => '1', 'X-Admin' => '1' } ],
    [ 'admin with Force: 0', { 'X-User-Id' => '1', 'X-Admin' => '1',
                               'SafeDelete-Force' => '0' } ],
    [ 'no actor with Force: 1', { 'SafeDelete-Force' => '1' } ],
);
for my $c (@cases) {
    my $r = http('DELETE', '/api/users/2', headers => $c->[1]);
    problem_ok($r, 409, 'HAS_DEPENDENCIES', $c->[0]);
    json_subset_ok($r->{json}, { dependencies => { orders => 2 },
                                 blocked_by => ['orders'] }, "$c->[0]: counts");
    ok(!exists $r->{headers}{'safedelete-undo'}, "$c->[0]: no undo token");
}
is_deeply(backend_db(), $seed, 'backend data unchanged');
is(scalar(backend_writes()), 0, 'only reads reached the backend');
unlike(redis('KEYS', 'safedelete:undo:*'), qr/undo/, 'no undo record');
--- no_error_log
[error]



=== TEST 4: no pending orders: the lookup runs and the delete goes on
--- config eval: $::CONF
--- request
DELETE /api/users/9
--- more_headers
X-User-Id: 9
--- error_code: 200
--- response_headers_like
SafeDelete-Undo: ^[A-Za-z0-9_-]{22}$
--- response_headers
!SafeDelete-Cascaded
--- backend_requests
GET /users/9
GET /orders?customer_id=9&status=pending
PATCH /users/9
--- backend
/users/9 {"status": "deleted", "deleted_by": "9"}
--- no_error_log
[error]



=== TEST 5: every lookup's count is reported, blocked_by names only the blockers
--- config eval: $::MANY
--- request
DELETE /api/users/3
--- more_headers
X-User-Id: 3
--- error_code: 409
--- response_json
{"code": "HAS_DEPENDENCIES", "status": 409, "success": false,
 "dependencies": {"orders": 0, "subscriptions": 1, "comments": 3},
 "blocked_by": ["subscriptions"]}
--- backend_requests
GET /users/3
--- no_backend_requests
PATCH
DELETE
--- backend_unchanged



=== TEST 6: two blockers are both named
--- config eval: $::MANY
--- backend_faults
[{"method": "GET", "path": "/orders", "status": 200,
  "body": [{"id": 90, "customer_id": 3, "status": "pending"}]}]
--- flow
my $r = http('DELETE', '/api/users/3', headers => { 'X-User-Id' => '3' });
problem_ok($r, 409, 'HAS_DEPENDENCIES', 'two blockers');
json_subset_ok($r->{json}{dependencies},
               { orders => 1, subscriptions => 1, comments => 3 }, 'counts');
is_deeply([ sort @{ $r->{json}{blocked_by} || [] } ],
          [ 'orders', 'subscriptions' ], 'blocked_by names both');
is(scalar(backend_writes()), 0, 'only reads reached the backend');
is(backend_get('/users/3')->{json}{status}, 'active', 'user 3 untouched');



=== TEST 7: report-only lookups never block; their counts land in the audit entry
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" report;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" report;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- flow
my $seed = backend_db();
my $r = http('DELETE', '/api/users/3', headers => { 'X-User-Id' => '3' });
is($r->{status}, 200, 'deleted despite 3 comments and 2 posts');
like($r->{headers}{'safedelete-undo'} // '', qr/^[A-Za-z0-9_-]{22}$/, 'undo token');
ok(!exists $r->{headers}{'safedelete-cascaded'}, 'no SafeDelete-Cascaded for report');
is(backend_get('/users/3')->{json}{status}, 'deleted', 'user 3 soft-deleted');
my $db = backend_db();
is_deeply($db->{$_}, $seed->{$_}, "$_ untouched")
    for qw(posts comments orders subscriptions categories);
is_deeply([ map { "$_->{method} " . ($_->{url} =~ s/\?.*//r) } backend_writes() ],
          [ 'PATCH /users/3' ], 'the only change is the main PATCH');
my ($del) = grep { $_->{event} eq 'delete.soft' } @{ audit_events() };
ok($del, 'delete.soft audited');
my $deps = eval { decode_json($del->{dependencies} // '') };
is_deeply($deps, { comments => 3, posts => 2 }, 'audit entry has the counts as JSON')
    or diag(explain($del));
--- no_error_log
[error]



=== TEST 8: count = X-Total-Count, else array length, else itemsTotal, else items
--- config eval: $::COUNT
--- flow
my $seed = backend_db();
my @cases = (
    [ 'JSON array', { body => [ { id => 1 }, { id => 2 }, { id => 3 } ] }, 3 ],
    [ 'empty array', { body => [] }, 0 ],
    [ 'X-Total-Count over the array length',
      { body => [ { id => 1 } ], headers => { 'X-Total-Count' => '42' } }, 42 ],
    [ 'X-Total-Count 0 over a non-empty array',
      { body => [ { id => 1 } ], headers => { 'X-Total-Count' => '0' } }, 0 ],
    [ 'X-Total-Count with a Xano body',
      { body => { itemsTotal => 9, items => [] },
        headers => { 'X-Total-Count' => '5' } }, 5 ],
    [ 'Xano itemsTotal over items',
      { body => { itemsReceived => 1, curPage => 1, nextPage => 2,
                  prevPage => undef, offset => 0, itemsTotal => 57,
                  items => [ { id => 1 } ] } }, 57 ],
    [ 'Xano items without itemsTotal',
      { body => { items => [ { id => 1 }, { id => 2 } ] } }, 2 ],
    [ 'Xano paging, nothing', { body => { itemsTotal => 0, items => [] } }, 0 ],
);
for my $c (@cases) {
    my ($what, $rule, $want) = @$c;
    backend_faults([ { method => 'GET', path => '/probe', status => 200,
                       content_type => 'application/json', %$rule } ]);
    my $r = http('DELETE', '/api/users/2', headers => { 'X-User-Id' => '2' });
    is($r->{status}, 409, "$what: blocked by the anchor");
    json_subset_ok($r->{json}, { code => 'HAS_DEPENDENCIES',
                                 dependencies => { anchor => 2, probe => $want,
                                                   limited => 3 },
                                 blocked_by => ['anchor'] },
                   "$what: probe counted $want");
}
is_deeply(backend_db(), $seed, 'backend data unchanged');
is(scalar(backend_writes()), 0, 'only reads reached the backend');
my ($limited) = grep { $_->{url} =~ /_limit=1/ } @{ backend_requests() };
ok($limited, 'the paged lookup was sent as configured');



=== TEST 9: lookup URIs may use the snapshot's fields
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency same_category
            "/posts?category_id=$safedelete_record_category_id" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/posts/2
--- more_headers
X-User-Id: 3
--- error_code: 409
--- response_json
{"code": "HAS_DEPENDENCIES", "dependencies": {"same_category": 2},
 "blocked_by": ["same_category"]}
--- backend_requests
GET /posts/2
GET /posts?category_id=3
--- no_backend_requests
PATCH
--- backend_unchanged



=== TEST 10: lookup URIs are relative to the base path of safedelete_upstream
--- config
    safedelete_actor $http_x_user_id;
    location /x/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/base/;
        safedelete_dependency orders "/orders?customer_id=$safedelete_id" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/base/;
    }
--- backend_faults
[{"method": "GET", "path": "/base/users/2", "status": 200,
  "body": {"id": 2, "name": "Bob Buyer"}},
 {"method": "GET", "path": "/base/orders", "status": 200,
  "body": [{"id": 1}]}]
--- request
DELETE /x/users/2
--- more_headers
X-User-Id: 2
--- error_code: 409
--- response_json
{"code": "HAS_DEPENDENCIES", "dependencies": {"orders": 1}}
--- backend_requests
GET /base/users/2
GET /base/orders?customer_id=2
--- no_backend_requests
GET /orders
PATCH
--- backend_unchanged



=== TEST 11: lookups carry the client's Authorization like the snapshot
--- config eval: $::CONF
--- flow
my $r = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '9',
             'Authorization' => 'Bearer lookup-token' });
is($r->{status}, 200, 'deleted');
my ($get) = grep { $_->{method} eq 'GET' && $_->{url} =~ m{^/orders\?} }
            @{ backend_requests() };
ok($get, 'the lookup reached the backend');
is($get->{headers}{authorization}, 'Bearer lookup-token',
   'lookup GET carries Authorization');
--- no_error_log
[error]



=== TEST 12: a lookup that fails is 503 DEPENDENCY_CHECK_FAILED naming it
--- config eval: $::FAIL
--- backend_faults
[{"method": "GET", "path": "/probe", "status": 500,
  "body": {"error": "database on fire"}}]
--- request
DELETE /api/users/9
--- more_headers
X-User-Id: 9
--- error_code: 503
--- response_headers
Content-Type: application/problem+json
!SafeDelete-Undo
--- response_json
{"type": "urn:safedelete:problem:dependency-check-failed", "title": "__ANY__",
 "status": 503, "detail": "__ANY__", "code": "DEPENDENCY_CHECK_FAILED",
 "success": false, "error": "__ANY__", "dependency": "probe"}
--- backend_requests
GET /users/9
--- no_backend_requests
PATCH
PUT
POST
DELETE
--- backend_unchanged
--- redis
KEYS safedelete:undo:* => ^\s*$
--- error_log
safedelete: DELETE refused: 503 DEPENDENCY_CHECK_FAILED



=== TEST 13: every kind of failed lookup refuses, and a good one lets it through
--- config eval: $::FAIL
--- flow
my $seed = backend_db();
my @cases = (
    [ 'status 500', { status => 500, body => '{"error":"x"}',
                      content_type => 'application/json' } ],
    [ 'status 404', { status => 404, body => '{}',
                      content_type => 'application/json' } ],
    [ 'status 403', { status => 403, body => '[]',
                      content_type => 'application/json' } ],
    [ 'a redirect', { status => 302, body => '[]',
                      content_type => 'application/json',
                      headers => { Location => '/orders' } } ],
    [ 'status 204', { status => 204, body => '' } ],
    [ 'HTML', { status => 200, body => '<html>maintenance</html>',
                content_type => 'text/html' } ],
    [ 'an empty body', { status => 200, body => '',
                         content_type => 'application/json' } ],
    [ 'truncated JSON', { status => 200, body => '[{"id":1},',
                          content_type => 'application/json' } ],
    [ 'an object without items', { status => 200, body => '{"count":3}',
                                   content_type => 'application/json' } ],
    [ 'items that are no array', { status => 200, body => '{"items":"3"}',
                                   content_type => 'application/json' } ],
    [ 'a string', { status => 200, body => '"three"',
                    content_type => 'application/json' } ],
    [ 'a number', { status => 200, body => '3',
                    content_type => 'application/json' } ],
    [ 'null', { status => 200, body => 'null',
                content_type => 'application/json' } ],
    [ 'a timeout', { delay_ms => 1500, status => 200, body => '[]',
                     content_type => 'application/json' } ],
    [ 'a dropped connection', { drop => JSON::PP::true() } ],
);
for my $c (@cases) {
    my ($what, $rule) = @$c;
    backend_faults([ { method => 'GET', path => '/probe', %$rule } ]);
    backend_clear_requests();
    my $r = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '9' });
    problem_ok($r, 503, 'DEPENDENCY_CHECK_FAILED', $what);
    is($r->{json}{dependency}, 'probe', "$what: names the lookup");
    ok(!exists $r->{headers}{'safedelete-undo'}, "$what: no undo token");
    is_deeply([ map { "$_->{method} $_->{url}" } backend_writes() ], [],
              "$what: only reads reached the backend");
}
is_deeply(backend_db(), $seed, 'backend data unchanged');
unlike(redis('KEYS', 'safedelete:undo:*'), qr/undo/, 'no undo record');

# the same request with a countable answer goes through
backend_faults([ { method => 'GET', path => '/probe', status => 200,
                   body => [], content_type => 'application/json' } ]);
my $r = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '9' });
is($r->{status}, 200, 'a countable answer lets the delete through');
is(backend_get('/users/9')->{json}{status}, 'deleted', 'user 9 soft-deleted');



=== TEST 14: an admin's SafeDelete-Force does not skip a lookup that failed
--- config eval: $::FAIL
--- backend_faults
[{"method": "GET", "path": "/probe", "status": 502, "body": "bad gateway"}]
--- request
DELETE /api/users/2
--- more_headers
X-User-Id: 1
X-Admin: 1
SafeDelete-Force: 1
--- error_code: 503
--- response_json
{"code": "DEPENDENCY_CHECK_FAILED", "dependency": "probe"}
--- no_backend_requests
PATCH
DELETE
--- backend_unchanged



=== TEST 15: all lookups run at once, after the snapshot
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency orders "/orders?customer_id=$safedelete_id" report;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" report;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" report;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- backend_faults
[{"method": "GET", "path": "/users/3", "delay_ms": 300},
 {"method": "GET", "path": "/orders", "delay_ms": 1500},
 {"method": "GET", "path": "/comments", "delay_ms": 1500},
 {"method": "GET", "path": "/posts", "delay_ms": 1500}]
--- timeout: 20
--- flow
my $r = http('DELETE', '/api/users/3', headers => { 'X-User-Id' => '3' });
is($r->{status}, 200, 'deleted');
my @log = @{ backend_requests() };
my ($snap) = grep { $_->{method} eq 'GET' && $_->{url} eq '/users/3' } @log;
my @look = grep { $_->{method} eq 'GET' && $_->{url} =~ m{^/(orders|comments|posts)\?} } @log;
ok($snap, 'snapshot read');
is(scalar(@look), 3, 'three lookups');
# The backend logs a request when it arrives and answers the snapshot
# 300 ms later: a lookup that arrives sooner did not wait for it. Each
# lookup is answered 1500 ms after it arrives: lookups made one after
# the other arrive at least that far apart.
for my $l (@look) {
    cmp_ok($l->{ts} - $snap->{ts}, '>=', 280, "$l->{url} sent after the snapshot answer");
}
my @ts = sort { $a <=> $b } map { $_->{ts} } @look;
cmp_ok($ts[-1] - $ts[0], '<', 1000,
       'all lookups were in flight together (' . ($ts[-1] - $ts[0]) . ' ms apart)');
my ($patch) = grep { $_->{method} eq 'PATCH' } @log;
ok($patch && $patch->{ts} >= $ts[-1], 'the PATCH came after the lookups');
--- no_error_log
[error]



=== TEST 16: bad safedelete_dependency lines fail nginx -t
--- config
--- flow
my $base = "server { listen 127.0.0.1:1; location / { safedelete on; "
         . "safedelete_upstream http://127.0.0.1:1/; %s } }";
my ($ok, $out) = main::nginx_t_redis(sprintf $base,
    'safedelete_dependency orders "/orders?customer_id=$safedelete_id" block;'
    . ' safedelete_dependency notes "/notes?u=$safedelete_id";');
ok($ok, 'a valid configuration passes (block is the default action)') or diag($out);
for my $bad ('safedelete_dependency orders "/orders" explode;',
             'safedelete_dependency orders;',
             'safedelete_dependency orders "/orders" block extra;') {
    ($ok, $out) = main::nginx_t_redis(sprintf $base, $bad);
    ok(!$ok, "refused: $bad") or diag($out);
}
($ok, $out) = main::nginx_t_redis(sprintf $base, 'safedelete_dependency orders "/orders" explode;');
like($out, qr/explode/, 'the message names the bad action');



=== TEST 17: a dependency given at server level applies to its locations
--- config
    safedelete_actor $http_x_user_id;
    safedelete_dependency orders
        "/orders?customer_id=$safedelete_id&status=pending" block;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/users/2
--- more_headers
X-User-Id: 2
--- error_code: 409
--- response_json
{"code": "HAS_DEPENDENCIES", "dependencies": {"orders": 2}}
--- no_backend_requests
PATCH
--- backend_unchanged



=== TEST 18: a record field in a lookup URI is one argument, never more
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency orders
            "/orders?customer_name=$safedelete_record_name" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
    location /plain/ {
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- flow
# a user who named themselves so as to smuggle in another filter
my $c = http('POST', '/plain/users', headers => { 'Content-Type' => 'application/json' },
             body => encode_json({ id => 99, name => 'Nobody&customer_name=Bob Buyer',
                                   email => 'eve@example.com', status => 'active' }));
is($c->{status}, 201, 'user 99 created');
my $r = http('DELETE', '/api/users/99', headers => { 'X-User-Id' => '99' });
is($r->{status}, 200, "Bob's orders are not Eve's");
my ($get) = grep { $_->{url} =~ m{^/orders\?} } @{ backend_requests() };
like($get->{url}, qr/customer_name=Nobody%26customer_name=Bob%20Buyer$/,
     'the value went out escaped');
--- no_error_log
[error]
