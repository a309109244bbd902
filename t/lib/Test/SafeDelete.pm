package Test::SafeDelete;

# Data-driven nginx tests for ngx_safedelete_module, in the manner of
# openresty's Test::Nginx: a test file is Test::Base blocks, each block
# gets a fresh nginx, a flushed Redis and a reset json-server backend.
#
# Per test file: one redis-server and one backend (t/backend/server.js) on
# free loopback ports, stopped at the end (also on die and on signals).
# Per block: FLUSHALL, POST /__reset, write nginx.conf, start nginx, run
# the --- flow and/or --- request(s), stop nginx gracefully, then check.
#
# Environment:
#   TEST_NGINX_MODULE        the .so to load (default build/ngx_http_safedelete_module.so)
#   TEST_NGINX_NO_MODULE=1   plain nginx: no load_module, no default safedelete_redis
#   TEST_NGINX_USE_VALGRIND=1  nginx under valgrind memcheck (t/valgrind.supp)
#   TEST_NGINX_RELOAD=1      SIGHUP nginx between the requests of a block
#   TEST_NGINX_KEEP=1        keep the per-file tmp dir (path is printed)
#   TEST_NGINX_BINARY        nginx binary (default /usr/sbin/nginx)
#   TEST_NGINX_VERBOSE=1     note() each step
#
# Sections and flow helpers: t/README.md.

use strict;
use warnings;

use Test::Base ();
use Test::More ();
use B ();
use Config ();
use Cwd qw(abs_path);
use Errno ();
use File::Basename qw(basename dirname);
use File::Copy ();
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our $REPO = abs_path(dirname(__FILE__) . '/../../..');

our $NGINX    = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $MODULE   = $ENV{TEST_NGINX_MODULE}
                || "$REPO/build/ngx_http_safedelete_module.so";
our $NO_MODULE = $ENV{TEST_NGINX_NO_MODULE} ? 1 : 0;
our $MODULE_LOADED = $MODULE;    # the copy nginx loads, see run_tests
our $VALGRIND  = $ENV{TEST_NGINX_USE_VALGRIND} ? 1 : 0;
our $RELOAD    = $ENV{TEST_NGINX_RELOAD} ? 1 : 0;
our $KEEP      = $ENV{TEST_NGINX_KEEP} ? 1 : 0;
our $VERBOSE   = $ENV{TEST_NGINX_VERBOSE} ? 1 : 0;

# valgrind makes everything ~6x slower: scale every wait by this.
our $SLOW = $VALGRIND ? 6 : 1;
our $START_TIMEOUT = $VALGRIND ? 60 : 10;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;
my $JSON_PRETTY = JSON::PP->new->utf8->canonical->allow_nonref->pretty;

# ---------------------------------------------------------------------------
# import: the test file becomes a Test::Base script that also has run_tests
# ---------------------------------------------------------------------------

sub import {
    my $caller = caller;
    {
        no strict 'refs';
        *{"${caller}::run_tests"} = \&run_tests;
    }
    # Test::Base's import exports blocks(), is(), ... and Test::More's
    # functions into the caller, and reads the caller's __DATA__.
    @_ = ('Test::Base');
    goto &Test::Base::import;
}

# ---------------------------------------------------------------------------
# per-file state
# ---------------------------------------------------------------------------

my %CHILD;          # pid => name: every process we started, for cleanup
my %USED_PORT;      # ports handed out in this process
my $FILE_TMP;       # per-file tmp dir
my %REDIS;          # port, pid, dir, log
my %BACKEND;        # port, pid, log
my $SERVER_PORT;    # main nginx port (same for every block)
my $SEED;           # decoded t/backend/seed.json
our $CUR;           # the block being run: see _run_block
my $CLEANED = 0;

# ---------------------------------------------------------------------------
# run_tests
# ---------------------------------------------------------------------------

sub run_tests {
    _install_signal_handlers();
    _check_prerequisites();

    # Ports and env first: --- xxx eval filters run inside blocks() and may
    # read $ENV{TEST_NGINX_*}.
    $FILE_TMP = tempdir('safedelete-t-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    $REDIS{port}   = _free_port();
    $BACKEND{port} = _free_port();
    $SERVER_PORT   = _free_port();
    $ENV{TEST_NGINX_SERVER_PORT}  = $SERVER_PORT;
    $ENV{TEST_NGINX_BACKEND_PORT} = $BACKEND{port};
    $ENV{TEST_NGINX_REDIS_PORT}   = $REDIS{port};
    $ENV{TEST_NGINX_REPO}         = $REPO;
    $ENV{TEST_NGINX_MODULE}       = $MODULE;
    $ENV{TEST_NGINX_TMP_DIR}      = $FILE_TMP;

    # nginx loads a private copy of the module: "make" replaces the .so
    # with cp, which rewrites the file in place, and every nginx that has
    # the old one mapped then dies with SIGSEGV (seen while a rebuild ran
    # alongside the tests).
    if (!$NO_MODULE) {
        $MODULE_LOADED = "$FILE_TMP/" . basename($MODULE);
        File::Copy::copy($MODULE, $MODULE_LOADED)
            or die "copy $MODULE to $MODULE_LOADED: $!";
    }

    _normalize_spec();
    my @blocks = Test::Base::blocks();
    # Test::Base's END block runs run_compare() unless a plan was declared;
    # with done_testing there is none, so drop the spec now that the block
    # list is cached: run_compare() then returns at once.
    Test::Base::default_object()->spec(undef);

    _start_redis();
    _start_backend();

    for my $block (@blocks) {
        _run_block($block);
    }

    _cleanup_all();
    Test::More::done_testing();
}

# Test::Base reads "--- workers 2" as section "workers" with a filter
# named "2"; accept that spelling for the one-value sections by turning it
# into "--- workers: 2" before the blocks are parsed.
sub _normalize_spec {
    my $obj = Test::Base::default_object();
    my $spec = $obj->spec;
    return unless defined $spec;
    $spec =~ s{^(---[ \t]+(?:workers|wait|timeout|error_code|log_level))[ \t]+
               (\d[\d.]*|debug|info|notice|warn|error|crit|alert|emerg)[ \t]*$}
              {$1: $2}mgx;
    $obj->spec($spec);
}

sub _check_prerequisites {
    my @missing;
    push @missing, "$NGINX (nginx binary)" unless -x $NGINX;
    push @missing, 'redis-server' unless _which('redis-server');
    push @missing, 'redis-cli'    unless _which('redis-cli');
    push @missing, 'node'         unless _which('node');
    push @missing, 'valgrind'     if $VALGRIND && !_which('valgrind');
    push @missing, "$REPO/t/backend/node_modules/json-server "
        . "(run: cd t/backend && npm ci)"
        unless -d "$REPO/t/backend/node_modules/json-server";
    push @missing, "$MODULE (run: make, or set TEST_NGINX_NO_MODULE=1)"
        if !$NO_MODULE && !-f $MODULE;
    return unless @missing;
    Test::More::BAIL_OUT("missing: " . join('; ', @missing));
}

sub _which {
    my ($prog) = @_;
    for my $dir (split /:/, ($ENV{PATH} || '/usr/bin:/bin')) {
        return "$dir/$prog" if -x "$dir/$prog";
    }
    return;
}

sub _note { Test::More::note(@_) if $VERBOSE }

# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------

# prctl(PR_SET_PDEATHSIG): a child we start gets SIGTERM if perl dies
# without running END (SIGKILL, OOM). Only where the syscall number is known.
my %PRCTL_NR = (x86_64 => 157, aarch64 => 167, i386 => 172, i686 => 172);
my ($ARCH) = $Config::Config{archname} =~ /^([^-]+)/;

sub _spawn {
    my (%a) = @_;    # name, cmd => [...], log => file
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        # Own process group, so one kill reaches nginx's workers too and a
        # Ctrl-C on the terminal reaches only perl, which then cleans up.
        POSIX::setpgid(0, 0);
        syscall($PRCTL_NR{$ARCH}, 1, 15) if $ARCH && $PRCTL_NR{$ARCH};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $a{log} or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        { no warnings 'exec'; exec { $a{cmd}[0] } @{ $a{cmd} }; }
        print STDERR "exec $a{cmd}[0]: $!\n";
        POSIX::_exit(127);
    }
    POSIX::setpgid($pid, $pid);    # both sides, against the race
    $CHILD{$pid} = $a{name};
    _note("started $a{name} pid $pid: @{ $a{cmd} }");
    return $pid;
}

