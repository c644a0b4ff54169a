package Test::Nginx::Runner;

# The engine behind t/lib/Test/Nginx/Socket.pm (kept apart from it because
# Test::Base's "-Base" source filter rewrites every sub in that file).
#
# Per block: write t/servroot/conf/nginx.conf from the block's
# main_config / http_config / config, (re)start nginx, send the request(s)
# over raw sockets, check status, headers, body and the error log.  The
# checks and their count follow Test::Nginx::Socket: per response one
# status test, one per response_headers line, one body test, and one per
# error_log / no_error_log pattern.
#
# Each instance is stopped the way Test::Nginx::Util's kill_process() does
# it: QUIT (TERM with TEST_NGINX_FAST_SHUTDOWN), then polling every 50 ms
# for timeout() seconds (TEST_NGINX_TIMEOUT, 3 by default), then SIGKILL
# to its process group.  The real runner only warns when it has to kill;
# here an instance still alive at the deadline fails a test named after
# the file and block whose configuration it ran.  Before the next block the
# real runner removes conf, logs, html, cache and *_temp, *_cache, then
# rmdir()s the server root and bails out of the whole run when that fails
# (setup_server_root()); here the same removal follows every block and a
# server root it cannot remove fails a test naming that block and what was
# left, then the root is emptied so the other blocks still run.

use strict;
use warnings;

use Test::More ();
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use File::Path qw(make_path remove_tree);
use Cwd qw(abs_path);

my %Opt = (
    master           => 'off',
    workers          => 1,
    log_level        => 'debug',
    repeat_each      => 1,
    no_root_location => 0,
);

my @EnvToNginx;

# Like Test::Nginx, each log check sees only what was written since the
# last one: in a pipelined block the first response's check consumes it all.
my $LogPos = 0;
my $Binary = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $Port = $ENV{TEST_NGINX_PORT} || 1984;
my $ServRoot = $ENV{TEST_NGINX_SERVROOT}
               || abs_path('.') . '/t/servroot';
my $Timeout = $ENV{TEST_NGINX_TIMEOUT} || 3;

$ENV{TEST_NGINX_SERVER_PORT} = $Port;
$ENV{TEST_NGINX_PORT} = $Port;
$ENV{TEST_NGINX_SERVROOT} = $ServRoot;
$ENV{TEST_NGINX_HTML_DIR} = "$ServRoot/html";

# a section, always in scalar context (a missing one is undef, not ())
sub sec { my ($b, $n) = @_; my $v = $b->$n; return $v; }

sub set { my ($k, $v) = @_; $Opt{$k} = $v; }
sub repeat_each { $Opt{repeat_each} = $_[0] if @_; $Opt{repeat_each} }
sub env_to_nginx { push @EnvToNginx, @_ }
sub server_port { $Port }
sub server_root { $ServRoot }

sub expand {
    my ($text, $name) = @_;
    return '' unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        defined $ENV{$1} ? $ENV{$1}
                         : Test::More::BAIL_OUT("$name - No environment $1 defined.")
    }ge;
    return $text;
}

sub pid_file { "$ServRoot/logs/nginx.pid" }
sub err_log  { "$ServRoot/logs/error.log" }

sub write_conf {
    my ($block) = @_;
    my $name = $block->name;

    make_path(map { "$ServRoot/$_" } qw(conf logs html client_body_temp
                                         proxy_temp fastcgi_temp uwsgi_temp
                                         scgi_temp));

    my $main = expand(sec($block, q{main_config}), $name);
    if ($ENV{TEST_NGINX_LOAD_MODULES}) {
        $main = join(' ', map { "load_module $_;" }
                          split ' ', $ENV{TEST_NGINX_LOAD_MODULES})
                . "\n$main";
    }

    my $http = expand(sec($block, q{http_config}), $name);
    my $config = expand(sec($block, q{config}), $name);
    my $user = $> == 0 ? "user root;" : "";
    my $log_level = sec($block, q{log_level}) // $Opt{log_level};
    $log_level =~ s/\s+//g;
    my $env = join '', map { "env $_;\n" } @EnvToNginx;
    my $root = $Opt{no_root_location} ? '' : <<"_EOC_";
        location / {
            root $ServRoot/html;
            index index.html index.htm;
        }
_EOC_

    open my $out, '>', "$ServRoot/conf/nginx.conf" or die "$!";
    print $out <<"_EOC_";
worker_processes  $Opt{workers};
daemon on;
master_process $Opt{master};
error_log $ServRoot/logs/error.log $log_level;
pid       $ServRoot/logs/nginx.pid;
$env
$main

http {
    access_log $ServRoot/logs/access.log;
    client_body_temp_path $ServRoot/client_body_temp;
    proxy_temp_path $ServRoot/proxy_temp;
    fastcgi_temp_path $ServRoot/fastcgi_temp;
    uwsgi_temp_path $ServRoot/uwsgi_temp;
    scgi_temp_path $ServRoot/scgi_temp;

    default_type text/plain;
    keepalive_timeout  68000ms;

$http
    server {
        listen          $Port;
        server_name     'localhost';
        client_max_body_size 30M;

        # Begin test case config...
$config
        # End test case config.

$root    }
}

events {
    accept_mutex off;
    worker_connections  64;
}
$user
_EOC_
    close $out;
}

