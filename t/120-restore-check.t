# Restore checks: safedelete_restore_check NAME URI runs at undo time on
# the record as it is then; a conflict is 409 RESTORE_CONFLICT, changes
# nothing and leaves the token usable.
use Test::SafeDelete;
use HTTP::Tiny;

# The guide's users: the soft delete frees the unique email and keeps it
# in original_email; the undo puts it back unless someone took it.
our $CONF = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_upstream_timeout 500ms;
        safedelete_undo_window 30s;
        safedelete_soft_set email
                    "deleted_${safedelete_id}_${safedelete_ts}@deleted.local";
        safedelete_soft_set original_email $safedelete_record_email;
        safedelete_restore_set email $safedelete_record_original_email;
        safedelete_restore_set_json original_email null;
        safedelete_restore_check email_taken
                    "/users?email=$safedelete_record_original_email";
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# Two checks, one of them on a fault-driven path.
our $TWO = <<'_EOC_';
    safedelete_actor $http_x_user_id;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_upstream_timeout 500ms;
        safedelete_restore_check same_email
                    "/users?email=$safedelete_record_email&status=active";
        safedelete_restore_check probe "/probe?id=$safedelete_id";
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# The backend itself, as another application would use it (requests
# marked as the harness's: not logged, not faulted).
my $BACKEND = HTTP::Tiny->new(timeout => 10, keep_alive => 0,
    default_headers => { 'X-SafeDelete-Harness' => '1' });

sub main::backend_call {
    my ($method, $path, $body) = @_;
    my %o;
    if (defined $body) {
        $o{content} = JSON::PP::encode_json($body);
        $o{headers} = { 'Content-Type' => 'application/json' };
    }
    my $r = $BACKEND->request($method,
        "http://127.0.0.1:$ENV{TEST_NGINX_BACKEND_PORT}$path", \%o);
    return { status => $r->{status},
             json => eval { JSON::PP::decode_json($r->{content}) } };
}

