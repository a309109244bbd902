# The undo window: POST /_safedelete/undo/<token> restores the record.
use Test::SafeDelete;

our $CONF = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_undo_window 30s;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /api/users/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/users/;
        safedelete_undo_window 2s;
        safedelete_soft_set email "deleted_${safedelete_id}_${safedelete_ts}@deleted.local";
        safedelete_soft_set original_email $safedelete_record_email;
        safedelete_restore_set email $safedelete_record_original_email;
        safedelete_restore_set_json original_email null;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/users/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

run_tests();

__DATA__

=== TEST 1: undo within the window restores every field
--- config eval: $::CONF
--- flow
my $before = backend_get('/users/7')->{json};
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($d->{status}, 200, 'soft-deleted');
my $tok = $d->{headers}{'safedelete-undo'};
like($tok, qr/^[A-Za-z0-9_-]{22}$/, 'undo token');
like(backend_get('/users/7')->{json}{email}, qr/^deleted_7_/, 'email mangled');

my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
is($u->{status}, 200, 'undo answered 200');
like($u->{headers}{'content-type'}, qr{^application/json}, 'JSON');
is($u->{json}{email}, 'grace@example.com', 'answer is the restored record');

my $after = backend_get('/users/7')->{json};
for my $f (sort keys %$before) {
    is_deeply($after->{$f}, $before->{$f}, "field $f restored");
}
is($after->{original_email}, undef, 'original_email cleared');
is($after->{restored_by}, '7', 'restored_by is the actor');
like($after->{restored_at}, qr/^\d{4}-\d\d-\d\dT[\d:.]+Z$/, 'restored_at set');
like(redis('XRANGE', 'safedelete:audit', '-', '+'), qr/\bundo\b/, 'undo audited');
--- no_error_log
[error]



=== TEST 2: undo twice is 409
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/posts/4', headers => { 'X-User-Id' => '7' });
my $tok = $d->{headers}{'safedelete-undo'};
my $u1 = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
is($u1->{status}, 200, 'first undo');
is(backend_get('/posts/4')->{json}{status}, 'published', 'post restored to its own status');
backend_clear_requests();
my $u2 = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
is($u2->{status}, 409, 'second undo refused');
is($u2->{json}{code}, 'UNDO_ALREADY_DONE', 'code');
like($u2->{headers}{'content-type'}, qr{^application/problem\+json}, 'problem document');
is(scalar(@{ backend_requests() }), 0, 'the backend saw nothing');
--- no_error_log
[error]



=== TEST 3: undo after the window is 410 and changes nothing
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '9' });
my $tok = $d->{headers}{'safedelete-undo'};
is($d->{headers}{'safedelete-undo-expires'}, '2', 'window of this location');
sleep 2.5;
backend_clear_requests();
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '9' });
is($u->{status}, 410, 'expired');
is($u->{json}{code}, 'UNDO_EXPIRED', 'code');
is(scalar(@{ backend_requests() }), 0, 'the backend saw nothing');
is(backend_get('/users/9')->{json}{status}, 'deleted', 'still deleted');
--- no_error_log
[error]



=== TEST 4: unknown, forged and malformed tokens
--- config eval: $::CONF
--- flow
http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
backend_clear_requests();
my $u = http('POST', '/_safedelete/undo/AAAAAAAAAAAAAAAAAAAAAA');
is($u->{status}, 404, 'unknown token');
is($u->{json}{code}, 'UNDO_NOT_FOUND', 'code');
for my $bad ('short', 'x' x 23, 'AAAAAAAAAAAAAAAAAAAA%2e%2e', 'A' x 4096,
             'AAAAAAAAAAAAAAAAAAAA%0d%0a', '') {
    my $r = http('POST', "/_safedelete/undo/$bad");
    is($r->{status}, 400, 'malformed token ' . substr($bad, 0, 30));
    is($r->{json}{code}, 'INVALID_TOKEN', 'code');
}
is(http('GET', '/_safedelete/undo/AAAAAAAAAAAAAAAAAAAAAA')->{status}, 405, 'GET is 405');
is(http('POST', '/_safedelete/nothing')->{status}, 404, 'unknown endpoint');
is(scalar(@{ backend_requests() }), 0, 'the backend saw nothing');
is(backend_get('/users/7')->{json}{status}, 'deleted', 'still deleted');
--- no_error_log
[alert]



