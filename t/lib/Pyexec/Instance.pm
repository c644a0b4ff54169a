package Pyexec::Instance;

# One nginx (master + workers) under a test's control, for the plain
# Test::More files that need several processes or several instances:
# start it from a configuration text, talk HTTP to it, watch its processes.
#
# Each stop() after a start() is one more test: "no alerts, no sanitizer
# report in <name>'s error log" -- no [alert] or [emerg] line, nor a
# sanitizer's ("ERROR: AddressSanitizer", UBSan's "runtime error:"),
# other than those the allow_alerts regexes of new() match; and, when
# ASAN_OPTIONS has log_path=P, no new P.<pid> file since the start.  Stop
# every instance before the plan's last test (an END block's stop after
# done_testing() only says what it would have failed).

use strict;
use warnings;

use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use File::Path qw(make_path remove_tree);
use Cwd ();

my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';

# new(root => DIR, port => N, [addr => A], [name => 'for the test name'],
#     [allow_alerts => [qr/an expected alert/, ...]],
#     [ready => sub { my ($ng) = @_; ... }])
# ready: what start() waits for once the ready URI answers 200 (true when
# it holds), e.g. the shipped front's workers binding their sockets
sub new {
    my ($class, %arg) = @_;
    my $self = bless { addr => '127.0.0.1', %arg }, $class;
    $self->{allow_alerts} ||= [];
    my $cwd = Cwd::abs_path('.');
    ($self->{name} //= $self->{root}) =~ s{^\Q$cwd\E/}{};
    remove_tree($self->{root});
    make_path("$self->{root}/logs", "$self->{root}/conf");
    return $self;
}

sub root { $_[0]{root} }
sub port { $_[0]{port} }

sub write_conf {
    my ($self, $text) = @_;
    open my $out, '>', "$self->{root}/conf/nginx.conf" or die $!;
    print $out $text;
    close $out;
}

sub master_pid {
    my ($self) = @_;
    open my $in, '<', "$self->{root}/logs/nginx.pid" or return undef;
    my $pid = <$in>;
    return $pid && $pid =~ /(\d+)/ ? $1 : undef;
}

# pid 1 here reaps slowly: a zombie counts as dead
sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    open my $in, '<', "/proc/$pid/stat" or return 0;
    return (<$in> // '') !~ /^\d+ \(.*\) [ZX] /;
}

sub children {
    my ($self) = @_;
    my $m = $self->master_pid() or return ();
    my @kids;
    for my $st (glob "/proc/[0-9]*/stat") {
        open my $in, '<', $st or next;
        my $line = <$in> // '';
        push @kids, $1 if $line =~ /^(\d+) \(.*\) [RSDT] (\d+) / && $2 == $m;
    }
    return sort { $a <=> $b } @kids;
}

sub start {
    my ($self, $text, $ready_uri) = @_;
    $self->write_conf($text) if defined $text;
    unlink "$self->{root}/logs/error.log";
    $self->{asan_before} = { map { $_ => 1 } asan_reports() }
        unless $self->{started}++;
    system("$bin -p $self->{root}/ -c $self->{root}/conf/nginx.conf "
           . "-e $self->{root}/logs/error.log") == 0
        or return 0;
    for (1 .. 400) {
        my ($code) = $self->http('GET', $ready_uri // '/health');
        if ($code == 200) {
            my $ok = $self->{ready} ? $self->{ready}->($self) : 1;
            $self->{log_mark} = length($self->log_text());
            return $ok;
        }
        sleep 0.025;
    }
    return 0;
}

sub signal {
    my ($self, $sig) = @_;
    my $m = $self->master_pid() or return 0;
    return kill $sig, $m;
}

# stops nginx if it runs, then (once a start) checks what it left behind
sub stop {
    my ($self) = @_;
    if (my $m = $self->master_pid()) {
        kill 'QUIT', $m;
        for (1 .. 250) { last unless alive($m); sleep 0.02; }
    }
    $self->check_clean() if delete $self->{started};
}

# the files ASan writes for a report when ASAN_OPTIONS has log_path=P:
# P.<pid>, one a process
sub asan_reports {
    my ($p) = ($ENV{ASAN_OPTIONS} // '') =~ /(?:^|[:,])log_path=([^:,]+)/
        or return ();
    my ($dir, $base) = $p =~ m{^(.*)/([^/]*)$} ? ($1 || '/', $2) : ('.', $p);
    opendir my $d, $dir or return ();
    return sort map { "$dir/$_" } grep { index($_, "$base.") == 0 } readdir $d;
}

# a sanitizer's report ("==PID==ERROR: AddressSanitizer: ...", UBSan's
# "file:line: runtime error: ..."), not the module's notice that it is
# built with AddressSanitizer
my $Bad = qr/\[(?:alert|emerg)\]|ERROR: \w*Sanitizer|Sanitizer CHECK failed|runtime error:/;

sub check_clean {
    my ($self) = @_;
    my @bad = grep { /$Bad/ }
              split /\n/, $self->log_text();
    for my $re (@{ $self->{allow_alerts} }) {
        @bad = grep { $_ !~ $re } @bad;
    }
    my @new = grep { !$self->{asan_before}{$_} } asan_reports();
    my @why = (@bad ? ("in $self->{root}/logs/error.log:", @bad) : ());
    for my $f (@new) {
        open my $in, '<', $f or next;
        local $/;
        push @why, "$f:", <$in> // '';
    }

    require Test::More;
    my $tb = Test::More->builder;
    my $name = "no alerts, no sanitizer report in $self->{name}'s error log";
    if ($tb->expected_tests && $tb->current_test >= $tb->expected_tests) {
        # past the plan (a stop in an END block): a test now would break it
        $tb->diag("not checked, stopped after the last test: $name",
                  @why ? ("it would fail:", @why) : ());
        return;
    }
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $tb->ok(!@bad && !@new, $name) or $tb->diag(join "\n", @why);
}

# the error log since start() returned (while a shipped instance starts,
# its front logs a [crit] for each worker socket not bound yet)
sub log_since_start {
    my ($self) = @_;
    return substr($self->log_text(), $self->{log_mark} // 0);
}

sub log_text {
    my ($self) = @_;
    open my $in, '<', "$self->{root}/logs/error.log" or return '';
    local $/;
    return <$in>;
}

sub request_raw {
    my ($method, $uri, $body, $headers) = @_;
    my $raw = "$method $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $raw .= "$_: $headers->{$_}\r\n" for sort keys %{ $headers // {} };
    $raw .= "Content-Length: " . length($body) . "\r\n" if defined $body;
    return $raw . "\r\n" . ($body // '');
}

sub send_req {
    my ($self, @req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $self->{addr},
                                  PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5) or return undef;
    print $s request_raw(@req);
    return $s;
}

# (status, body, { lowercased header => value })
sub read_resp {
    my ($s, $timeout) = @_;
    my $resp = '';
    my $deadline = time + ($timeout || 10);
    $s->blocking(0);
    while (time < $deadline) {
        my $n = sysread($s, my $buf, 65536);
        if (defined $n) { last if $n == 0; $resp .= $buf; next; }
        sleep 0.002;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($code) = ($head // '') =~ /^HTTP\/1\.1 (\d+)/;
    my %h;
    for (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    return ($code // 0, $body // '', \%h);
}

sub http {
    my ($self, @req) = @_;
    my $s = $self->send_req(@req) or return (0, '', {});
    return read_resp($s);
}

sub json_str {
    my ($v) = @_;
    $v =~ s/\\/\\\\/g; $v =~ s/"/\\"/g; $v =~ s/\n/\\n/g;
    return "\"$v\"";
}

sub execute {
    my ($self, $code, $sid, $extra, $headers) = @_;
    my $body = "{\"code\": " . json_str($code)
               . (defined $sid ? ", \"session_id\": " . json_str($sid) : '')
               . ($extra // '') . "}";
    return $self->http('POST', '/execute', $body,
                       { 'Content-Type' => 'application/json',
                         %{ $headers // {} } });
}

1;