sub read_pid {
    open my $in, '<', pid_file() or return undef;
    my $pid = <$in>;
    close $in;
    return undef unless defined $pid && $pid =~ /(\d+)/;
    return $1;
}

# alive and not a zombie (daemonized nginx is reaped by init, maybe late)
sub alive {
    my ($pid) = @_;
    return 0 unless kill(0, $pid);
    open my $in, '<', "/proc/$pid/stat" or return 0;
    my $st = <$in> // '';
    close $in;
    return $st !~ /^\d+ \(.*\) [ZX] /;
}

# Stops the instance in the pid file.  Returns undef when it was gone
# within the deadline (or there was none), else a message saying so.
sub stop_nginx {
    my $pid = read_pid();
    return undef unless $pid && alive($pid);

    kill($ENV{TEST_NGINX_FAST_SHUTDOWN} ? 'TERM' : 'QUIT', $pid);

    my $t0 = time;
    my $left = $Timeout;
    while ($left > 0 && alive($pid)) {
        sleep 0.05;
        $left -= 0.05;
    }

    return undef unless alive($pid);

    my $msg = sprintf("nginx (pid %d, master_process %s, worker_processes"
                      . " %s) still running %.2f s after SIG%s",
                      $pid, $Opt{master}, $Opt{workers}, time - $t0,
                      $ENV{TEST_NGINX_FAST_SHUTDOWN} ? 'TERM' : 'QUIT');

    # as kill_process(): the whole group when nginx leads it (daemon on)
    kill('KILL', getpgrp($pid) == $pid ? -$pid : $pid);
    for (1 .. 100) {
        last unless alive($pid);
        sleep 0.02;
    }
    $msg .= "; still alive after SIGKILL" if alive($pid);

    return $msg;
}

# What setup_server_root() removes before a block starts nginx; then the
# server root itself must go (rmdir: it must be empty by then).  Returns
# undef, or a message naming what was left.
sub remove_server_root {
    return undef unless -d $ServRoot;

    remove_tree(map { "$ServRoot/$_" } qw(conf html logs cache));
    remove_tree(glob("$ServRoot/*_cache"), glob("$ServRoot/*_temp"));

    return undef if rmdir $ServRoot;

    my $err = "$!";
    my @left = map { s{^\Q$ServRoot\E/}{}r } glob("$ServRoot/{.,}*");
    @left = grep { $_ ne '.' && $_ ne '..' } @left;
    remove_tree($ServRoot);

    return "can't remove $ServRoot ($err), left: @left";
}

# After a block: stop its instance, remove the server root, and fail a test
# for each of the two that did not happen.
sub finish_block {
    my ($block) = @_;
    my $name = "$0 " . $block->name;

    my $stop = stop_nginx();
    Test::More::ok(0, "$name - $stop") if defined $stop;

    my $root = remove_server_root();
    Test::More::ok(0, "$name - $root") if defined $root;
}