# Wait for $pid to exit; returns its wait status, or undef on timeout.
sub _wait_exit {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || ($r == -1 && $! == Errno::ECHILD)) {
            my $status = $r == $pid ? $? : 0;
            delete $CHILD{$pid};
            return $status;
        }
        return undef if time > $deadline;
        sleep 0.01;
    }
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid;
    my $r = waitpid($pid, WNOHANG);
    if ($r == $pid || $r == -1) {
        delete $CHILD{$pid};
        return 0;
    }
    return 1;
}

sub _group_alive { my ($pgid) = @_; return kill(0, -$pgid) ? 1 : 0 }

# Signal, wait, then SIGKILL the whole process group. Returns 1 when the
# process exited by itself within $timeout.
sub _stop_process {
    my ($pid, $sig, $timeout) = @_;
    return 1 unless $pid;
    kill $sig, $pid;
    my $st = _wait_exit($pid, $timeout);
    if (_group_alive($pid)) {
        kill 'KILL', -$pid;
        _wait_exit($pid, 2) unless defined $st;
    }
    return defined $st ? 1 : 0;
}

sub _cleanup_all {
    return if $CLEANED++;
    local $?;    # END must not change the exit status of the test
    for my $inst (_all_nginx()) {
        _stop_process($inst->{pid}, 'TERM', 5) if $inst->{pid};
    }
    _stop_process($BACKEND{pid}, 'TERM', 5) if $BACKEND{pid};
    _stop_process($REDIS{pid}, 'TERM', 5)   if $REDIS{pid};
    for my $pid (keys %CHILD) {    # anything left
        kill 'KILL', -$pid;
        kill 'KILL', $pid;
        _wait_exit($pid, 2);
    }
    if ($FILE_TMP && -d $FILE_TMP) {
        if ($KEEP) {
            Test::More::diag("TEST_NGINX_KEEP: files kept in $FILE_TMP");
        } else {
            remove_tree($FILE_TMP);
        }
    }
}

sub _install_signal_handlers {
    for my $sig (qw(INT TERM HUP QUIT)) {
        $SIG{$sig} = sub {
            print STDERR "# caught SIG$sig, stopping nginx, redis and backend\n";
            _cleanup_all();
            $CLEANED = 1;
            exit 128 + ($sig eq 'INT' ? 2 : $sig eq 'TERM' ? 15 : $sig eq 'HUP' ? 1 : 3);
        };
    }
    $SIG{PIPE} = 'IGNORE';    # a peer closing early must not kill the test
}

END { _cleanup_all() if $FILE_TMP }

# ---------------------------------------------------------------------------
# ports and sockets
# ---------------------------------------------------------------------------

# Random ports below Linux's ephemeral range (32768+), so an outgoing
# connection cannot be holding the port we pick; a bind proves it free.
sub _free_port {
    for (1 .. 500) {
        my $port = 20000 + int(rand(12000));
        next if $USED_PORT{$port};
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => $port,
            Proto => 'tcp', Listen => 1, ReuseAddr => 0,
        ) or next;
        close $s;
        $USED_PORT{$port} = 1;
        return $port;
    }
    die "no free loopback port found";
}

sub _can_connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1,
    ) or return 0;
    close $s;
    return 1;
}

# Is something listening on 127.0.0.1:$port? Read from /proc/net/tcp
# rather than connecting: a probe connection would put a "client closed
# connection while waiting for request" line into nginx's error log.
sub _is_listening {
    my ($port) = @_;
    my $tcp = _read_file('/proc/net/tcp');
    return _can_connect($port) unless defined $tcp;
    my $want = sprintf('0100007F:%04X', $port);
    my $any  = sprintf('00000000:%04X', $port);
    for my $l (split /\n/, $tcp) {
        my (undef, $local, undef, $st) = split ' ', $l;
        next unless defined $st && $st eq '0A';
        return 1 if $local eq $want || $local eq $any;
    }
    return 0;
}

# Poll until $check->() is true. Fails early when $pid (if given) exits.
sub _wait_until {
    my (%a) = @_;    # check, timeout, pid
    my $deadline = time + $a{timeout};
    while (time < $deadline) {
        return 1 if $a{check}->();
        return 0 if $a{pid} && !_alive($a{pid});
        sleep 0.02;
    }
    return $a{check}->() ? 1 : 0;
}

# ---------------------------------------------------------------------------
# redis
# ---------------------------------------------------------------------------