# "METHOD /path" of every request that changed something, in order
sub main::writes {
    return map { "$_->{method} " . ($_->{url} =~ s/\?.*//sr) }
           grep { $_->{method} ne 'GET' && $_->{method} ne 'HEAD' }
           @{ Test::SafeDelete::Flow::backend_requests() };
}

# The URLs of the GETs the backend saw, percent-decoded
sub main::gets {
    return map { $_->{url} =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ger }
           grep { $_->{method} eq 'GET' }
           @{ Test::SafeDelete::Flow::backend_requests() };
}

run_tests();

__DATA__

=== TEST 1: the guide's story: the original email was taken meanwhile
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($d->{status}, 200, 'user 7 deleted');
my $tok = $d->{headers}{'safedelete-undo'};
like($tok // '', qr/^[A-Za-z0-9_-]{22}$/, 'undo token');
my $u7 = backend_get('/users/7')->{json};
like($u7->{email}, qr/^deleted_7_\d+\@deleted\.local$/, 'email freed');
is($u7->{original_email}, 'grace@example.com', 'original kept');

# someone registers with grace@example.com, straight at the backend
my $new = main::backend_call('POST', '/users',
    { name => 'Grace Again', email => 'grace@example.com', role => 'user',
      status => 'active', deleted_at => undef, deleted_by => undef });
is($new->{status}, 201, 'another user registered with the email');
my $new_id = $new->{json}{id};

my $before = backend_db();
backend_clear_requests();
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
problem_ok($u, 409, 'RESTORE_CONFLICT', 'undo while the email is taken');
json_subset_ok($u->{json}, { conflicts => { email_taken => 1 } }, 'conflicts');
is_deeply(backend_db(), $before, 'nothing changed');
is_deeply([ main::writes() ], [], 'no change reached the backend');
ok(grep({ $_ eq '/users?email=grace@example.com' } main::gets()),
   'the check used original_email of the record as it is now')
    or diag(explain([ main::gets() ]));
my ($key) = grep { /undo/ } split /\n/, redis('KEYS', 'safedelete:undo:*');
is(redis('HGET', $key // 'none', 'state'), "active\n", 'the undo record is still active');

# the other account goes away; the same token works now
is(main::backend_call('DELETE', "/users/$new_id")->{status}, 200,
   'the new user removed');
$u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
is($u->{status}, 200, 'undo now restores');
$u7 = backend_get('/users/7')->{json};
is($u7->{email}, 'grace@example.com', 'email restored');
is($u7->{original_email}, undef, 'original_email cleared');
is($u7->{status}, 'active', 'active again');
is($u7->{deleted_at}, undef, 'deleted_at cleared');

$u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
is($u->{status}, 409, 'and only once');
is($u->{json}{code}, 'UNDO_ALREADY_DONE', 'code');
--- error_log
safedelete: undo refused: 409 RESTORE_CONFLICT



=== TEST 2: no conflict: the check runs after the re-read, then the restore
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/users/8', headers => { 'X-User-Id' => '8' });
is($d->{status}, 200, 'user 8 deleted');
backend_clear_requests();
my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '8' });
is($u->{status}, 200, 'restored');
is($u->{json}{email}, 'heidi@example.com', 'with its email');
my @seen = map { my $x = $_->{url} =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ger;
                 "$_->{method} $x" } @{ backend_requests() };
is_deeply(\@seen, [ 'GET /users/8', 'GET /users?email=heidi@example.com',
                    'PATCH /users/8' ],
          're-read, check, restore') or diag(explain(\@seen));
--- no_error_log
[error]



=== TEST 3: the check reads the record at undo time, not the snapshot
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/users/9', headers => { 'X-User-Id' => '9' });
is($d->{status}, 200, 'user 9 deleted');
# an operator changes the kept email meanwhile; the check must follow it
my $p = main::backend_call('PATCH', '/users/9', { original_email => 'judy@example.com' });
is($p->{status}, 200, 'original_email changed on the backend');
my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '9' });
problem_ok($u, 409, 'RESTORE_CONFLICT', 'judy@example.com is taken by user 10');
json_subset_ok($u->{json}, { conflicts => { email_taken => 1 } }, 'conflicts');
ok(grep({ $_ eq '/users?email=judy@example.com' } main::gets()),
   'the check used the current original_email') or diag(explain([ main::gets() ]));
is(backend_get('/users/9')->{json}{status}, 'deleted', 'user 9 still deleted');
is(backend_get('/users/10')->{json}{email}, 'judy@example.com', 'user 10 untouched');



=== TEST 4: a check lookup that fails is 503 and the token stays usable
--- config eval: $::TWO
--- flow
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($d->{status}, 200, 'user 7 deleted');
my $tok = $d->{headers}{'safedelete-undo'};
my @cases = (
    [ 'status 500', { status => 500, body => '{}' } ],
    [ 'HTML', { status => 200, body => '<html></html>', content_type => 'text/html' } ],
    [ 'not countable', { status => 200, body => '{"n":1}',
                         content_type => 'application/json' } ],
    [ 'a timeout', { status => 200, body => '[]', delay_ms => 1500,
                     content_type => 'application/json' } ],
);
for my $c (@cases) {
    my ($what, $rule) = @$c;
    backend_faults([ { method => 'GET', path => '/probe', %$rule } ]);
    my $before = backend_db();
    backend_clear_requests();
    my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
    problem_ok($u, 503, 'DEPENDENCY_CHECK_FAILED', $what);
    is_deeply(backend_db(), $before, "$what: nothing changed");
    is_deeply([ main::writes() ], [], "$what: no change reached the backend");
}
backend_faults([ { method => 'GET', path => '/probe', status => 200,
                   body => '[]', content_type => 'application/json' } ]);
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '7' });
is($u->{status}, 200, 'the same token restores once the check works');
is(backend_get('/users/7')->{json}{status}, 'active', 'user 7 active');



=== TEST 5: with two checks, a conflict in one is reported by name
--- config eval: $::TWO
--- backend_faults
[{"method": "GET", "path": "/probe", "status": 200,
  "body": [], "content_type": "application/json"}]
--- flow
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($d->{status}, 200, 'user 7 deleted');
my $new = main::backend_call('POST', '/users',
    { name => 'Grace Twin', email => 'grace@example.com', status => 'active' });
is($new->{status}, 201, 'another active user with the same email');
my $before = backend_db();
my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '7' });
problem_ok($u, 409, 'RESTORE_CONFLICT', 'the email is taken');
json_subset_ok($u->{json}{conflicts}, { same_email => 1 }, 'the conflicting check');
ok(!$u->{json}{conflicts}{probe}, 'the clean check is no conflict');
is_deeply(backend_db(), $before, 'nothing changed');