sub port_open {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $Port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# returns (exit status, stderr text)
sub start_nginx {
    unlink pid_file();
    for (1 .. 100) { last unless port_open(); sleep 0.05; }

    truncate(err_log(), 0) if -f err_log();
    $LogPos = 0;

    my $cmd = "$Binary -e $ServRoot/logs/error.log -p $ServRoot/ -c $ServRoot/conf/nginx.conf"
              . " 2>$ServRoot/logs/stderr.log";
    system($cmd);
    my $status = $?;

    my $stderr = '';
    if (open my $in, '<', "$ServRoot/logs/stderr.log") {
        local $/;
        $stderr = <$in> // '';
        close $in;
    }

    return ($status, $stderr) if $status != 0;

    for (1 .. 200) {
        last if port_open();
        sleep 0.025;
    }

    return (0, $stderr);
}

sub as_list {
    my ($v) = @_;
    return () unless defined $v;
    return @$v if ref $v eq 'ARRAY';
    return ($v);
}

sub indexed {
    my ($v, $i) = @_;
    return $v->[$i] if ref $v eq 'ARRAY';
    return $v;
}

# "METHOD URI [PROTO]\nbody" -> raw HTTP/1.1 request
sub build_request {
    my ($block, $req, $keepalive) = @_;

    $req =~ s/^\s+//;
    my ($line, $body) = split /\n/, $req, 2;
    $body = '' unless defined $body;
    my ($method, $uri, $proto) = split ' ', $line;
    $proto ||= 'HTTP/1.1';

    my %seen;
    my $headers = '';
    for my $h (split /\n/, (sec($block, q{more_headers}) // '')) {
        next unless $h =~ /\S/;
        my ($k) = $h =~ /^([^:]+):/;
        $seen{lc $k} = 1 if defined $k;
        $headers .= "$h\r\n";
    }

    my $raw = "$method $uri $proto\r\n";
    $raw .= "Host: localhost\r\n" unless $seen{host};
    $raw .= ($keepalive ? "Connection: keep-alive\r\n"
                        : "Connection: close\r\n") unless $seen{connection};
    if (length $body || $method =~ /^(POST|PUT|PATCH)$/) {
        $raw .= "Content-Length: " . length($body) . "\r\n"
            unless $seen{'content-length'} || $seen{'transfer-encoding'};
    }

    return $raw . $headers . "\r\n" . $body;
}

sub send_recv {
    my ($raw, $timeout) = @_;

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $Port, Proto => 'tcp',
                                     Timeout => $timeout);
    return (undef, "connect failed: $!") unless $sock;

    binmode $sock;
    my $sel = IO::Select->new($sock);
    my $off = 0;
    while ($off < length $raw) {
        return (undef, "write timeout") unless $sel->can_write($timeout);
        my $n = syswrite($sock, $raw, 65536, $off);
        return (undef, "write failed: $!") unless defined $n;
        $off += $n;
    }

    my $resp = '';
    my $deadline = time + $timeout;
    while (1) {
        my $left = $deadline - time;
        return ($resp, "timeout") if $left <= 0;
        last unless $sel->can_read($left);
        my $n = sysread($sock, my $buf, 65536);
        last if !$n;
        $resp .= $buf;
    }
    close $sock;

    return ($resp, undef);
}

# one response off the front of $$raw: (status, headers, body) or ()
sub parse_response {
    my ($raw) = @_;

    return () unless $$raw =~ s/^HTTP\/\d\.\d (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n//s;
    my ($status, $hdr) = ($1, $2);

    my %h;
    for my $line (split /\r\n/, $hdr) {
        my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = defined $h{lc $k} ? "$h{lc $k}, $v" : $v;
    }

    my $body = '';
    if (defined $h{'transfer-encoding'} && $h{'transfer-encoding'} =~ /chunked/i) {
        while ($$raw =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            $body .= substr($$raw, 0, $len, '');
            $$raw =~ s/^\r\n//;
            last if $len == 0;
        }

    } elsif (defined $h{'content-length'}) {
        $body = substr($$raw, 0, $h{'content-length'}, '');

    } else {
        $body = $$raw;
        $$raw = '';
    }

    return ($status, \%h, $body);
}


sub log_text {
    open my $in, '<', err_log() or return '';
    seek $in, $LogPos, 0;
    local $/;
    my $t = <$in> // '';
    $LogPos = tell $in;
    close $in;
    return $t;
}

sub check_log {
    my ($block, $name, $extra, $log) = @_;

    if (!defined $log) {
        # give the server a moment to write lines that follow the response
        sleep 0.05;
        $log = log_text() . ($extra // '');
    }

    for my $p (as_list(sec($block, q{error_log}))) {
        for my $pat (ref $p eq 'Regexp' ? ($p) : grep { length } split /\n/, $p) {
            my $ok = ref $pat ? $log =~ $pat : index($log, $pat) >= 0;
            Test::More::ok($ok, "$name - pattern \"$pat\" matches a line in error.log");
        }
    }

    for my $p (as_list(sec($block, q{no_error_log}))) {
        for my $pat (ref $p eq 'Regexp' ? ($p) : grep { length } split /\n/, $p) {
            my @hit = grep { ref $pat ? $_ =~ $pat : index($_, $pat) >= 0 }
                      split /\n/, $log;
            Test::More::ok(!@hit, "$name - pattern \"$pat\" does not match a line in error.log")
                or Test::More::diag("matched: $hit[0]");
        }
    }
}

sub check_response {
    my ($block, $name, $i, $status, $h, $body) = @_;

    my $want = defined sec($block, q{error_code}) ? indexed(sec($block, q{error_code}), $i) : 200;
    Test::More::is($status // '', $want, "$name - status code ok");

    if (defined sec($block, q{response_headers})) {
        for my $line (split /\n/, indexed(sec($block, q{response_headers}), $i)) {
            next unless $line =~ /\S/;
            if ($line =~ /^\s*!\s*([^:\s]+)/) {
                Test::More::ok(!defined $h->{lc $1}, "$name - header $1 not present");
            } elsif ($line =~ /^\s*([^:]+):\s*(.*?)\s*$/) {
                Test::More::is($h->{lc $1}, $2, "$name - header $1 ok");
            }
        }
    }

    if (defined sec($block, q{response_body})) {
        Test::More::is($body, indexed(sec($block, q{response_body}), $i),
                       "$name - response_body - response is expected");

    } elsif (defined sec($block, q{response_body_like})) {
        my $pat = indexed(sec($block, q{response_body_like}), $i);
        Test::More::like($body // '', ref $pat ? $pat : qr/$pat/s,
                         "$name - response_body_like - response is expected");
    }
}

# $fresh: start nginx for this round; the real runner starts it once per
# block and sends every repeat_each round to the same server (a block that
# breaks when it runs twice on one server fails here too), but restarts it
# for each round of a must_die block
sub run_block {
    my ($block, $fresh) = @_;
    my $name = $block->name;

    if ($fresh) {
        write_conf($block);
        my ($status, $stderr) = start_nginx();

        if (defined sec($block, q{must_die})) {
            Test::More::isnt($status, 0, "$name - die as expected");
            check_log($block, $name, $stderr);
            return;
        }

        if ($status != 0) {
            Test::More::BAIL_OUT("$name - nginx failed to start: $stderr");
        }
    }

    my $timeout = sec($block, q{timeout}) || $Timeout;

    if (defined sec($block, q{pipelined_requests})) {
        my @reqs = @{ sec($block, q{pipelined_requests}) };
        my $raw = '';
        for my $j (0 .. $#reqs) {
            $raw .= build_request($block, $reqs[$j], $j < $#reqs);
        }

        my ($resp, $err) = send_recv($raw, $timeout);
        Test::More::diag("$name - $err") if $err;
        $resp //= '';

        sleep 0.05;

        for my $j (0 .. $#reqs) {
            my ($st, $h, $body) = parse_response(\$resp);
            check_response($block, $name, $j, $st, $h, $body);
            check_log($block, $name, undef, log_text());
        }
        return;
    }

    my @reqs = as_list(sec($block, q{request}));
    Test::More::BAIL_OUT("$name - request empty") unless @reqs;

    for my $j (0 .. $#reqs) {
        my ($resp, $err) = send_recv(build_request($block, $reqs[$j], 0),
                                     $timeout);
        Test::More::diag("$name - $err") if $err;
        $resp //= '';
        my ($st, $h, $body) = parse_response(\$resp);
        check_response($block, $name, $j, $st, $h, $body);
        check_log($block, $name);
    }
}

sub run_blocks {
    my ($blocks) = @_;

    # whatever an earlier file left is not this file's failure
    if (my $pid = read_pid()) {
        kill('KILL', getpgrp($pid) == $pid ? -$pid : $pid) if alive($pid);
    }
    remove_tree($ServRoot);

    for my $j (0 .. $#$blocks) {
        my $block = $blocks->[$j];
        my $die = defined sec($block, q{must_die});

        for my $k (1 .. $Opt{repeat_each}) {
            run_block($block, $die || $k == 1);
            next unless $die || $k == $Opt{repeat_each};
            next if $ENV{TEST_NGINX_NO_CLEAN}
                    && $j == $#$blocks && $k == $Opt{repeat_each};
            finish_block($block);
        }
    }
}

# after a die: no tests any more, just make sure nothing is left running
END {
    if (!$ENV{TEST_NGINX_NO_CLEAN} and my $pid = read_pid()) {
        if (alive($pid)) {
            kill('QUIT', $pid);
            for (1 .. $Timeout / 0.05) { last unless alive($pid); sleep 0.05; }
            kill('KILL', getpgrp($pid) == $pid ? -$pid : $pid) if alive($pid);
        }
    }
}

1;
