# Cascades: "cascade" and "update" dependencies change the related records
# (before the main record), all of it is put back when any step fails,
# and one undo of the main record undoes the whole cascade.
use Test::SafeDelete;

# The guide's user deletion: posts and comments soft-deleted with the
# user, orders anonymised, active subscriptions canceled.
our $STORY = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" cascade;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" cascade;
        safedelete_dependency orders "/orders?customer_id=$safedelete_id" update;
        safedelete_dependency_set orders customer_name "Anonymous User";
        safedelete_dependency_set orders customer_email
                                  "deleted_${safedelete_id}@deleted.local";
        safedelete_dependency_set orders original_customer_id $safedelete_id;
        safedelete_dependency subscriptions
            "/subscriptions?user_id=$safedelete_id&status=active" update;
        safedelete_dependency_set subscriptions status canceled;
        safedelete_dependency_set subscriptions cancel_reason user_account_deleted;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# Deleting a category moves its posts to "Uncategorized" (1).
our $CATEGORY = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency posts "/posts?category_id=$safedelete_id" update;
        safedelete_dependency_set_json posts category_id 1;
        safedelete_dependency every_post "/posts" report;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# Hard mode: a post's comments are deleted with it.
our $HARD = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /api/ {
        safedelete          on;
        safedelete_mode     hard;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency comments "/comments?post_id=$safedelete_id" cascade;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /_safedelete/ { safedelete_api; }
_EOC_

# safedelete_dependency_limit: cascade and update targets count, block
# and report lookups do not.
our $LIMIT = <<'_EOC_';
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;

    location /l4/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency_limit 4;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" cascade;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" cascade;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /l5/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency_limit 5;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" cascade;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" cascade;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /report/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency_limit 2;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" cascade;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" report;
        safedelete_dependency orders
            "/orders?customer_id=$safedelete_id&status=pending" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /update/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency_limit 2;
        safedelete_dependency posts "/posts?author_id=$safedelete_id" cascade;
        safedelete_dependency subscriptions
            "/subscriptions?user_id=$safedelete_id" update;
        safedelete_dependency_set subscriptions status canceled;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }

    location /default/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" cascade;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
_EOC_

my $ENC = JSON::PP->new->canonical->allow_nonref;

# Differences between the backend's data and the seed, record by record
# and by id (a record deleted and created again may have moved in its
# table). Every seed field must hold its seed value (types included). A
# field the record gained is allowed only with strict => 0, and then only
# when null or restored_at/restored_by: what putting a record back with
# a PATCH may leave behind.
sub main::seed_diff {
    my ($db, $seed, %o) = @_;
    my @out;
    for my $coll (sort keys %$seed) {
        next if $o{only} && !grep { $_ eq $coll } @{ $o{only} };
        my %want = map { $ENC->encode($_->{id}) => $_ } @{ $seed->{$coll} };
        my %got  = map { $ENC->encode($_->{id}) => $_ } @{ $db->{$coll} || [] };
        for my $id (sort keys %want) {
            next if $o{skip} && $o{skip}{"$coll/$id"};
            my $g = $got{$id};
            if (!$g) { push @out, "$coll $id: missing"; next }
            push @out, map { "$coll $id: $_" }
                       Test::SafeDelete::json_mismatches($g, $want{$id});
            for my $k (sort keys %$g) {
                next if exists $want{$id}{$k};
                next if !$o{strict} && (!defined $g->{$k}
                                        || $k =~ /^restored_(?:at|by)$/);
                push @out, "$coll $id: gained $k = " . $ENC->encode($g->{$k});
            }
        }
        for my $id (sort keys %got) {
            push @out, "$coll $id: not in the seed" unless $want{$id};
        }
    }
    return @out;
}

sub main::seed_ok {
    my ($db, $seed, $name, %o) = @_;
    my @d = main::seed_diff($db, $seed, %o);
    splice @d, 20 if @d > 20;
    Test::SafeDelete::Flow::ok(!@d, $name) or Test::SafeDelete::Flow::diag(join "\n", @d);
    return !@d;
}

sub main::record {
    my ($db, $coll, $id) = @_;
    my ($r) = grep { $ENC->encode($_->{id}) eq $id } @{ $db->{$coll} || [] };
    return $r;
}

