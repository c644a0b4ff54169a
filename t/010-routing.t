# vim:set ft= ts=4 sw=4 et fdm=marker:
# Routing through the shipped nginx.conf (front server + one unix socket per
# worker, upstream hash $pyexec_session_id consistent): every session stays
# on one worker with its state, the spread is even, GET /sessions gathers
# all workers, kill -9 loses only one worker's sessions and its socket is
# back within a second, reload under traffic gives no 502.
#
# Plain Test::More: several processes, values carried between requests.

use strict;
use warnings;

use Test::More tests => 30;
use Time::HiRes qw(sleep time);
use IO::Socket::UNIX;
use POSIX ();
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;
use Pyexec::Shipped;

$ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 2;
my $root = abs_path('.') . "/t/servroot-routing";

# the master logs the worker this file kills -9 at alert
my $ng = Pyexec::Shipped::instance(root => $root, port => $port,
    allow_alerts => [qr/\[alert\].*: worker process \d+ exited on signal 9/]);

ok($ng->start(), 'the shipped nginx.conf starts and answers /health')
    or BAIL_OUT("cannot start:\n" . $ng->log_text());

my $counter = "n = globals().get('n', 0) + 1\nn";

sub worker_of { my ($h) = @_; ($h->{'x-pyexec-worker'} // '') =~ m{^(\d+)/(\d+)$} ? ($1, $2) : () }

# {{{ 200 sessions x 5 calls: half named by the client, half minted

my (%worker, %pid, @ids, $bad_state, $moved, $no_header);
$bad_state = $moved = $no_header = 0;

for my $i (1 .. 100) { push @ids, "client-$i-" . ('x' x ($i % 7)) }

# the front places minted sessions on warm workers only
ok(Pyexec::Shipped::wait_warm($ng), 'both workers are warm');

my $minted_ok = 0;
for my $i (1 .. 100) {
    my ($code, $body, $h) = $ng->execute($counter);
    my ($id) = $body =~ /"session_id":"([^"]+)"/;
    my ($w, $p) = worker_of($h);
    $minted_ok++ if $code == 200 && $body =~ /"result":1,/ && defined $w && $id;
    next unless $id;
    push @ids, $id;
    ($worker{$id}, $pid{$id}) = ($w, $p);
}
is($minted_ok, 100, 'a session minted by the front is created on a worker and answered');

for my $round (1 .. 5) {
    for my $k (0 .. $#ids) {
        my $id = $ids[$k];
        next if $k >= 100 && $round == 1;      # minted ones had call 1
        # every third session uses the X-Session-Id header, not the body
        my ($code, $body, $h) = $k % 3 == 2
            ? $ng->execute($counter, undef, undef, { 'X-Session-Id' => $id })
            : $ng->execute($counter, $id);
        my ($w) = worker_of($h);
        if (!defined $w) { $no_header++; next }
        $bad_state++ unless $code == 200 && $body =~ /"result":$round,/
                            && $body =~ /"session_id":"\Q$id\E"/;
        $worker{$id} //= $w;
        $moved++ if $worker{$id} != $w;
    }
}

is($no_header, 0, 'every response names its worker (X-Pyexec-Worker)');
is($moved, 0, 'each of 200 sessions is always served by the same worker');
is($bad_state, 0, 'state is intact over 5 calls in every session (1000 requests)');

my %per;
$per{$worker{$_}}++ for @ids;
my @counts = map { $per{$_} // 0 } 0, 1;
diag("sessions per worker: @counts");
ok($counts[0] >= 75 && $counts[0] <= 125 && $counts[1] >= 75 && $counts[1] <= 125,
   'the spread over 2 workers is within 25% of even');

# }}}
# {{{ sessions through the front

{
    my ($code, $body) = $ng->http('GET', '/sessions');
    my %listed = map { $_ => 1 } $body =~ /"session_id":"([^"]+)"/g;
    is($code, 200, 'GET /sessions through the front');
    is(scalar(grep { $listed{$_} } @ids), 200, 'it lists the sessions of all workers');
    like($body, qr/"partial":false/, 'no worker left out');

    my $ok = 0;
    for my $id (@ids[0 .. 9], @ids[100 .. 109]) {
        (my $esc = $id) =~ s/([^A-Za-z0-9_.~-])/sprintf("%%%02X", ord $1)/ge;
        my ($c, $b, $h) = $ng->http('GET', "/sessions/$esc");
        my ($w) = worker_of($h);
        $ok++ if $c == 200 && $b =~ /"variables":\["n"\]/ && $w == $worker{$id};
    }
    is($ok, 20, 'GET /sessions/{id} reaches the worker that holds the session');

    my ($c) = $ng->http('DELETE', "/sessions/$ids[0]");
    my ($c2) = $ng->http('GET', "/sessions/$ids[0]");
    is("$c $c2", '200 404', 'DELETE /sessions/{id} through the front');
    shift @ids;

    ($c, $b) = $ng->http('POST', '/sessions', '');
    my ($new) = $b =~ /"session_id":"([^"]+)"/;
    my ($c3, $b3) = $ng->execute('n = 41', $new);
    my ($c4, $b4) = $ng->execute('n + 1', $new);
    ok($c == 200 && $c3 == 200 && $b4 =~ /"result":42,/,
       'POST /sessions makes a session the front routes back to');
}

