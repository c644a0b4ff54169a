# vim:set ft= ts=4 sw=4 et fdm=marker:
# Placement (issue "many agents") on the shipped nginx.conf: a session the
# front mints goes to the least busy warm worker -- fewest cells running
# or queued, then fewest sessions -- and its id names that worker, so every
# later call of it goes there (pyexec_placement over the consistent hash);
# a worker still importing pyexec_session_init's modules (warm: false in
# its /status) gets no new session while another is warm.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Pyexec::Cells;
use Pyexec::Instance;

my $c = Pyexec::Cells->new(name => 'placement', port_offset => 20,
    # a worker restarted by a preloading master is warm at once: the cold
    # worker below is one that imports for itself
    set => { pyexec_preload => 'off' },
    allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/]);
my $ng = $c->ng;
ok($c->start, 'the shipped nginx.conf starts with two workers');

my $json = JSON::PP->new->utf8->canonical;

# the /status of worker $w, through the front (a client-named id on it)
my %probe = (0 => $c->id_on(0, 'status'), 1 => $c->id_on(1, 'status'));
sub status_of {
    my ($w) = @_;
    my ($st, $body) = $ng->http('GET', '/status', undef,
                                { 'X-Session-Id' => $probe{$w} });
    return eval { $json->decode($body) } // {};
}

sub wait_warm {
    my ($w) = @_;
    for (1 .. 300) {
        return 1 if status_of($w)->{warm};
        sleep 0.05;
    }
    return 0;
}

ok(wait_warm(0) && wait_warm(1), 'both workers are warm');

# a new session: POST /execute without an id; (worker, session id)
sub fresh {
    my ($r, $st, undef, undef) = $c->cell(undef, '1');
    my ($sid) = $r ? $r->{session_id} : '';
    return $sid;
}

sub worker_of_session {
    my ($sid, $code) = @_;
    my $s = $ng->send_req('POST', '/execute',
                          $json->encode({ code => $code // '1', session_id => $sid }),
                          { 'Content-Type' => 'application/json' });
    my ($st, $body, $h) = Pyexec::Instance::read_resp($s, 30);
    my ($w) = Pyexec::Cells::worker_of($h);
    return $st == 200 ? $w : "status $st";
}

# the worker a minted id names: its eighth byte, minus one
sub named {
    my ($sid) = @_;
    return $sid =~ /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]([0-9a-f]{2})-/ ? hex($1) - 1 : -1;
}

# --- idle workers: new sessions spread, each stays where it was put -------

my (%on, @sids);
for (1 .. 8) {
    my $sid = fresh();
    push @sids, $sid;
    my $w = worker_of_session($sid, 'x = 1');
    $on{$w}++;
    is(named($sid), $w, "minted id $sid names the worker that holds it ($w)");
}
is($on{0} // 0, $on{1} // 0, "8 new sessions on idle workers: 4 and 4");

my $moved = 0;
for my $sid (@sids) {
    for (1 .. 3) {
        $moved++ if worker_of_session($sid, 'x += 1') != named($sid);
    }
}
is($moved, 0, 'every later call of a placed session goes to its worker');

# --- a busy worker gets no new session ------------------------------------------

my $busy = $c->id_on(0, 'busy');
my $long = $ng->send_req('POST', '/execute',
                         $json->encode({ code => "import time\ntime.sleep(4)",
                                         session_id => $busy }),
                         { 'Content-Type' => 'application/json' });
sleep 0.3;
my %busy_on;
for (1 .. 6) {
    my $sid = fresh();
    $busy_on{ named($sid) }++;
}
is_deeply(\%busy_on, { 1 => 6 },
          'while worker 0 runs a cell, the 6 sessions minted go to worker 1');
my ($st) = Pyexec::Instance::read_resp($long, 30);
is($st, 200, 'the long cell answered');

# --- a cold worker gets no new session while another is warm --------------------

my $pid1 = status_of(1)->{pid};
ok($pid1, "worker 1 is pid $pid1");
kill 'KILL', $pid1;
my $cold;
for (1 .. 200) {
    my $s = status_of(1);
    if ($s->{pid} && $s->{pid} != $pid1) { $cold = $s; last }
    sleep 0.02;
}
ok($cold, 'a new worker 1 answers');
# (its session_init imports pandas, matplotlib and scikit-learn: seconds)
is($cold && $cold->{warm}, JSON::PP::false, 'its /status says it is not warm yet');
my %cold_on;
$cold_on{ named(fresh()) }++ for 1 .. 4;
is_deeply(\%cold_on, { 0 => 4 }, 'sessions minted meanwhile go to the warm worker 0');
ok(wait_warm(1), 'worker 1 warms up');
my %after;
$after{ named(fresh()) }++ for 1 .. 8;
ok(($after{1} // 0) >= 4, 'then new sessions go to worker 1 again (fewer sessions): '
   . join(' ', map { "$_:$after{$_}" } sort keys %after));

my $log = $c->log_after_start;
# the front logs the killed worker's connections as upstream [error]s
my @errors = grep { /\[error\]/ && !/upstream prematurely closed|connect\(\) to unix:|recv\(\) failed .* from upstream/ }
             split /\n/, $log;
is(join("\n", @errors), '', 'no [error] in the log');

$c->stop;
done_testing();
