# Configurations: the shipped conf.d files and bad configurations, as
# nginx -t sees them.
use Test::SafeDelete;
use File::Temp qw(tempdir);


sub main::conf_d {
    my ($name) = @_;
    my $file = "$ENV{TEST_NGINX_REPO}/conf.d/$name";
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    my $text = <$fh>;
    # no DNS here: the example's backend host becomes the loopback
    $text =~ s/[a-z0-9-]+\.n7\.xano\.io/127.0.0.1/g;
    # ports of the examples may be taken on this machine: nginx -t only
    # parses, it binds nothing
    return $text;
}

run_tests();

__DATA__

=== TEST 1: the shipped conf.d files pass nginx -t
--- config
--- flow
my $dir = $ENV{TEST_NGINX_TMP_DIR};
open my $fh, '>', "$dir/safedelete.key" or die $!;
print $fh "0123456789abcdef0123456789abcdef\n";
close $fh;
for my $f ('json-server-demo.conf', 'xano.conf', 'production.conf') {
    my $text = main::conf_d($f);
    # the production example's paths, on a test machine
    $text =~ s{/etc/nginx/safedelete\.key}{$dir/safedelete.key}g;
    $text =~ s{/var/log/nginx/}{$dir/}g;
    if ($text =~ /ssl_certificate/) {
        system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=t "
               . "-keyout $dir/t.key -out $dir/t.pem >/dev/null 2>&1") == 0
            or die "openssl: $?";
        $text =~ s{/etc/ssl/certs/ssl-cert-snakeoil\.pem}{$dir/t.pem}g;
        $text =~ s{/etc/ssl/private/ssl-cert-snakeoil\.key}{$dir/t.key}g;
    }
    my ($ok, $out) = nginx_t($text);
    ok($ok, "$f passes nginx -t") or diag($out);
}



=== TEST 2: safedelete without safedelete_redis is refused
--- config
--- flow
my ($ok, $out) = nginx_t(
    "server { listen 127.0.0.1:1; location / { safedelete on; } }");
ok(!$ok, 'refused');
like($out, qr/"safedelete_redis" is not set/, 'says why');



=== TEST 3: bad directive values are refused with a clear message
--- config
--- flow
my @cases = (
    ['safedelete_redis http://x;', qr/invalid redis URL/],
    ['safedelete_redis redis://127.0.0.1:99999;', qr/invalid redis URL/],
    ["safedelete_redis redis://127.0.0.1;\n"
     . "server { location / { safedelete_upstream ftp://x/; } }",
     qr/must start with "http:\/\/"/],
    ["safedelete_redis redis://127.0.0.1;\n"
     . "server { location / { safedelete_mode maybe; } }",
     qr/invalid value "maybe"/],
    ["safedelete_redis redis://127.0.0.1;\n"
     . "server { location / { safedelete_mode deferred; } }",
     qr/invalid value "deferred"/],
    ["safedelete_redis redis://127.0.0.1;\n"
     . "server { location / { safedelete_soft_method GET; } }",
     qr/invalid value "GET"/],
    ["safedelete_redis redis://127.0.0.1;\n"
     . "server { location / { safedelete_api; safedelete_api; } }",
     qr/is duplicate/],
);
for my $c (@cases) {
    my ($ok, $out) = nginx_t($c->[0]);
    ok(!$ok, "refused: $c->[0]");
    like($out, $c->[1], 'message') or diag($out);
}



=== TEST 4: a module loaded but unused costs no Redis connection
--- config
    location / { return 200 "ok\n"; }
--- no_default_redis
--- request
GET /
--- response_body
ok
--- no_error_log
safedelete
