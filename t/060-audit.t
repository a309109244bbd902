# Every step lands in the Redis audit stream, never with a credential.
use Test::SafeDelete;

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

=== TEST 1: a soft delete and its undo carry the SPEC fields
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7',
             'Authorization' => 'Bearer top-secret-credential' });
is($d->{status}, 200, 'deleted');
my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '7',
                          'Authorization' => 'Bearer top-secret-credential' });
is($u->{status}, 200, 'undone');
wait_for(sub { redis('XLEN', 'safedelete:audit') + 0 >= 2 });
my $ev = audit_events();
is(scalar(@$ev), 2, 'two events');
my ($del, $undo) = @$ev;
is($del->{event}, 'delete.soft', 'delete event');
is($undo->{event}, 'undo', 'undo event');
for my $f (qw(time request_id actor client method uri collection id mode status snapshot)) {
    ok(defined $del->{$f} && length $del->{$f}, "delete event has $f");
}
like($del->{time}, qr/^\d{4}-\d\d-\d\dT[\d:.]+Z$/, 'ISO time');
like($del->{request_id}, qr/^[0-9a-f]{32}$/, 'request id');
is($del->{actor}, '7', 'actor');
is($del->{client}, '127.0.0.1', 'client address');
is($del->{method}, 'DELETE', 'method');
is($del->{uri}, '/api/users/7', 'uri');
is($del->{collection}, '/users', 'collection');
is($del->{id}, '7', 'id');
is($del->{mode}, 'soft', 'mode');
is($del->{status}, '200', 'upstream status');
is(decode_json($del->{snapshot})->{email}, 'grace@example.com', 'snapshot');
is($undo->{id}, '7', 'undo names the record');
is($undo->{method}, 'POST', 'undo method');
unlike(redis('XRANGE', 'safedelete:audit', '-', '+'), qr/top-secret|Bearer/,
       'no credential in the stream');
unlike(join('', map { redis('HGETALL', $_) } split /\n/, redis('KEYS', 'safedelete:*')),
       qr/top-secret|Bearer/, 'no credential anywhere in Redis');
--- no_error_log
[error]



=== TEST 2: refusals are audited as delete.denied with their code
--- config eval: $::CONF
--- flow
http('DELETE', '/api/users/999', headers => { 'X-User-Id' => '2' });
http('DELETE', '/api/users/%2e%2e%2e', headers => { 'X-User-Id' => '2' });
# the audit entry is written beside the answer, not before it
wait_for(sub { redis('XLEN', 'safedelete:audit') + 0 >= 2 });
my $ev = audit_events();
is(scalar(@$ev), 2, 'two events');
is($ev->[0]{event}, 'delete.denied', 'not found is a denial');
is($ev->[0]{code}, 'NOT_FOUND', 'with its code');
is($ev->[0]{status}, '404', 'and status');
is($ev->[1]{code}, 'INVALID_ID', 'bad id audited too');



=== TEST 3: the stream is capped
--- http_config
    safedelete_audit_maxlen 10;
--- config eval: $::CONF
--- flow
for my $i (1 .. 300) {
    http('DELETE', '/api/users/' . (1 + $i % 10), headers => { 'X-User-Id' => '1' });
}
my $n = redis('XLEN', 'safedelete:audit') + 0;
cmp_ok($n, '<', 300, "capped near the limit ($n entries kept of 300)");
--- no_error_log
[error]



=== TEST 4: the key prefix is configurable
--- http_config
    safedelete_key_prefix "app1:";
--- config eval: $::CONF
--- flow
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
is($d->{status}, 200, 'deleted');
wait_for(sub { redis('XLEN', 'app1:audit') + 0 >= 1 });
is(redis('XLEN', 'app1:audit') + 0, 1, 'audit under the prefix');
like(redis('KEYS', 'app1:undo:*'), qr/^app1:undo:/, 'undo record under the prefix');
is(redis('XLEN', 'safedelete:audit') + 0, 0, 'nothing under the default prefix');
my $u = http('POST', '/_safedelete/undo/' . $d->{headers}{'safedelete-undo'},
             headers => { 'X-User-Id' => '7' });
is($u->{status}, 200, 'undo finds it');
--- no_error_log
[error]



=== TEST 5: $safedelete_decision and friends in log_format
--- http_config
    log_format sd '$request_method $uri $status decision=$safedelete_decision '
                  'id=$safedelete_id collection=$safedelete_collection '
                  'actor=$safedelete_actor mode=$safedelete_mode '
                  'undo=$safedelete_undo_token';
--- config
    safedelete_actor $http_x_user_id;
    access_log $TEST_NGINX_TMP_DIR/decisions.log sd;
    location /api/ {
        safedelete          on;
        safedelete_upstream http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
        proxy_pass          http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/;
    }
--- flow
my $d = http('DELETE', '/api/users/7', headers => { 'X-User-Id' => '7' });
http('DELETE', '/api/users/999', headers => { 'X-User-Id' => '7' });
http('GET', '/api/users/1');
my $log = wait_for(sub {
    open my $fh, '<', "$ENV{TEST_NGINX_TMP_DIR}/decisions.log" or return;
    my @l = <$fh>;
    return @l >= 3 ? \@l : undef;
});
ok($log, 'three lines logged');
my $tok = $d->{headers}{'safedelete-undo'};
# two workers write their lines as each request ends: find them by request
my ($soft) = grep { m{^PATCH } } @$log;
my ($refused) = grep { m{^DELETE } } @$log;
my ($get) = grep { m{^GET } } @$log;
like($soft // '', qr{^PATCH /api/users/7 200 decision=soft id=7 collection=/users actor=7 mode=soft undo=\Q$tok\E$},
     'a soft delete');
like($refused // '', qr{^DELETE /api/users/999 404 decision=refused id=999 }, 'a refusal');
like($get // '', qr{^GET /api/users/1 200 decision=- id=- }, 'other methods: nothing');
--- no_error_log
[error]