# }}}
# {{{ kill -9 of one worker

{
    my @kids = $ng->children();
    is(scalar @kids, 2, 'two workers');

    my ($victim_pid) = map { $pid{$_} } grep { defined $pid{$_} && $worker{$_} == 0 } @ids;
    my $sock = "$root/sock/pyexec.sock.0";
    # the last cells' checkpoints are written once the workers are idle
    sleep 1;
    my $t0 = time;
    kill 'KILL', $victim_pid;

    my $back;
    while (time - $t0 < 5) {
        my $s = IO::Socket::UNIX->new(Peer => $sock, Type => SOCK_STREAM);
        if ($s && Pyexec::Instance::alive($victim_pid) == 0) {
            print $s Pyexec::Instance::request_raw('GET', '/health');
            my ($code) = Pyexec::Instance::read_resp($s, 2);
            if ($code == 200) { $back = time - $t0; last }
        }
        sleep 0.01;
    }
    ok(defined $back && $back < 1, 'the killed worker\'s socket answers again within 1 s')
        and diag(sprintf "socket back after %.0f ms", $back * 1000);

    # durable sessions: the killed worker's sessions come back from their
    # checkpoints on the worker that replaced it, state and count included
    my ($kept, $restored, $other) = (0, 0, 0);
    for my $id (@ids) {
        my ($code, $body, $h) = $ng->execute($counter, $id);
        my ($w) = worker_of($h);
        if ($worker{$id} == 1) {
            $kept++ if $code == 200 && $body =~ /"result":6,/ && $w == 1
                       && $body !~ /"restored"/;
        } elsif ($code == 200 && $body =~ /"result":6,/ && $w == 0
                 && $body =~ /"execution_count":6,/
                 && $body =~ /"restored":\{"from_execution":5,"lost":\[\]\}/)
        {
            $restored++;
        } else {
            $other++;
            diag("$id: $code $body") if $other < 3;
        }
    }
    my $on1 = grep { $worker{$_} == 1 } @ids;
    is($kept, $on1, 'the other worker\'s sessions keep their state');
    is($restored, scalar(grep { $worker{$_} == 0 } @ids),
       'the killed worker\'s sessions (minted and client-named) are restored with their state');
}

# }}}
# {{{ reload under traffic

{
    my @before = $ng->children();
    my $minted_before = (grep { !/^client-/ && $worker{$_} == 1 } @ids)[0];
    my $out = "$root/traffic.txt";
    unlink $out;

    my $child = fork // die "fork: $!";
    if ($child == 0) {
        # _exit: the END block that stops nginx is the parent's
        open my $fh, '>', $out or POSIX::_exit(1);
        my $t0 = time;
        my $n = 0;
        while (time - $t0 < 2.5) {
            my $id = $n % 2 ? "reload-" . ($n % 10) : undef;
            my ($code) = $ng->execute('1 + 1', $id);
            print $fh "$code\n";
            $n++;
        }
        close $fh;
        POSIX::_exit(0);
    }

    sleep 0.5;
    ok($ng->signal('HUP'), 'reload signalled');
    waitpid($child, 0);

    open my $fh, '<', $out or die;
    my @codes = map { chomp; $_ } <$fh>;
    my @bad = grep { $_ != 200 } @codes;
    diag(scalar(@codes) . " requests during the reload, not 200: @bad");
    cmp_ok(scalar @codes, '>', 50, 'traffic kept flowing through the reload');
    # sessions outlive the reload (checkpoints): nothing but 200, 502 least
    # of all
    ok(@bad == 0, 'no 502 (nor any other error) during the reload');

    my @after = $ng->children();
    my %old = map { $_ => 1 } @before;
    is(scalar(grep { !$old{$_} } @after), 2, 'both workers were replaced');

    my ($code, $body) = $ng->execute($counter, $minted_before);
    is($code, 200, 'a session minted before the reload answers');
    like($body, qr/"result":7,.*"restored":\{"from_execution":6,/,
         '... restored from its checkpoint, its state kept');

    ($code, $body) = $ng->execute($counter);
    like("$code $body", qr/^200 .*"result":1,/, 'new sessions work after the reload');

    ok(-S "$root/sock/pyexec.sock.0" && -S "$root/sock/pyexec.sock.1",
       'both worker sockets are in place');
    my @tmp = glob("$root/sock/*.tmp");
    is(scalar @tmp, 0, 'no temporary socket left behind');
}

# }}}
# {{{ unavailable worker: a JSON answer, not nginx's page

{
    $ng->stop();
    ok(!-e "$root/sock/pyexec.sock.0" && !-e "$root/sock/pyexec.sock.1",
       'quit removes the worker sockets');

    my $log = $ng->log_since_start();
    my @alerts = grep { /\[(alert|crit|emerg)\]/ && !/exited on signal 9/ }
                 split /\n/, $log;
    is(join("\n", @alerts), '', 'no alert in the error log but the kill -9');
    like($log, qr/worker 1 listens on unix:\S+pyexec\.sock\.1/, 'the log names each worker socket');
}

# }}}

END { $ng->stop() if $ng }
