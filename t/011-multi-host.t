# vim:set ft= ts=4 sw=4 et fdm=marker:
# Beyond one machine: examples/multi-host.conf as a front hashing sessions
# over two hosts, each running the shipped nginx.conf on its own loopback
# address (127.0.0.2, 127.0.0.3).  Each session stays on one host with its
# state; GET /sessions gathers both; when a host leaves, only its sessions
# move.

use strict;
use warnings;

use Test::More tests => 15;
use POSIX ();
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;
use Pyexec::Shipped;

my $mod = $ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 3;
my $base = abs_path('.') . "/t/servroot-hosts";
my $secret = 'pyexec_session_secret "test-secret";';

# checkpoints of an earlier run would bring its sessions back
use File::Path qw(remove_tree);
remove_tree("$base/state");

my %host;
for my $name ('a', 'b') {
    my $addr = $name eq 'a' ? '127.0.0.2' : '127.0.0.3';
    # the state folder on storage both hosts share (here: one folder)
    my $ng = Pyexec::Shipped::instance(root => "$base/$name", addr => $addr,
                                       port => $port, http_extra => "    $secret",
                                       state => "$base/state");
    ok($ng->start(), "host $name on $addr starts") or BAIL_OUT($ng->log_text());
    $host{$name} = $ng;
}

sub front_conf {
    my ($without_b) = @_;
    open my $in, '<', 'examples/multi-host.conf' or die $!;
    local $/;
    my $c = <$in>;
    $c =~ s/^load_module .*;$/load_module $mod;/m or die;
    $c =~ s/^daemon off;$/daemon on;/m or die;
    $c =~ s/^worker_processes .*;$/worker_processes 1;/m or die;
    $c =~ s/^error_log .*;$/error_log $base\/front\/logs\/error.log info;/m or die;
    $c =~ s/^pid .*;$/pid logs\/nginx.pid;/m or die;
    $c =~ s/:8123\b/:$port/g or die;
    $c =~ s/^\s*server 127\.0\.0\.3:\d+[^;]*;\n//m or die if $without_b;
    return $c;
}

my $front = Pyexec::Instance->new(root => "$base/front", port => $port);
ok($front->start(front_conf(0)), 'the front of examples/multi-host.conf starts')
    or BAIL_OUT($front->log_text());

sub host_of {
    my ($h) = @_;
    my ($pid) = ($h->{'x-pyexec-worker'} // '') =~ m{/(\d+)$} or return '?';
    for my $name (keys %host) {
        return $name if grep { $_ == $pid } $host{$name}->children();
    }
    return '?';
}

my $counter = "n = globals().get('n', 0) + 1\nn";
my (%on, @ids, $failed);

for my $i (1 .. 60) {
    my ($code, $body, $h) = $i % 2 ? $front->execute($counter, "h-$i")
                                   : $front->execute($counter);
    my ($id) = $body =~ /"session_id":"([^"]+)"/
        or do { diag("first call $i: $code $body") unless $failed++; next };
    push @ids, $id;
    $on{$id} = host_of($h);
}

my ($moved, $bad) = (0, 0);
for my $round (2 .. 3) {
    for my $id (@ids) {
        my ($code, $body, $h) = $front->execute($counter, $id);
        $bad++ unless $code == 200 && $body =~ /"result":$round,/;
        $moved++ if host_of($h) ne $on{$id};
    }
}

my @a = grep { $on{$_} eq 'a' } @ids;
my @b = grep { $on{$_} eq 'b' } @ids;
diag(sprintf "sessions on host a: %d, on host b: %d", scalar @a, scalar @b);
is(scalar(@a) + scalar(@b), 60, 'every session landed on one of the two hosts');
ok(@a >= 15 && @b >= 15, 'both hosts hold sessions');
is($moved, 0, 'each session is always served by the same host');
is($bad, 0, 'state is intact over 3 calls in every session');

my ($code, $body) = $front->http('GET', '/sessions');
my %listed = map { $_ => 1 } $body =~ /"session_id":"([^"]+)"/g;
is(scalar(grep { $listed{$_} } @ids), 60, 'GET /sessions at the front lists both hosts');

# host b goes down: its sessions answer 503, host a's carry on
$host{b}->stop();
my ($down, $up) = (0, 0);
for my $id (@ids) {
    my ($c, $b2) = $front->execute($counter, $id);
    if ($on{$id} eq 'b') { $down++ if $c == 503 && $b2 =~ /"detail"/ }
    else                 { $up++ if $c == 200 && $b2 =~ /"result":4,/ }
}
is($down, scalar @b, 'with host b down its sessions get a JSON 503');
is($up, scalar @a, '... and host a\'s sessions keep working');

# host b leaves the list: only its sessions move, host a's stay put
$front->write_conf(front_conf(1));
$front->signal('HUP');
sleep 1;
my ($kept, $fresh, $shown) = (0, 0, 0);
for my $id (@ids) {
    my ($c, $b2, $h) = $front->execute($counter, $id);
    next unless $c == 200 && host_of($h) eq 'a';
    if ($on{$id} eq 'a') { $kept++ if $b2 =~ /"result":5,/ }
    # its three calls before host b went down, brought back on host a
    elsif ($b2 =~ /"result":4,.*"restored":\{"from_execution":3,/) { $fresh++ }
    elsif (!$shown++) { diag("$id: $c $b2") }
}
is($kept, scalar @a, 'after host b leaves, host a\'s sessions keep their state');
is($fresh, scalar @b, 'host b\'s sessions come back on host a with their state (shared state folder)');

$front->stop();
$host{a}->stop();

END {
    $front->stop() if $front;
    $_->stop() for values %host;
}