sub _start_redis {
    $REDIS{dir} ||= "$FILE_TMP/redis";
    $REDIS{log} ||= "$FILE_TMP/redis.log";
    make_path($REDIS{dir});
    $REDIS{pid} = _spawn(
        name => 'redis-server',
        log  => $REDIS{log},
        cmd  => [ 'redis-server', '--port', $REDIS{port}, '--bind', '127.0.0.1',
                  '--save', '', '--appendonly', 'no', '--dir', $REDIS{dir},
                  '--daemonize', 'no' ],
    );
    my $up = _wait_until(
        check   => sub { (_redis_cmd('PING') // '') eq 'PONG' },
        timeout => 10, pid => $REDIS{pid},
    );
    die "redis-server did not start on port $REDIS{port}:\n" . _tail($REDIS{log}, 20)
        unless $up;
}

sub _stop_redis {
    return 1 unless $REDIS{pid};
    my $ok = _stop_process($REDIS{pid}, 'TERM', 10);
    delete $REDIS{pid};
    return $ok;
}

# A minimal RESP client: enough for PING and FLUSHALL without forking
# redis-cli for every block.
sub _redis_cmd {
    my (@args) = @_;
    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $REDIS{port}, Proto => 'tcp', Timeout => 2,
    ) or return undef;
    my $req = '*' . @args . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
    print {$s} $req;
    my $sel = IO::Select->new($s);
    my $line = '';
    while ($line !~ /\r\n/) {
        return undef unless $sel->can_read(5);
        my $n = sysread($s, $line, 4096, length $line);
        return undef unless $n;
    }
    close $s;
    return $1 if $line =~ /^[+:](.*?)\r\n/;
    return "ERROR: $1" if $line =~ /^-(.*?)\r\n/;
    return $line;
}

# redis-cli --raw, stdout and stderr together.
sub _redis_cli {
    my (@args) = @_;
    return _capture('redis-cli', '-h', '127.0.0.1', '-p', $REDIS{port}, '--raw', @args);
}

sub _capture {
    my (@cmd) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $r;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $w;
        open STDERR, '>&', $w;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    close $w;
    local $/;
    my $out = <$r>;
    close $r;
    waitpid($pid, 0);
    return defined $out ? $out : '';
}

# ---------------------------------------------------------------------------
# backend (json-server)
# ---------------------------------------------------------------------------

my $HTTP = HTTP::Tiny->new(
    timeout    => 10,
    keep_alive => 0,
    # the backend neither logs nor faults the harness's own reads
    default_headers => { 'X-SafeDelete-Harness' => '1' },
);

sub _start_backend {
    $BACKEND{log} ||= "$FILE_TMP/backend.log";
    $BACKEND{pid} = _spawn(
        name => 'backend',
        log  => $BACKEND{log},
        cmd  => [ 'node', "$REPO/t/backend/server.js", '--port', $BACKEND{port},
                  '--host', '127.0.0.1', '--seed', "$REPO/t/backend/seed.json" ],
    );
    my $up = _wait_until(
        check   => sub { _backend('GET', '/__faults')->{status} == 200 },
        timeout => 15, pid => $BACKEND{pid},
    );
    die "backend did not start on port $BACKEND{port}:\n" . _tail($BACKEND{log}, 20)
        unless $up;
}

sub _backend {
    my ($method, $path, $body) = @_;
    my $url = "http://127.0.0.1:$BACKEND{port}$path";
    my %opt;
    if (defined $body) {
        $opt{content} = ref $body ? $JSON->encode($body) : $body;
        $opt{headers} = { 'Content-Type' => 'application/json' };
    }
    my $res = $HTTP->request($method, $url, \%opt);
    my $json;
    if (defined $res->{content} && length $res->{content}) {
        $json = eval { $JSON->decode($res->{content}) };
    }
    return { status => $res->{status}, body => $res->{content}, json => $json };
}

sub _seed {
    return $SEED ||= do {
        open my $fh, '<', "$REPO/t/backend/seed.json" or die "seed.json: $!";
        local $/;
        $JSON->decode(scalar <$fh>);
    };
}

# ---------------------------------------------------------------------------
# nginx instances
# ---------------------------------------------------------------------------

# An instance: {prefix, port, pid, main_config, http_config, config,
# workers, log_level, no_default_redis, name}.
sub _all_nginx {
    return () unless $CUR;
    return grep { $_ } ($CUR->{nginx}, @{ $CUR->{extra} || [] });
}

sub _expand {
    my ($text) = @_;
    return $text unless defined $text && !ref $text;
    $text =~ s/\$(TEST_NGINX_[A-Z0-9_]+)/defined $ENV{$1} ? $ENV{$1} : "\$$1"/ge;
    return $text;
}

sub _nginx_conf_text {
    my ($inst) = @_;
    my $p = $inst->{prefix};
    my $main = _expand($inst->{main_config} // '');
    my $http = _expand($inst->{http_config} // '');
    my $srv  = _expand($inst->{config} // '');
    my @c;
    push @c, "load_module $MODULE_LOADED;" unless $NO_MODULE;
    # As root, nginx would run its workers as "nobody", which cannot enter
    # the 0700 tmp dirs: workers run as root instead (only for tests).
    push @c, "user root;" if $> == 0 && $main !~ /^\s*user\s/m;
    push @c, "worker_processes $inst->{workers};",
             "daemon off;",
             "master_process on;",
             "pid $p/logs/nginx.pid;",
             "lock_file $p/logs/nginx.lock;",
             "error_log $p/logs/error.log $inst->{log_level};",
             $main,
             "events { worker_connections 1024; }",
             "http {",
             "    access_log $p/logs/access.log;",
             "    client_body_temp_path $p/tmp/client_body;",
             "    proxy_temp_path $p/tmp/proxy;",
             "    fastcgi_temp_path $p/tmp/fastcgi;",
             "    uwsgi_temp_path $p/tmp/uwsgi;",
             "    scgi_temp_path $p/tmp/scgi;";
    push @c, "    safedelete_redis redis://127.0.0.1:$REDIS{port};"
        unless $NO_MODULE || $inst->{no_default_redis}
               || "$http\n$srv" =~ /^\s*safedelete_redis\s/m;
    push @c, $http,
             "    server {",
             "        listen 127.0.0.1:$inst->{port};",
             "        server_name localhost;",
             $srv,
             "    }",
             "}";
    return join("\n", @c) . "\n";
}

sub _write_nginx_conf {
    my ($inst) = @_;
    my $p = $inst->{prefix};
    make_path("$p/conf", "$p/logs", "$p/tmp");
    _write_file("$p/conf/nginx.conf", _nginx_conf_text($inst));
}

sub _nginx_cmd {
    my ($inst) = @_;
    my $p = $inst->{prefix};
    my @cmd = ($NGINX, '-p', "$p/", '-c', "$p/conf/nginx.conf");
    if ($VALGRIND) {
        unshift @cmd, 'valgrind', '--quiet', '--num-callers=30',
            '--leak-check=full', '--show-leak-kinds=definite',
            '--errors-for-leak-kinds=definite',
            "--log-file=$p/logs/valgrind.%p.log",
            "--suppressions=$REPO/t/valgrind.supp";
    }
    return @cmd;
}

# Start an instance; returns '' on success, else an error text.
sub _start_nginx {
    my ($inst) = @_;
    _write_nginx_conf($inst);
    my $p = $inst->{prefix};
    unlink "$p/logs/nginx.pid";
    $inst->{pid} = _spawn(name => $inst->{name}, log => "$p/logs/stderr.log",
                          cmd => [ _nginx_cmd($inst) ]);
    # The pid file is written after the listening sockets are open, so it
    # tells our nginx from another process that happens to hold the port.
    my $up = _wait_until(
        check => sub {
            my $pidtxt = _read_file("$p/logs/nginx.pid") // '';
            $pidtxt =~ /^(\d+)/ && $1 == $inst->{pid} && _is_listening($inst->{port});
        },
        timeout => $START_TIMEOUT, pid => $inst->{pid},
    );
    return '' if $up;
    my $why = _alive($inst->{pid}) ? "not listening after ${START_TIMEOUT}s" : 'exited';
    _stop_process($inst->{pid}, 'KILL', 2) if _alive($inst->{pid});
    $inst->{pid} = undef;
    return "nginx $why\n--- conf/nginx.conf:\n" . _read_file("$p/conf/nginx.conf")
         . "--- stderr:\n" . (_read_file("$p/logs/stderr.log") // '')
         . "--- error.log:\n" . _tail("$p/logs/error.log", 30);
}

# Graceful stop: SIGQUIT, wait for the master; returns '' or an error text.
sub _stop_nginx {
    my ($inst) = @_;
    return '' unless $inst->{pid};
    my $pid = $inst->{pid};
    $inst->{pid} = undef;
    kill 'QUIT', $pid;
    my $timeout = 10 * $SLOW;
    my $st = _wait_exit($pid, $timeout);
    my $err = '';
    if (!defined $st) {
        $err = "nginx master $pid did not exit ${timeout}s after SIGQUIT; killed";
        kill 'KILL', -$pid;
        _wait_exit($pid, 5);
    } elsif ($st & 127) {
        $err = "nginx master $pid was killed by signal " . ($st & 127)
             . ($st & 128 ? ' (core dumped)' : '');
    } elsif ($st != 0) {
        $err = "nginx master $pid exited with status " . ($st >> 8);
    }
    # The master waits for its workers before it exits: anything still in
    # its process group is a stray process.
    if (_wait_until(check => sub { !_group_alive($pid) }, timeout => 2)) {
        # nothing left
    } else {
        kill 'KILL', -$pid;
        $err .= ($err ? "; " : '') . "processes of nginx $pid survived the master";
    }
    return $err;
}

# Direct children of $pid (nginx workers, cache processes), from /proc.
sub _children {
    my ($ppid) = @_;
    my @kids;
    opendir my $d, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my $stat = _read_file("/proc/$pid/stat") // next;
        # field 2 (comm) may hold spaces and parens: parse after the last ')'
        my ($rest) = $stat =~ /\)\s+(.*)$/s or next;
        my (undef, $pp) = split ' ', $rest;
        push @kids, $pid if $pp == $ppid;
    }
    return @kids;
}

# SIGHUP; wait until $workers new workers run and the old ones are gone.
sub _reload_nginx {
    my ($inst) = @_;
    my %old = map { $_ => 1 } _children($inst->{pid});
    kill 'HUP', $inst->{pid};
    my $started = _wait_until(
        check => sub {
            my @new = grep { !$old{$_} } _children($inst->{pid});
            @new >= $inst->{workers};
        },
        timeout => $START_TIMEOUT, pid => $inst->{pid},
    );
    return 0 unless $started;
    # Old workers finish their requests first; idle ones leave at once.
    _wait_until(
        check => sub { !grep { $old{$_} } _children($inst->{pid}) },
        timeout => 5 * $SLOW,
    );
    # A forked worker needs a moment to init its modules and accept.
    sleep($VALGRIND ? 1 : 0.05);
    return 1;
}

sub _error_log_text {
    my ($inst) = @_;
    $inst ||= $CUR->{nginx};
    return '' unless $inst;
    my $p = $inst->{prefix};
    return (_read_file("$p/logs/error.log") // '');
}

# [alert], [crit], [emerg] and crashed workers, from error.log and stderr.
sub _alerts {
    my ($inst) = @_;
    my $p = $inst->{prefix};
    my $text = (_read_file("$p/logs/error.log") // '') . (_read_file("$p/logs/stderr.log") // '');
    return grep { /\[(?:alert|crit|emerg)\]|exited on signal/ } split /\n/, $text;
}

# Valgrind logs with errors or definite leaks. --quiet drops the summary
# lines, so any "==pid== " line that is not a blank separator is a report.
sub _valgrind_reports {
    my ($inst) = @_;
    my $p = $inst->{prefix};
    my @bad;
    for my $log (sort glob("$p/logs/valgrind.*.log")) {
        my $text = _read_file($log) // '';
        my $has = $text =~ /ERROR SUMMARY: [1-9]/
               || $text =~ /definitely lost: [1-9]/
               || grep { /^==\d+== \S/ && !/^==\d+== Warning: / } split /\n/, $text;
        next unless $has;
        my @lines = split /\n/, $text;
        splice @lines, 200 if @lines > 200;
        push @bad, "$log:\n" . join("\n", @lines);
    }
    return @bad;
}

# ---------------------------------------------------------------------------
# HTTP client over a raw socket (bytes go out exactly as given)
# ---------------------------------------------------------------------------

sub _build_request {
    my (%a) = @_;    # method, uri, headers => [[n, v], ...], body, version
    my @h = @{ $a{headers} || [] };
    my %has = map { lc $_->[0] => 1 } @h;
    unshift @h, [ Host => 'localhost' ] unless $has{host};
    push @h, [ Connection => 'close' ] unless $has{connection};
    my $body = $a{body};
    if (!defined $body && $a{method} =~ /^(?:POST|PUT|PATCH)$/) {
        $body = '';    # like curl: an empty body still says Content-Length: 0
    }
    if (defined $body && !$has{'content-length'} && !$has{'transfer-encoding'}) {
        push @h, [ 'Content-Length' => length $body ];
    }
    my $line = "$a{method} $a{uri}";
    $line .= ' ' . ($a{version} || 'HTTP/1.1') unless $line =~ m{\sHTTP/\d\.\d$};
    return join('', "$line\r\n", map({ "$_->[0]: $_->[1]\r\n" } @h), "\r\n",
                defined $body ? $body : '');
}

sub _parse_header_lines {
    my ($text) = @_;
    my @h;
    for my $l (split /\n/, $text // '') {
        $l =~ s/\r$//;
        next unless $l =~ /\S/;
        next if $l =~ /^\s*#/;
        my ($n, $v) = $l =~ /^\s*([^:\s]+)\s*:\s?(.*?)\s*$/
            or die "bad header line: $l\n";
        push @h, [ $n, _expand($v) ];
    }
    return @h;
}

# Send $bytes, read the response; {status, reason, headers, header_list,
# body, json, raw, error}. Reads until the response is complete or closed.
sub _http_raw {
    my ($port, $bytes, $timeout, $head) = @_;
    my $res = { status => 0, headers => {}, header_list => [], body => '', raw => '' };
    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => $timeout,
    );
    if (!$s) { $res->{error} = "connect to port $port: $!"; return $res }
    binmode $s;
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($s);
    my $off = 0;
    while ($off < length $bytes) {
        last unless $sel->can_write($deadline - time);
        my $n = syswrite($s, $bytes, 65536, $off);
        if (!defined $n) { $res->{write_error} = "$!"; last }    # peer closed early
        $off += $n;
    }
    my $buf = '';
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { $res->{error} = "timeout after ${timeout}s"; last }
        last if _response_complete($buf, $head);
        next unless $sel->can_read($left > 0.5 ? 0.5 : $left);
        my $n = sysread($s, $buf, 65536, length $buf);
        if (!defined $n) {
            next if $! == Errno::EINTR;
            $res->{error} = "read: $!" unless length $buf;
            last;
        }
        last if $n == 0;
    }
    close $s;
    $res->{raw} = $buf;
    _parse_response($res, $buf, $head);
    $res->{error} //= 'connection closed without a response' unless $res->{status};
    return $res;
}

# Split off interim 1xx responses; returns (head, rest) of the final one.
sub _final_head {
    my ($buf) = @_;
    while ($buf =~ /\A(HTTP\/\d\.\d\s+(\d{3})[^\r\n]*\r?\n.*?)\r?\n\r?\n/s) {
        my ($head, $status) = ($1, $2);
        my $rest = substr($buf, $+[0]);
        return ($head, $rest) unless $status =~ /^1/ && $status != 101;
        $buf = $rest;
    }
    return;
}

sub _response_complete {
    my ($buf, $head_req) = @_;
    my ($head, $rest) = _final_head($buf) or return 0;
    my ($status) = $head =~ /^HTTP\/\d\.\d\s+(\d{3})/;
    return 1 if $head_req || $status == 204 || $status == 304;
    if ($head =~ /^transfer-encoding:[^\r\n]*chunked/im) {
        return defined _dechunk($rest) ? 1 : 0;
    }
    if ($head =~ /^content-length:\s*(\d+)/im) {
        return length($rest) >= $1 ? 1 : 0;
    }
    return 0;    # read until close
}

# Decode a complete chunked body; undef while incomplete.
sub _dechunk {
    my ($data) = @_;
    my $out = '';
    while (1) {
        $data =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n// or return undef;
        my $len = hex $1;
        if ($len == 0) {
            return $data =~ /\r\n/ ? $out : undef;    # trailers end with CRLF
        }
        return undef if length($data) < $len + 2;
        $out .= substr($data, 0, $len);
        substr($data, 0, $len + 2) = '';
    }
}

sub _parse_response {
    my ($res, $buf, $head_req) = @_;
    my ($head, $rest) = _final_head($buf) or return;
    my @lines = split /\r?\n/, $head;
    my $status_line = shift @lines;
    @{$res}{qw(status reason)} = $status_line =~ /^HTTP\/\d\.\d\s+(\d{3})\s*(.*)$/;
    $res->{status_line} = $status_line;
    for my $l (@lines) {
        my ($n, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{ $res->{header_list} }, [ $n, $v ];
        my $k = lc $n;
        $res->{headers}{$k} = exists $res->{headers}{$k} ? "$res->{headers}{$k}, $v" : $v;
    }
    my $body = $rest;
    if (!$head_req && ($res->{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $d = _dechunk($rest);
        if (defined $d) { $body = $d } else { $res->{error} = 'incomplete chunked body' }
    } elsif (defined(my $cl = $res->{headers}{'content-length'})) {
        if ($cl =~ /^\d+$/ && length($rest) < $cl) {
            $res->{error} = 'body shorter than Content-Length';
        } elsif ($cl =~ /^\d+$/) {
            $body = substr($rest, 0, $cl);
        }
    }
    $body = '' if $head_req;
    $res->{body} = $body;
    $res->{json} = length $body ? eval { $JSON->decode($body) } : undef;
}

# ---------------------------------------------------------------------------
# JSON subset / equality matching
# ---------------------------------------------------------------------------

# A decoded JSON number has IOK/NOK without POK; decide before anything
# stringifies the value.
sub _is_number {
    my ($v) = @_;
    return 0 if !defined $v || ref $v;
    my $f = B::svref_2object(\$v)->FLAGS;
    return ($f & (B::SVp_IOK() | B::SVp_NOK())) && !($f & B::SVp_POK()) ? 1 : 0;
}

sub _is_bool { my ($v) = @_; return ref($v) && JSON::PP::is_bool($v) }

# Is $v the marker string $token? Tests the type first: comparing a number
# with eq would give it a string flag and make it look like a string.
sub _is_token {
    my ($v, $token) = @_;
    return 0 if !defined $v || ref $v || _is_number($v);
    return $v eq $token;
}

sub _show {
    my ($v) = @_;
    my $t = eval { $JSON->encode($v) };
    $t = defined $v ? "$v" : 'null' unless defined $t;
    $t = substr($t, 0, 300) . '...' if length $t > 300;
    return $t;
}

# Returns a list of mismatch messages (empty when it matches). $exact:
# objects must have the same keys (used by --- backend_unchanged).
sub json_mismatches {
    my ($got, $exp, $path, $exact, $out) = @_;
    $path //= '$';
    $out  //= [];
    return @$out if @$out >= 10;
    my $fail = sub { push @$out, "at $path: expected " . _show($exp) . ", got " . _show($got) . ($_[0] ? " ($_[0])" : '') };

    if (_is_token($exp, '__ANY__')) {
        return @$out;
    }
    if (ref $exp eq 'HASH') {
        if (ref $got ne 'HASH') { $fail->('not an object'); return @$out }
        for my $k (sort keys %$exp) {
            my $e = $exp->{$k};
            my $p = "$path.$k";
            if (_is_token($e, '__ABSENT__')) {
                push @$out, "at $p: expected no such key, got " . _show($got->{$k})
                    if exists $got->{$k};
                next;
            }
            if (!exists $got->{$k}) {
                push @$out, "at $p: missing key, expected " . _show($e);
                next;
            }
            json_mismatches($got->{$k}, $e, $p, $exact, $out);
        }
        if ($exact) {
            for my $k (sort grep { !exists $exp->{$_} } keys %$got) {
                push @$out, "at $path.$k: unexpected key, got " . _show($got->{$k});
            }
        }
        return @$out;
    }
    if (ref $exp eq 'ARRAY') {
        if (ref $got ne 'ARRAY') { $fail->('not an array'); return @$out }
        if (@$got != @$exp) {
            $fail->('array length ' . scalar(@$got) . ' instead of ' . scalar(@$exp));
            return @$out;
        }
        json_mismatches($got->[$_], $exp->[$_], "$path\[$_]", $exact, $out) for 0 .. $#$exp;
        return @$out;
    }
    if (_is_bool($exp)) {
        $fail->() unless _is_bool($got) && !!$got == !!$exp;
        return @$out;
    }
    if (!defined $exp) {
        $fail->() if defined $got;
        return @$out;
    }
    # scalars: a number must be a number, a string a string
    my $en = _is_number($exp);
    my $gn = _is_number($got);
    if (!defined $got || ref $got) { $fail->(); return @$out }
    if ($en) {
        if (!$gn) { $fail->('a string, not a number'); return @$out }
        $fail->() unless $got == $exp;
    } else {
        if ($gn) { $fail->('a number, not a string'); return @$out }
        $fail->() unless $got eq $exp;
    }
    return @$out;
}

sub _decode_expected {
    my ($text, $what) = @_;
    return $text if ref $text;
    my $v = eval { $JSON->decode($text) };
    die "$what is not valid JSON: $@" if $@;
    return $v;
}

# ---------------------------------------------------------------------------
# small file helpers
# ---------------------------------------------------------------------------

sub _read_file {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    binmode $fh;
    local $/;
    my $t = <$fh>;
    return defined $t ? $t : '';
}

sub _write_file {
    my ($f, $text) = @_;
    open my $fh, '>', $f or die "$f: $!";
    binmode $fh;
    print {$fh} $text;
    close $fh or die "$f: $!";
}

sub _tail {
    my ($f, $n) = @_;
    my $t = _read_file($f) // return "($f: missing)\n";
    my @l = split /\n/, $t;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

sub _lines {
    my ($text) = @_;
    return () unless defined $text;
    return grep { /\S/ } map { s/\r$//r } split /\n/, $text;
}

# Whitespace split with '...' and "..." quoting (for --- redis lines).
sub _shellwords {
    my ($s) = @_;
    my @w;
    while ($s =~ /\G\s*(?:'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+))/gc) {
        if (defined $1) { push @w, $1 }
        elsif (defined $2) { (my $x = $2) =~ s/\\(.)/$1/g; push @w, $x }
        else { push @w, $3 }
    }
    return @w;
}

# ---------------------------------------------------------------------------
# one block
# ---------------------------------------------------------------------------

sub _val {
    my ($block, $sec) = @_;
    return undef unless exists $block->{$sec};
    my $v = $block->$sec;
    return $v;
}

sub _has { my ($block, $sec) = @_; return exists $block->{$sec} }

# One assertion named "<block name> - <what>". The prototype keeps the
# condition in scalar context: a failed match in list context would be an
# empty list and shift the arguments.
sub _ok ($$;@) {
    my ($cond, $what, @diag) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = Test::More::ok($cond, "$CUR->{name} - $what");
    Test::More::diag(join "\n", grep { defined } @diag) if !$ok && @diag;
    return $ok;
}

sub _run_block {
    my ($block) = @_;
    my $name = $block->name;
    $name .= ": " . $block->description
        if $block->description && $block->description ne $block->name;

    if ($VALGRIND && _has($block, 'skip_valgrind')) {
        SKIP: { Test::More::skip("$name: --- skip_valgrind", 1) }
        return;
    }

    my $tb = Test::More->builder;
    my $first_test = $tb->current_test;
    my $dir = "$FILE_TMP/block" . $block->seq_num;
    make_path($dir);
    local $ENV{TEST_NGINX_TMP_DIR} = $dir;
    local $CUR = {
        block => $block, name => $name, dir => $dir, responses => [],
        extra => [], nextra => 0,
        timeout => (_val($block, 'timeout') || 10) * $SLOW,
    };

    my $ok = eval { _run_block_steps($block); 1 };
    my $err = $@;
    # Whatever happened, no nginx of this block may outlive it.
    for my $inst (_all_nginx()) {
        next unless $inst->{pid};
        my $e = _stop_nginx($inst);
        _ok(0, "$inst->{name} stopped", $e) if $e;
    }
    _ok(0, 'harness ran the block', $err) unless $ok;

    my @summary = $tb->summary;
    if (grep { !$_ } @summary[$first_test .. $#summary]) {
        Test::More::diag(_block_diag());
    }
}

sub _check_eval_errors {
    my ($block) = @_;
    my $map = $block->_section_map || {};
    for my $sec (sort keys %$map) {
        next unless ($map->{$sec}{filters} // '') =~ /\beval\b/;
        my @v = $block->$sec;
        my $v = $v[0];
        die "--- $sec eval failed: $v"
            if defined $v && !ref $v && $v =~ /at \(eval \d+\) line \d+/;
    }
}

sub _run_block_steps {
    my ($block) = @_;
    _check_eval_errors($block);

    # Redis or the backend may have been stopped or crashed in a previous
    # block: bring them back.
    _start_redis() unless $REDIS{pid} && _alive($REDIS{pid});
    _start_backend() unless $BACKEND{pid} && _alive($BACKEND{pid});
    my $fl = _redis_cmd('FLUSHALL') // '';
    die "redis FLUSHALL failed: $fl" unless $fl eq 'OK';
    my $reset = _backend('POST', '/__reset');
    die "backend reset failed: $reset->{status}" unless $reset->{status} == 200;

    if (_has($block, 'backend_faults')) {
        my $rules = _val($block, 'backend_faults');
        $rules = _expand($rules) unless ref $rules;
        my $r = _backend('POST', '/__faults', ref $rules ? $rules : $rules);
        die "backend rejected --- backend_faults: $r->{body}" unless $r->{status} == 200;
    }

    my $inst = $CUR->{nginx} = {
        name => 'nginx',
        prefix => "$CUR->{dir}",
        port => $SERVER_PORT,
        main_config => _val($block, 'main_config'),
        http_config => _val($block, 'http_config'),
        config => _val($block, 'config'),
        workers => _val($block, 'workers') || 2,
        log_level => _val($block, 'log_level') || 'info',
        no_default_redis => _has($block, 'no_default_redis'),
    };
    my $err = _start_nginx($inst);
    if ($err) {
        _ok(0, 'nginx started', $err);
        return;
    }

    if (_has($block, 'flow')) {
        _run_flow($block);
    }

    my @reqs = _block_requests($block);
    for my $i (0 .. $#reqs) {
        if ($i > 0 && $RELOAD) {
            _ok(0, 'reload before request ' . ($i + 1)) unless _reload_nginx($inst);
        }
        my $r = _http_raw($inst->{port}, $reqs[$i]{bytes}, $CUR->{timeout}, $reqs[$i]{head});
        $r->{request} = $reqs[$i]{bytes};
        push @{ $CUR->{responses} }, $r;
    }

    if (defined(my $w = _val($block, 'wait'))) {
        sleep($w) if $w > 0;
    }

    # Stop every nginx before checking: the logs are complete and a leaked
    # connection shows up as an alert at worker exit.
    for my $i (reverse _all_nginx()) {
        my $e = _stop_nginx($i);
        _ok(!$e, "$i->{name} stopped gracefully", $e);
    }

    _check_responses($block);
    _check_backend($block);
    _check_redis($block);
    _check_error_log($block);
    _check_alerts_and_valgrind($block);
}

# Requests of the block: [{bytes, head}] from --- request / --- raw_request.
sub _block_requests {
    my ($block) = @_;
    my @out;
    my @headers = _parse_header_lines(_val($block, 'more_headers'));
    if (_has($block, 'request')) {
        my $v = _val($block, 'request');
        for my $text (ref $v eq 'ARRAY' ? @$v : ($v)) {
            $text = _expand($text);
            my ($line, $body) = split /\n/, $text, 2;
            $line =~ s/^\s+|\s+$//g;
            $body =~ s/\n\z// if defined $body;
            $body = undef if defined $body && $body eq '';
            my ($method, $uri) = split /\s+/, $line, 2;
            die "--- request needs 'METHOD URI' on its first line\n" unless defined $uri;
            push @out, {
                bytes => _build_request(method => $method, uri => $uri,
                                        headers => \@headers, body => $body),
                head => $method eq 'HEAD',
            };
        }
    }
    if (_has($block, 'raw_request')) {
        my $v = _val($block, 'raw_request');
        my $eval = ((($block->_section_map || {})->{raw_request}{filters} // '') =~ /\beval\b/);
        for my $bytes (ref $v eq 'ARRAY' ? @$v : ($v)) {
            if (!$eval) {
                # Test::Base trims trailing blank lines and the data file
                # has LF endings: make it an HTTP head again.
                $bytes =~ s/\r?\n/\r\n/g;
                $bytes .= "\r\n" unless $bytes =~ /\r\n\r\n/;
            }
            push @out, { bytes => $bytes, head => ($bytes =~ /\AHEAD\s/ ? 1 : 0) };
        }
    }
    return @out;
}

# Expectation for response $i: an eval'd arrayref is per response, a
# plain value applies to every response.
sub _exp_for {
    my ($v, $i) = @_;
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

my @RESPONSE_SECTIONS = qw(error_code response_headers response_headers_like
                           response_body response_body_like response_json);

sub _check_responses {
    my ($block) = @_;
    my @resps = @{ $CUR->{responses} };
    my $n = @resps;
    # Expectations without a request would silently check nothing.
    if (!$n) {
        my @orphans = grep { _has($block, $_) } @RESPONSE_SECTIONS;
        _ok(0, "--- @orphans without --- request",
            'these sections check the responses of --- request / --- raw_request; '
            . 'in a --- flow, check the return value of http() instead') if @orphans;
        return;
    }
    for my $i (0 .. $#resps) {
        my $r = $resps[$i];
        my $tag = $n > 1 ? " (request " . ($i + 1) . ")" : '';
        _ok(0, "response$tag", "no response: $r->{error}")
            if $r->{error} && !$r->{status} && !_has($block, 'error_code');

        if (_has($block, 'error_code')) {
            my $exp = _exp_for(_val($block, 'error_code'), $i);
            _ok(defined $exp && $r->{status} == $exp, "status code$tag",
                "got " . ($r->{status} || "no response ($r->{error})") . ", expected $exp");
        }
        if (_has($block, 'response_headers')) {
            for my $l (_lines(_exp_for(_val($block, 'response_headers'), $i))) {
                if ($l =~ /^\s*!\s*(\S+?)\s*$/) {
                    my $h = lc $1;
                    _ok(!exists $r->{headers}{$h}, "header $1 absent$tag",
                        "got $1: " . ($r->{headers}{$h} // ''));
                    next;
                }
                my ($hn, $hv) = $l =~ /^\s*([^:\s]+)\s*:\s?(.*?)\s*$/
                    or die "bad --- response_headers line: $l\n";
                my $got = $r->{headers}{lc $hn};
                _ok(defined $got && $got eq $hv, "header $hn$tag",
                    "expected '$hv', got " . (defined $got ? "'$got'" : 'no such header'));
            }
        }
        if (_has($block, 'response_headers_like')) {
            for my $l (_lines(_exp_for(_val($block, 'response_headers_like'), $i))) {
                my ($hn, $re) = $l =~ /^\s*([^:\s]+)\s*:\s?(.*?)\s*$/
                    or die "bad --- response_headers_like line: $l\n";
                my $got = $r->{headers}{lc $hn};
                _ok((defined $got && $got =~ /$re/) ? 1 : 0, "header $hn like /$re/$tag",
                    "got " . (defined $got ? "'$got'" : 'no such header'));
            }
        }
        if (_has($block, 'response_body')) {
            my $exp = _exp_for(_val($block, 'response_body'), $i);
            local $Test::Builder::Level = $Test::Builder::Level + 1;
            my $ok = Test::More::is($r->{body}, $exp, "$CUR->{name} - response body$tag");
        }
        if (_has($block, 'response_body_like')) {
            my $re = _exp_for(_val($block, 'response_body_like'), $i);
            $re =~ s/\n\z//;
            _ok(($r->{body} =~ /$re/s) ? 1 : 0, "response body like$tag",
                "regex: $re\nbody: " . substr($r->{body}, 0, 2000));
        }
        if (_has($block, 'response_json')) {
            my $exp = _decode_expected(_exp_for(_val($block, 'response_json'), $i), '--- response_json');
            if (!defined $r->{json} && $r->{body} ne 'null') {
                _ok(0, "response json$tag", "body is not JSON: " . substr($r->{body}, 0, 2000));
            } else {
                my @m = json_mismatches($r->{json}, $exp);
                _ok(!@m, "response json$tag", @m);
            }
        }
    }
}

sub _check_backend {
    my ($block) = @_;
    # Snapshot the log first; the checks below do not add to it (harness
    # requests are not logged) but a slow nginx request might.
    my $log;
    if (_has($block, 'backend_requests') || _has($block, 'no_backend_requests')) {
        $log = _backend('GET', '/__requests')->{json} || [];
    }
    my @seen = map { [ $_->{method}, $_->{url} ] } @{ $log || [] };
    my $seen_text = join("\n", map { "  $_->[0] $_->[1]" } @seen) || '  (none)';

    if (_has($block, 'backend_requests')) {
        my @exp = _lines(_expand(_val($block, 'backend_requests')));
        my $j = 0;
        my @missing;
        for my $e (@exp) {
            my ($m, $p) = split ' ', $e, 2;
            my $found = 0;
            while ($j < @seen) {
                my $s = $seen[$j++];
                if (_req_matches($s, $m, $p)) { $found = 1; last }
            }
            push @missing, $e unless $found;
            last unless $found;
        }
        _ok(!@missing, 'backend requests in order',
            "not seen (in this order): @missing\nbackend saw:\n$seen_text");
    }
    if (_has($block, 'no_backend_requests')) {
        for my $e (_lines(_expand(_val($block, 'no_backend_requests')))) {
            my ($m, $p) = split ' ', $e, 2;
            my @hits = grep { _req_matches($_, $m, $p) } @seen;
            _ok(!@hits, "no backend request $e", "backend saw:\n$seen_text");
        }
    }
    if (_has($block, 'backend')) {
        for my $l (_lines(_expand(_val($block, 'backend')))) {
            my ($path, $rest) = $l =~ /^\s*(\S+)\s+(.*?)\s*$/
                or die "bad --- backend line: $l\n";
            my $r = _backend('GET', $path);
            if ($rest =~ /^\d{3}$/) {
                _ok($r->{status} == $rest, "backend $path status $rest",
                    "got $r->{status}: " . ($r->{body} // ''));
                next;
            }
            my $exp = _decode_expected($rest, "--- backend $path");
            if ($r->{status} != 200) {
                _ok(0, "backend $path", "GET $path: status $r->{status}: " . ($r->{body} // ''));
                next;
            }
            my @m = json_mismatches($r->{json}, $exp);
            _ok(!@m, "backend $path", @m, "backend has: " . ($r->{body} // ''));
        }
    }
    if (_has($block, 'backend_unchanged')) {
        my $db = _backend('GET', '/__db')->{json};
        my @m = json_mismatches($db, _seed(), '$', 1);
        _ok(!@m, 'backend unchanged', @m);
    }
}

sub _req_matches {
    my ($seen, $m, $p) = @_;
    return 0 unless uc($seen->[0]) eq uc($m);
    return 1 unless defined $p && length $p;
    my $url = $seen->[1];
    # Without a query in the expectation, compare paths only.
    $url =~ s/\?.*//s unless $p =~ /\?/;
    return $url eq $p;
}

sub _check_redis {
    my ($block) = @_;
    return unless _has($block, 'redis');
    for my $l (_lines(_expand(_val($block, 'redis')))) {
        my ($cmd, $re) = $l =~ /^\s*(.*?)\s+=>\s?(.*)$/
            or die "bad --- redis line (want: ARGS => REGEX): $l\n";
        my $out = _redis_cli(_shellwords($cmd));
        _ok(($out =~ /$re/s) ? 1 : 0, "redis $cmd", "regex: $re\ngot: " . _show($out));
    }
}

sub _check_error_log {
    my ($block) = @_;
    my $log = _error_log_text($CUR->{nginx});
    for my $l (_lines(_val($block, 'error_log'))) {
        _ok(index($log, $l) >= 0, "error_log has: $l");
    }
    for my $l (_lines(_val($block, 'no_error_log'))) {
        my @hits = grep { index($_, $l) >= 0 } split /\n/, $log;
        splice @hits, 10 if @hits > 10;
        _ok(!@hits, "error_log lacks: $l", join("\n", @hits));
    }
    for my $re (_lines(_val($block, 'error_log_like'))) {
        _ok(($log =~ /$re/m) ? 1 : 0, "error_log like /$re/");
    }
}

sub _check_alerts_and_valgrind {
    my ($block) = @_;
    for my $inst (_all_nginx()) {
        unless (_has($block, 'allow_alerts')) {
            my @a = _alerts($inst);
            splice @a, 20 if @a > 20;
            _ok(!@a, "$inst->{name}: no alert, crit, emerg or crash", join("\n", @a));
        }
        if ($VALGRIND) {
            my @v = _valgrind_reports($inst);
            _ok(!@v, "$inst->{name}: valgrind clean", @v);
        }
    }
}

sub _block_diag {
    my @d = ("---- $CUR->{name}: files in $CUR->{dir}"
             . ($KEEP ? '' : ' (set TEST_NGINX_KEEP=1 to keep them)'));
    my $i = 0;
    for my $r (@{ $CUR->{flow_responses} || [] }, @{ $CUR->{responses} }) {
        $i++;
        my $req = $r->{request} // '';
        $req = substr($req, 0, 1000) . '...' if length $req > 1000;
        push @d, "---- request $i:\n$req";
        if ($r->{status}) {
            my $head = join "\n", $r->{status_line}, map { "$_->[0]: $_->[1]" } @{ $r->{header_list} };
            my $body = $r->{body};
            $body = substr($body, 0, 2000) . '...' if length $body > 2000;
            push @d, "---- response $i:\n$head\n\n$body";
        } else {
            push @d, "---- response $i: none (" . ($r->{error} // '?') . ")";
        }
    }
    my $log = $CUR->{nginx} ? "$CUR->{nginx}{prefix}/logs/error.log" : undef;
    push @d, "---- error.log (tail):\n" . _tail($log, 40) if $log;
    return join "\n", @d;
}

# ---------------------------------------------------------------------------
# --- flow
# ---------------------------------------------------------------------------

sub _run_flow {
    my ($block) = @_;
    my $src = _val($block, 'flow');
    (my $label = $CUR->{name}) =~ s/["\n]/ /g;
    my $code = "package Test::SafeDelete::Flow; use strict; use warnings;\n"
             . "sub {\n#line 1 \"$label --- flow\"\n$src\n;}";
    my $sub = eval $code;
    if (!$sub) {
        _ok(0, 'flow compiles', $@);
        return;
    }
    my $ok = eval { $sub->(); 1 };
    _ok(0, 'flow ran to its end', "flow died: $@") unless $ok;
}

package Test::SafeDelete::Flow;

# Helpers for --- flow code. Test::More's functions are wrapped so their
# test names carry the block name.

use strict;
use warnings;
use JSON::PP qw(encode_json decode_json);
use Time::HiRes qw(sleep time);

my %NAME_ARG = (ok => 1, is => 2, isnt => 2, like => 2, unlike => 2,
                is_deeply => 2, cmp_ok => 3, pass => 0, fail => 0);
for my $f (keys %NAME_ARG) {
    my $orig = \&{"Test::More::$f"};
    my $idx = $NAME_ARG{$f};
    no strict 'refs';
    *{$f} = sub {
        my @a = @_;
        my $n = defined $a[$idx] ? $a[$idx] : $f;
        $a[$idx] = "$Test::SafeDelete::CUR->{name} - $n";
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        return $orig->(@a);
    };
}
{
    no strict 'refs';
    *{$_} = \&{"Test::More::$_"} for qw(diag note explain subtest skip BAIL_OUT);
}

sub block { return $Test::SafeDelete::CUR->{block} }

sub http {
    my ($method, $path, %o) = @_;
    my @h = ref $o{headers} eq 'ARRAY'
        ? (map { [ $o{headers}[2 * $_], $o{headers}[2 * $_ + 1] ] } 0 .. $#{ $o{headers} } / 2)
        : (map { [ $_, $o{headers}{$_} ] } sort keys %{ $o{headers} || {} });
    my $bytes = Test::SafeDelete::_build_request(
        method => $method, uri => $path, headers => \@h, body => $o{body},
        version => $o{version});
    my $port = $o{port} || $Test::SafeDelete::CUR->{nginx}{port};
    my $timeout = $o{timeout} ? $o{timeout} * $Test::SafeDelete::SLOW
                              : $Test::SafeDelete::CUR->{timeout};
    my $r = Test::SafeDelete::_http_raw($port, $bytes, $timeout, $method eq 'HEAD');
    $r->{request} = $bytes;
    push @{ $Test::SafeDelete::CUR->{flow_responses} }, $r;    # for the failure diag
    return $r;
}

sub backend_get {
    my ($path) = @_;
    my $r = Test::SafeDelete::_backend('GET', $path);
    return { status => $r->{status}, json => $r->{json}, body => $r->{body} };
}

sub backend_db       { return Test::SafeDelete::_backend('GET', '/__db')->{json} }
sub backend_requests { return Test::SafeDelete::_backend('GET', '/__requests')->{json} || [] }
sub backend_clear_requests { Test::SafeDelete::_backend('DELETE', '/__requests'); return }
sub backend_reset    { Test::SafeDelete::_backend('POST', '/__reset'); return }

sub backend_faults {
    my ($rules) = @_;
    my $r = Test::SafeDelete::_backend('POST', '/__faults', $rules || []);
    die "backend_faults: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    return;
}

sub redis { return Test::SafeDelete::_redis_cli(@_) }

sub redis_stop {
    Test::SafeDelete::_stop_redis() or die "redis-server did not stop\n";
    return;
}

sub redis_start {
    Test::SafeDelete::_start_redis();
    return;
}

# Optional new config sections (main_config, http_config, config) are
# written before the SIGHUP. Returns 1 once new workers run.
sub nginx_reload {
    my (%o) = @_;
    my $inst = $Test::SafeDelete::CUR->{nginx};
    if ($o{port}) {
        ($inst) = grep { $_->{port} == $o{port} } Test::SafeDelete::_all_nginx();
        die "nginx_reload: no nginx on port $o{port}\n" unless $inst;
    }
    for my $k (qw(main_config http_config config)) {
        $inst->{$k} = $o{$k} if exists $o{$k};
    }
    Test::SafeDelete::_write_nginx_conf($inst);
    return Test::SafeDelete::_reload_nginx($inst);
}

sub nginx_start {
    my (%o) = @_;
    my $cur = $Test::SafeDelete::CUR;
    my $n = ++$cur->{nextra};
    my $inst = {
        name => "nginx-extra$n",
        prefix => "$cur->{dir}/nginx$n",
        port => Test::SafeDelete::_free_port(),
        main_config => $o{main_config},
        http_config => $o{http_config},
        config => $o{config},
        workers => $o{workers} || 2,
        log_level => $o{log_level} || 'info',
        no_default_redis => $o{no_default_redis},
    };
    push @{ $cur->{extra} }, $inst;
    my $err = Test::SafeDelete::_start_nginx($inst);
    die "nginx_start: $err\n" if $err;
    return $inst->{port};
}

sub nginx_stop {
    my (%o) = @_;
    my ($inst) = grep { $_->{port} == $o{port} } @{ $Test::SafeDelete::CUR->{extra} };
    die "nginx_stop: no extra nginx on port " . ($o{port} // '?') . "\n" unless $inst;
    return Test::SafeDelete::_stop_nginx($inst);
}

sub raw_connect_send {
    my ($bytes, %o) = @_;
    my $port = $o{port} || $Test::SafeDelete::CUR->{nginx}{port};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "raw_connect_send: connect to $port: $!\n";
    binmode $s;
    syswrite($s, $bytes) if defined $bytes && length $bytes;
    return $s;
}

sub error_log {
    my (%o) = @_;
    my $inst = $Test::SafeDelete::CUR->{nginx};
    if ($o{port}) {
        ($inst) = grep { $_->{port} == $o{port} } Test::SafeDelete::_all_nginx();
    }
    return Test::SafeDelete::_error_log_text($inst);
}

sub wait_for {
    my ($check, %o) = @_;
    my $deadline = time + ($o{timeout} || 5) * $Test::SafeDelete::SLOW;
    my $interval = $o{interval} || 0.05;
    while (1) {
        my $v = $check->();
        return $v if $v;
        return undef if time > $deadline;
        sleep $interval;
    }
}

# json_subset_ok($got, $expected, $name): $expected is a Perl structure or
# JSON text, matched like --- response_json (__ANY__, __ABSENT__).
sub json_subset_ok {
    my ($got, $exp, $name) = @_;
    $exp = Test::SafeDelete::_decode_expected($exp, 'json_subset_ok') unless ref $exp;
    my @m = Test::SafeDelete::json_mismatches($got, $exp);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = Test::More::ok(!@m, "$Test::SafeDelete::CUR->{name} - " . ($name // 'json subset'));
    Test::More::diag(join "\n", @m) unless $ok;
    return $ok;
}

# The audit stream as a list of hashes, oldest first.
sub audit_events {
    my $raw = redis('XRANGE', 'safedelete:audit', '-', '+');
    my @lines = split /\n/, $raw;
    my (@events, $cur);
    while (@lines) {
        my $l = shift @lines;
        if ($l =~ /^\d+-\d+$/) {
            $cur = { _id => $l };
            push @events, $cur;
            next;
        }
        $cur->{$l} = shift @lines;
    }
    return \@events;
}

# A problem document as the README describes it, with this status and code.
sub problem_ok {
    my ($r, $status, $code, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = is($r->{status}, $status, "$what: status $status");
    like($r->{headers}{'content-type'} // '', qr{^application/problem\+json},
         "$what: problem+json");
    my $type = 'urn:safedelete:problem:' . lc($code =~ s/_/-/gr);
    json_subset_ok($r->{json}, {
        type => $type, title => '__ANY__', status => $status + 0,
        detail => '__ANY__', code => $code, success => JSON::PP::false(),
        error => '__ANY__',
    }, "$what: problem members");
    return $ok;
}

# Requests other than reads that reached the backend.
sub backend_writes {
    return grep { $_->{method} ne 'GET' && $_->{method} ne 'HEAD' }
           @{ backend_requests() };
}

# nginx -t of a main config with the module around an http{} body;
# returns (ok, output). With $redis, a safedelete_redis line comes first.
sub nginx_t {
    my ($http, $redis) = @_;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    mkdir "$dir/logs";
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh "load_module $ENV{TEST_NGINX_MODULE};\n"
            . "pid $dir/logs/nginx.pid;\n"
            . "error_log $dir/logs/error.log;\n"
            . "events { worker_connections 64; }\n"
            . "http {\n"
            . "    client_body_temp_path $dir/body;\n"
            . "    proxy_temp_path $dir/proxy;\n"
            . "    fastcgi_temp_path $dir/fastcgi;\n"
            . "    uwsgi_temp_path $dir/uwsgi;\n"
            . "    scgi_temp_path $dir/scgi;\n"
            . "    access_log off;\n"
            . ($redis ? "    safedelete_redis redis://127.0.0.1:6379;\n" : "")
            . "$http\n}\n";
    close $fh;
    my $out = `$Test::SafeDelete::NGINX -t -p $dir/ -c $dir/nginx.conf 2>&1`;
    return ($? == 0, $out);
}

1;