# "METHOD /path" of every request that changed something, in order
sub main::writes {
    return map { "$_->{method} " . ($_->{url} =~ s/\?.*//sr) }
           grep { $_->{method} ne 'GET' && $_->{method} ne 'HEAD' }
           @{ Test::SafeDelete::Flow::backend_requests() };
}

# the decoded JSON body of the backend request METHOD PATH
sub main::sent_body {
    my ($method, $path) = @_;
    my ($q) = grep { $_->{method} eq $method && $_->{url} eq $path }
              @{ Test::SafeDelete::Flow::backend_requests() };
    return undef unless $q;
    return ref $q->{body} ? $q->{body} : eval { JSON::PP::decode_json($q->{raw_body}) };
}

our $ISO = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$/;

run_tests();

__DATA__

=== TEST 1: the guide's story: deleting user 3 cascades, one undo restores it all
--- config eval: $::STORY
--- flow
my $seed = backend_db();
my %admin = ('X-User-Id' => '1', 'X-Admin' => '1');
my $d = http('DELETE', '/api/users/3', headers => \%admin);
is($d->{status}, 200, 'user 3 deleted');
my $tok = $d->{headers}{'safedelete-undo'};
like($tok // '', qr/^[A-Za-z0-9_-]{22}$/, 'undo token');
is($d->{headers}{'safedelete-cascaded'},
   'posts=2, comments=3, orders=1, subscriptions=1',
   'SafeDelete-Cascaded, in configuration order');

my $db = backend_db();
json_subset_ok(main::record($db, 'users', '3'),
               { name => 'Carol Creator', email => 'carol@example.com',
                 status => 'deleted', deleted_by => '1', deleted_at => '__ANY__' },
               'user 3 soft-deleted');
for my $p ([ posts => 2 ], [ posts => 3 ], [ comments => 1 ],
           [ comments => 2 ], [ comments => 3 ]) {
    my $rec = main::record($db, @$p);
    json_subset_ok($rec, { status => 'deleted', deleted_by => '1' },
                   "$p->[0]/$p->[1] soft-deleted");
    like($rec->{deleted_at} // '', $::ISO, "$p->[0]/$p->[1] deleted_at");
}
json_subset_ok(main::record($db, 'orders', '4'),
               { customer_id => 3, customer_name => 'Anonymous User',
                 customer_email => 'deleted_3@deleted.local',
                 original_customer_id => '3', status => 'delivered', total => 35 },
               'order 4 anonymised, customer_id unchanged');
json_subset_ok(main::record($db, 'subscriptions', '1'),
               { user_id => 3, plan => 'pro', status => 'canceled',
                 cancel_reason => 'user_account_deleted' },
               'subscription 1 canceled');
my %touched = map { $_ => 1 } qw(users/3 posts/2 posts/3 comments/1 comments/2
                                 comments/3 orders/4 subscriptions/1);
main::seed_ok($db, $seed, 'every other record untouched',
              strict => 1, skip => \%touched);

# what was sent
my @w = main::writes();
my ($main_at) = grep { $w[$_] eq 'PATCH /users/3' } 0 .. $#w;
ok(defined $main_at, 'the main record was PATCHed');
is_deeply([ sort @w[0 .. ($main_at // 0) - 1] ],
          [ sort map { "PATCH /$_" } grep { $_ ne 'users/3' } keys %touched ],
          'every related record was PATCHed once, all before the main record')
    or diag(explain(\@w));
is(scalar(@w), 8, 'nothing else was changed') or diag(explain(\@w));
my $body = main::sent_body('PATCH', '/posts/2');
is_deeply([ sort keys %{ $body || {} } ], [qw(deleted_at deleted_by status)],
          'cascade PATCH: the default soft fields');
is($body->{status}, 'deleted', 'cascade PATCH: status');
is($body->{deleted_by}, '1', 'cascade PATCH: deleted_by');
$body = main::sent_body('PATCH', '/orders/4');
is_deeply($body, { customer_name => 'Anonymous User',
                customer_email => 'deleted_3@deleted.local',
                original_customer_id => '3' },
          'update PATCH: the dependency_set fields only');
$body = main::sent_body('PATCH', '/subscriptions/1');
is_deeply($body, { status => 'canceled', cancel_reason => 'user_account_deleted' },
          'update PATCH of the subscription');

# audit: one delete.cascaded per related record
my $ev = audit_events();
my @casc = grep { $_->{event} eq 'delete.cascaded' } @$ev;
is_deeply([ sort map { "$_->{dependency}/$_->{id}" } @casc ],
          [ sort qw(posts/2 posts/3 comments/1 comments/2 comments/3 orders/4
                    subscriptions/1) ],
          'each related record audited as delete.cascaded')
    or diag(join "\n", map { my $e = $_;
                             join ' ', map { "$_=" . ($e->{$_} // '') }
                                       sort grep { !/^(?:snapshot|_id|time)$/ }
                                       keys %$e }
                       grep { $_->{event} eq 'delete.cascaded' } @$ev);
is_deeply([ sort map { "$_->{collection}/$_->{id}" } @casc ],
          [ sort qw(/posts/2 /posts/3 /comments/1 /comments/2 /comments/3
                    /orders/4 /subscriptions/1) ],
          'each entry names the related record by its collection and id');
ok(grep({ $_->{event} eq 'delete.soft' && $_->{id} eq '3' } @$ev),
   'the main delete audited');

# another user may not undo any of it
my $u = http('POST', "/_safedelete/undo/$tok", headers => { 'X-User-Id' => '5' });
is($u->{status}, 403, 'another user may not undo');
is_deeply(backend_db(), $db, 'a refused undo changes nothing');

# ONE undo restores the user and the whole cascade
$u = http('POST', "/_safedelete/undo/$tok", headers => \%admin);
is($u->{status}, 200, 'undo');
is($u->{json}{id}, 3, 'the answer is the restored user');
is($u->{headers}{'safedelete-restored'}, '7', 'SafeDelete-Restored: 7 related records');
ok(!exists $u->{headers}{'safedelete-restore-failed'}, 'no SafeDelete-Restore-Failed');
$db = backend_db();
json_subset_ok(main::record($db, 'users', '3'),
               { name => 'Carol Creator', email => 'carol@example.com',
                 status => 'active', deleted_at => undef, deleted_by => undef },
               'user 3 active again');
# Undo puts back what the cascade overwrote: each post and comment has
# its own status again (published, draft, visible), not a generic one.
for my $p ([ posts => 2 ], [ posts => 3 ], [ comments => 1 ],
           [ comments => 2 ], [ comments => 3 ]) {
    json_subset_ok(main::record($db, @$p), main::record($seed, @$p),
                   "$p->[0]/$p->[1] restored to its seed values");
    my $rec = main::record($db, @$p);
    ok(!defined $rec->{deleted_by}, "$p->[0]/$p->[1] deleted_by cleared");
}
my $o = main::record($db, 'orders', '4');
json_subset_ok($o, main::record($seed, 'orders', '4'), 'order 4 has its seed values again');
ok(!defined $o->{original_customer_id}, 'order 4: original_customer_id absent or null');
my $s = main::record($db, 'subscriptions', '1');
json_subset_ok($s, main::record($seed, 'subscriptions', '1'),
               'subscription 1 active again');
ok(!defined $s->{cancel_reason}, 'subscription 1: cancel_reason absent or null');
main::seed_ok($db, $seed, 'every other record still untouched',
              strict => 1, skip => \%touched);

# and only once
backend_clear_requests();
$u = http('POST', "/_safedelete/undo/$tok", headers => \%admin);
is($u->{status}, 409, 'a second undo is refused');
is($u->{json}{code}, 'UNDO_ALREADY_DONE', 'code');
is(scalar(main::writes()), 0, 'and changes nothing');
--- no_error_log
[error]



=== TEST 2: the guide's story: deleting category 3 moves its posts to category 1
--- config eval: $::CATEGORY
--- flow
my $seed = backend_db();
my $d = http('DELETE', '/api/categories/3', headers => { 'X-User-Id' => '1' });
is($d->{status}, 200, 'category 3 deleted');
is($d->{headers}{'safedelete-cascaded'}, 'posts=2',
   'SafeDelete-Cascaded names the update, not the report');
my $db = backend_db();
json_subset_ok(main::record($db, 'categories', '3'),
               { name => 'Tech', status => 'deleted', deleted_by => '1',
                 deleted_at => '__ANY__' }, 'category 3 soft-deleted');
for my $id (2, 5) {
    my %want = %{ main::record($seed, 'posts', $id) };
    json_subset_ok(main::record($db, 'posts', $id), { %want, category_id => 1 },
                   "post $id moved to category 1 (a number), nothing else changed");
}
is_deeply(main::sent_body('PATCH', '/posts/2'), { category_id => 1 },
          'the update PATCH carries the raw JSON value only');
main::seed_ok($db, $seed, 'everything else untouched', strict => 1,
              skip => { 'categories/3' => 1, 'posts/2' => 1, 'posts/5' => 1 });
my $ev = audit_events();
my @casc = grep { $_->{event} eq 'delete.cascaded' } @$ev;
is_deeply([ sort map { "$_->{dependency}/$_->{id}" } @casc ],
          [ 'posts/2', 'posts/5' ], 'both moves audited');
is_deeply([ map { $_->{collection} } @casc ], [ '/posts', '/posts' ],
          'in the collection of the posts');

my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '1' });
is($u->{status}, 200, 'undo');
$db = backend_db();
for my $id (2, 5) {
    json_subset_ok(main::record($db, 'posts', $id), main::record($seed, 'posts', $id),
                   "post $id back in category 3 (a number)");
}
json_subset_ok(main::record($db, 'categories', '3'),
               { name => 'Tech', status => undef, deleted_at => undef },
               'category 3 restored');
--- no_error_log
[error]



=== TEST 3: a related PATCH that fails: 502 CASCADE_FAILED, everything put back
--- config eval: $::STORY
--- backend_faults
[{"method": "PATCH", "path": "/comments/2", "status": 500,
  "body": {"error": "disk full"}}]
--- flow
my $seed = backend_db();
my $d = http('DELETE', '/api/users/3', headers => { 'X-User-Id' => '1', 'X-Admin' => '1' });
problem_ok($d, 502, 'CASCADE_FAILED', 'failed cascade');
my $f = $d->{json}{failed};
is(ref $f, 'ARRAY', 'failed is an array');
is(scalar(@{ $f || [] }), 1, 'one related change failed');
is($f->[0]{dependency}, 'comments', 'failed: dependency');
is("" . ($f->[0]{id} // ''), '2', 'failed: id');
is($f->[0]{status}, 500, 'failed: the backend status');
ok(!exists $d->{headers}{'safedelete-undo'}, 'no undo token');
ok(!exists $d->{headers}{'safedelete-cascaded'}, 'no SafeDelete-Cascaded');

my $db = backend_db();
is_deeply($db->{users}, $seed->{users}, 'users exactly as seeded: user 3 never touched');
main::seed_ok($db, $seed, 'every related record back to its seed values');
ok(!grep({ $_->{url} =~ m{^/users/3} && $_->{method} ne 'GET' } @{ backend_requests() }),
   'no change was sent for user 3');
unlike(redis('KEYS', 'safedelete:undo:*'), qr/undo/, 'no undo record');
ok(!grep({ $_->{event} =~ /^delete\.(?:soft|hard)$/ } @{ audit_events() }),
   'no delete audited');

# nothing is left half-done: the same delete works once the backend does
backend_faults([]);
$d = http('DELETE', '/api/users/3', headers => { 'X-User-Id' => '1', 'X-Admin' => '1' });
is($d->{status}, 200, 'the retry succeeds');
is($d->{headers}{'safedelete-cascaded'},
   'posts=2, comments=3, orders=1, subscriptions=1', 'and cascades it all');
is(backend_get('/comments/2')->{json}{status}, 'deleted', 'comment 2 deleted now');
--- error_log
CASCADE_FAILED



=== TEST 4: a failure anywhere in the cascade puts back what was done
--- config eval: $::STORY
--- flow
my $seed = backend_db();
my @cases = (
    [ 'posts', 2, { status => 503, body => 'unavailable' } ],
    [ 'posts', 3, { status => 500, body => '{}' } ],
    [ 'comments', 3, { status => 404, body => '{}' } ],
    [ 'orders', 4, { status => 500, body => '{}' } ],
    [ 'subscriptions', 1, { status => 409, body => '{"error":"locked"}' } ],
    [ 'comments', 1, { drop => JSON::PP::true() } ],
);
for my $c (@cases) {
    my ($dep, $id, $rule) = @$c;
    backend_reset();
    backend_faults([ { method => 'PATCH', path => "/$dep/$id", %$rule } ]);
    my $what = "$dep/$id " . ($rule->{status} // 'dropped');
    my $d = http('DELETE', '/api/users/3',
                 headers => { 'X-User-Id' => '1', 'X-Admin' => '1' });
    problem_ok($d, 502, 'CASCADE_FAILED', $what);
    my @f = @{ $d->{json}{failed} || [] };
    is(scalar(@f), 1, "$what: one failure reported");
    is($f[0]{dependency}, $dep, "$what: dependency");
    is("" . ($f[0]{id} // ''), "$id", "$what: id");
    is($f[0]{status}, $rule->{status}, "$what: status") if $rule->{status};
    my $db = backend_db();
    is_deeply($db->{users}, $seed->{users}, "$what: user 3 never touched");
    main::seed_ok($db, $seed, "$what: every related record put back");
    unlike(redis('KEYS', 'safedelete:undo:*'), qr/undo/, "$what: no undo record");
}



=== TEST 5: the 502 is sent only once everything is put back
--- config eval: $::STORY
--- backend_faults
[{"method": "PATCH", "path": "/comments/2", "status": 500, "body": "{}"},
 {"method": "PATCH", "path": "/posts/3", "times": 1},
 {"method": "PATCH", "path": "/posts/3", "delay_ms": 800}]
--- flow
# The first PATCH of post 3 (the cascade) goes through at once; the next
# one (putting it back) is held 800 ms by the backend. A client that has
# the 502 must find the data as it was: the module's own answer says the
# related records were put back.
my $seed = backend_db();
my $d = http('DELETE', '/api/users/3', headers => { 'X-User-Id' => '1', 'X-Admin' => '1' });
problem_ok($d, 502, 'CASCADE_FAILED', 'failed cascade');
my @patches = grep { $_->{method} eq 'PATCH' && $_->{url} eq '/posts/3' }
              @{ backend_requests() };
is(scalar(@patches), 2, 'post 3 was changed and put back');
main::seed_ok(backend_db(), $seed, 'the data is as seeded when the 502 arrives');



=== TEST 6: the backend refusing the main change puts the related records back
--- config eval: $::STORY
--- backend_faults
[{"method": "PATCH", "path": "/users/3", "status": 500,
  "body": {"error": "boom"}, "content_type": "application/json"}]
--- flow
my $seed = backend_db();
my $d = http('DELETE', '/api/users/3', headers => { 'X-User-Id' => '1', 'X-Admin' => '1' });
is($d->{status}, 500, "the backend's answer passes through");
json_subset_ok($d->{json}, { error => 'boom' }, "the backend's body");
ok(!exists $d->{headers}{'safedelete-undo'}, 'no undo token');
my @w = main::writes();
my ($main_at) = grep { $w[$_] eq 'PATCH /users/3' } 0 .. $#w;
ok(defined $main_at && $main_at > 0, 'related records were changed before the main PATCH')
    or diag(explain(\@w));
# The backend's answer is passed on as it comes: the put-back may still
# be under way when the client has it.
wait_for(sub { !main::seed_diff(backend_db(), $seed) }, timeout => 5);
my $db = backend_db();
is_deeply($db->{users}, $seed->{users}, 'users exactly as seeded');
main::seed_ok($db, $seed, 'every related record put back');
unlike(redis('KEYS', 'safedelete:undo:*'), qr/undo/, 'no undo record');
ok(grep({ $_->{event} eq 'delete.failed' } @{ audit_events() }), 'delete.failed audited');
--- error_log
backend answered 500 to the delete



=== TEST 7: hard mode: related records are DELETEd first; undo POSTs them all back
--- config eval: $::HARD
--- flow
my $seed = backend_db();
my $d = http('DELETE', '/api/posts/2', headers => { 'X-User-Id' => '1' });
is($d->{status}, 200, 'post 2 deleted');
is($d->{headers}{'safedelete-cascaded'}, 'comments=2', 'SafeDelete-Cascaded');
is(backend_get($_)->{status}, 404, "$_ is gone") for qw(/posts/2 /comments/4 /comments/5);
my @w = main::writes();
is_deeply([ sort @w[0, 1] ], [ 'DELETE /comments/4', 'DELETE /comments/5' ],
          'the comments were deleted first') or diag(explain(\@w));
is($w[2], 'DELETE /posts/2', 'then the post');
is(scalar(@w), 3, 'nothing else') or diag(explain(\@w));
main::seed_ok(backend_db(), $seed, 'every other record untouched', strict => 1,
              skip => { 'posts/2' => 1, 'comments/4' => 1, 'comments/5' => 1 });

backend_clear_requests();
my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '1' });
is($u->{status}, 200, 'undo');
is($u->{headers}{'safedelete-restored'}, '2', 'SafeDelete-Restored: 2');
main::seed_ok(backend_db(), $seed, 'post 2 and comments 4, 5 are back, field for field',
              strict => 1);
is_deeply([ sort grep { m{^POST} } main::writes() ],
          [ 'POST /comments', 'POST /comments', 'POST /posts' ],
          'created again with POSTs to their collections');
--- no_error_log
[error]



=== TEST 8: hard mode: a related DELETE that fails brings back those already deleted
--- config eval: $::HARD
--- backend_faults
[{"method": "DELETE", "path": "/comments/5", "status": 500, "body": "{}"}]
--- flow
my $seed = backend_db();
my $d = http('DELETE', '/api/posts/2', headers => { 'X-User-Id' => '1' });
problem_ok($d, 502, 'CASCADE_FAILED', 'failed hard cascade');
json_subset_ok($d->{json}{failed}, [ { dependency => 'comments', status => 500 } ],
               'the failed related delete');
ok(!grep({ $_ eq 'DELETE /posts/2' } main::writes()), 'the post was never deleted');
main::seed_ok(backend_db(), $seed, 'all records as seeded, field for field', strict => 1);
unlike(redis('KEYS', 'safedelete:undo:*'), qr/undo/, 'no undo record');
--- error_log
CASCADE_FAILED



=== TEST 9: a cascade may set extra fields on the related records
--- config
    safedelete_actor $http_x_user_id;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" cascade;
        safedelete_dependency_set comments moderation_note
                                  "author $safedelete_id deleted by $safedelete_actor";
        safedelete_dependency_set_json comments hidden true;
        safedelete_dependency_set_json comments meta '{"by": "$safedelete_actor", "n": 2}';
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/users/5
--- more_headers
X-User-Id: 1
--- error_code: 200
--- response_headers
SafeDelete-Cascaded: comments=1
--- backend_requests
GET /users/5
GET /comments?user_id=5
PATCH /comments/4
PATCH /users/5
--- backend
/comments/4 {"body": "Nice write-up.", "post_id": 2, "user_id": 5, "status": "deleted", "deleted_by": "1", "deleted_at": "__ANY__", "moderation_note": "author 5 deleted by 1", "hidden": true, "meta": {"by": "1", "n": 2}}
/comments/2 {"status": "visible", "deleted_at": null}
/users/5 {"status": "deleted"}
--- no_error_log
[error]



=== TEST 10: SafeDelete-Cascaded counts zero when there is nothing to cascade
--- config eval: $::STORY
--- request
DELETE /api/users/9
--- more_headers
X-User-Id: 9
--- error_code: 200
--- response_headers
SafeDelete-Cascaded: posts=0, comments=0, orders=0, subscriptions=0
--- backend_requests
GET /users/9
PATCH /users/9
--- backend
/users/9 {"status": "deleted", "deleted_by": "9"}
--- no_error_log
[error]



=== TEST 11: a blocking dependency stops the delete before anything cascades
--- config
    safedelete_actor $http_x_user_id;
    safedelete_admin $http_x_admin;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        safedelete_dependency comments "/comments?user_id=$safedelete_id" cascade;
        safedelete_dependency orders
            "/orders?customer_id=$safedelete_id&status=pending" block;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- request
DELETE /api/users/2
--- more_headers
X-User-Id: 2
--- error_code: 409
--- response_json
{"code": "HAS_DEPENDENCIES", "dependencies": {"comments": 1, "orders": 2},
 "blocked_by": ["orders"]}
--- response_headers
!SafeDelete-Cascaded
--- no_backend_requests
PATCH
DELETE
--- backend_unchanged



=== TEST 12: a cascade lookup that fails refuses with 503 and changes nothing
--- config eval: $::STORY
--- backend_faults
[{"method": "GET", "path": "/comments", "status": 500, "body": "{}"}]
--- request
DELETE /api/users/3
--- more_headers
X-User-Id: 1
X-Admin: 1
--- error_code: 503
--- response_json
{"code": "DEPENDENCY_CHECK_FAILED", "dependency": "comments", "success": false}
--- no_backend_requests
PATCH
PUT
POST
DELETE
--- backend_unchanged



=== TEST 13: dependency_limit: 5 related records over a limit of 4 is 409
--- config eval: $::LIMIT
--- request
DELETE /l4/users/3
--- more_headers
X-User-Id: 1
--- error_code: 409
--- response_headers
Content-Type: application/problem+json
--- response_json
{"type": "urn:safedelete:problem:too-many-dependents", "title": "__ANY__",
 "status": 409, "detail": "__ANY__", "code": "TOO_MANY_DEPENDENTS",
 "success": false, "error": "__ANY__",
 "dependencies": {"posts": 2, "comments": 3}, "limit": 4}
--- no_backend_requests
PATCH
PUT
POST
DELETE
--- backend_unchanged
--- redis
KEYS safedelete:undo:* => ^\s*$



=== TEST 14: dependency_limit: exactly the limit is allowed
--- config eval: $::LIMIT
--- request
DELETE /l5/users/3
--- more_headers
X-User-Id: 1
--- error_code: 200
--- response_headers
SafeDelete-Cascaded: posts=2, comments=3
--- backend
/users/3 {"status": "deleted"}
/comments/3 {"status": "deleted"}
--- no_error_log
[error]



=== TEST 15: dependency_limit: report and block lookups do not count, update ones do
--- config eval: $::LIMIT
--- flow
my $seed = backend_db();
my $r = http('DELETE', '/update/users/3', headers => { 'X-User-Id' => '1' });
problem_ok($r, 409, 'TOO_MANY_DEPENDENTS', '2 cascaded + 1 updated over 2');
json_subset_ok($r->{json}, { dependencies => { posts => 2, subscriptions => 1 },
                             limit => 2 }, 'counts and limit');
is_deeply(backend_db(), $seed, 'nothing changed');
is(scalar(main::writes()), 0, 'only reads reached the backend');

$r = http('DELETE', '/report/users/3', headers => { 'X-User-Id' => '1' });
is($r->{status}, 200, '2 cascaded within 2; 3 reported comments do not count');
is($r->{headers}{'safedelete-cascaded'}, 'posts=2', 'only the cascade in the header');
is(backend_get('/comments/1')->{json}{status}, 'visible', 'reported comments untouched');
--- no_error_log
[error]



=== TEST 16: dependency_limit defaults to 100 and counts X-Total-Count
--- config eval: $::LIMIT
--- flow
my $seed = backend_db();
my @many = map { { id => 1000 + $_, user_id => 9 } } 1 .. 101;
backend_faults([ { method => 'GET', path => '/comments', status => 200, body => \@many } ]);
my $r = http('DELETE', '/default/users/9', headers => { 'X-User-Id' => '1' });
problem_ok($r, 409, 'TOO_MANY_DEPENDENTS', '101 related records');
json_subset_ok($r->{json}, { dependencies => { comments => 101 }, limit => 100 },
               'default limit 100');

backend_faults([ { method => 'GET', path => '/comments', status => 200,
                   body => [ { id => 1, user_id => 9 } ],
                   headers => { 'X-Total-Count' => '5000' } } ]);
$r = http('DELETE', '/default/users/9', headers => { 'X-User-Id' => '1' });
problem_ok($r, 409, 'TOO_MANY_DEPENDENTS', 'X-Total-Count 5000');
json_subset_ok($r->{json}, { dependencies => { comments => 5000 }, limit => 100 },
               'the header is the count');
is_deeply(backend_db(), $seed, 'nothing changed');
is(scalar(main::writes()), 0, 'only reads reached the backend');