=== TEST 5: another actor may not undo; the deleter and an admin may
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/posts/2', headers => { 'X-User-Id' => '3' });
my $tok = $d->{headers}{'safedelete-undo'};
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '5' });
is($u->{status}, 403, 'another user');
is($u->{json}{code}, 'ACCESS_DENIED', 'code');
$u = http('POST', "/_safedelete/undo/$tok");
is($u->{status}, 403, 'no user');
is(backend_get('/posts/2')->{json}{status}, 'deleted', 'still deleted');
$u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '1', 'X-Admin' => '1' });
is($u->{status}, 200, 'an admin may');
is(backend_get('/posts/2')->{json}{status}, 'published', 'restored');
--- no_error_log
[error]



=== TEST 6: the token may come in a JSON body
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/comments/5', headers => { 'X-User-Id' => '8' });
my $tok = $d->{headers}{'safedelete-undo'};
my $u = http('POST', '/_safedelete/undo', headers => { 'X-User-Id' => '8',
             'Content-Type' => 'application/json' },
             body => qq({"token":"$tok"}));
is($u->{status}, 200, 'undo by body');
is(backend_get('/comments/5')->{json}{status}, 'visible', 'restored');
--- no_error_log
[error]



=== TEST 7: a restore the backend refuses leaves the token usable
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/posts/6', headers => { 'X-User-Id' => '8' });
my $tok = $d->{headers}{'safedelete-undo'};
backend_faults([{ method => 'PATCH', path => '/posts/6', status => 503,
                  body => 'down', times => 1 }]);
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '8' });
is($u->{status}, 502, 'restore failed');
is($u->{json}{code}, 'RESTORE_FAILED', 'code');
is(backend_get('/posts/6')->{json}{status}, 'deleted', 'still deleted');
$u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '8' });
is($u->{status}, 200, 'second try works');
is(backend_get('/posts/6')->{json}{status}, 'published', 'restored');
--- error_log
safedelete: undo of



=== TEST 8: CORS: a frontend on another origin can read and undo
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/posts/1', headers => { 'X-User-Id' => '1',
             'Origin' => 'https://app.example' });
like($d->{headers}{'access-control-expose-headers'} // '', qr/SafeDelete-Undo/, 'headers exposed');
my $p = http('OPTIONS', '/_safedelete/undo/x', headers => {
             'Origin' => 'https://app.example',
             'Access-Control-Request-Method' => 'POST',
             'Access-Control-Request-Headers' => 'x-user-id' });
is($p->{status}, 204, 'preflight');
is($p->{headers}{'access-control-allow-origin'}, 'https://app.example', 'origin allowed');
like($p->{headers}{'access-control-allow-headers'}, qr/x-user-id/i, 'headers allowed');
my $tok = $d->{headers}{'safedelete-undo'};
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '1',
             'Origin' => 'https://app.example' });
is($u->{status}, 200, 'undo');
is($u->{headers}{'access-control-allow-origin'}, 'https://app.example', 'CORS on the answer');
--- no_error_log
[error]



=== TEST 9: undo of a hard delete creates the record again from the backup
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_mode     hard;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
    location /_safedelete/ { safedelete_api; }
--- flow
my $before = backend_get('/categories/3')->{json};
my $d = http('DELETE', '/api/categories/3', headers => { 'X-User-Id' => '1' });
is(backend_get('/categories/3')->{status}, 404, 'gone');
my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '1' });
is($u->{status}, 200, 'undo');
is_deeply(backend_get('/categories/3')->{json}, $before, 'record is back');
--- no_error_log
[error]



=== TEST 10: an undo claimed by a worker that died is taken over after a minute
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/posts/5', headers => { 'X-User-Id' => '5' });
my $tok = $d->{headers}{'safedelete-undo'};
my $key = "safedelete:undo:$tok";
# what a worker that died after its claim leaves behind
redis('HSET', $key, 'state', 'restoring', 'claimed_at', int(time * 1000));
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '5' });
is($u->{status}, 409, 'a fresh claim is respected');
is($u->{json}{code}, 'UNDO_IN_PROGRESS', 'code');
redis('HSET', $key, 'claimed_at', int(time * 1000) - 61000);
$u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '5' });
is($u->{status}, 200, 'a stale claim is taken over');
is(backend_get('/posts/5')->{json}{status}, 'published', 'restored');
is(redis('HGET', $key, 'state'), "undone\n", 'and recorded');
--- no_error_log
[error]
