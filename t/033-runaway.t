# vim:set ft= ts=4 sw=4 et fdm=marker:
# Runaway cells (API.md 2.8) on the shipped nginx.conf: a cell that
# swallows its TimeoutError is still stopped in Python (the ladder's trace
# stage) and its session and worker stay; POST /sessions/{id}/interrupt
# stops a running cell (KeyboardInterrupt first); a cell stuck in C code
# recycles its worker, its neighbours come back from their checkpoints and
# the request queued behind it gets 503 with Retry-After; every reply says
# how the cell ended ("termination": every reason is seen here) and what
# it used ("usage"); the threads of a deleted session are stopped.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time stat);
use lib 't/lib';
use Pyexec::Cells;
use Pyexec::Instance;
use Pyexec::Shipped;

# (pyexec_front_handoff off: the last block is what the front says when a
# worker dies under a cell it proxied; with hand-offs, a cell runs in the
# worker that holds the client's connection, t/038-front.t)
my $c = Pyexec::Cells->new(name => 'runaway', port_offset => 19,
    set => { pyexec_kill_grace => '3s', pyexec_interrupt_grace => '500ms' },
    http_extra => '    pyexec_front_handoff off;',
    allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/,
                     qr/\[alert\].*pyexec: cell \d+ did not stop \d+ ms after its time limit/,
                     qr/\[alert\].*pyexec: worker exits to be replaced/]);
my $ng = $c->ng;
ok($c->start, 'the shipped nginx.conf starts with two workers');

my $json = JSON::PP->new->utf8->canonical;

sub post_cell {
    my ($sid, $code, %o) = @_;
    my %req = (code => $code, session_id => $sid);
    $req{timeout} = $o{timeout} if $o{timeout};
    return $ng->send_req('POST', '/execute', $json->encode(\%req),
                         { 'Content-Type' => 'application/json' });
}

sub answer {
    my ($s, $wait) = @_;
    my ($st, $body, $h) = Pyexec::Instance::read_resp($s, $wait // 30);
    return ($st, (eval { $json->decode($body) } // { raw => $body }), $h);
}

sub ended {
    my ($r) = @_;
    my $t = $r->{termination} // {};
    return ($t->{reason} // '<none>') . '/' . ($t->{stage} // 'null');
}

# --- every reply: termination and usage --------------------------------------

my $sid = $c->id_on(0, 'runaway');
my ($r, $st, undef, $pid0) = $c->cell($sid, "x = 41\nx + 1");
is($r->{result}, 42, 'a cell runs');
is(ended($r), 'ok/null', 'it ended "ok"');
is_deeply([sort keys %{ $r->{usage} }],
          [qw(cpu_ms rss_delta_kib stderr_bytes stdout_bytes wall_ms)],
          'usage has its five fields');

($r) = $c->cell($sid, "1 / 0");
is(ended($r), 'error/null', 'an exception: "error"');

($r) = $c->cell($sid, "import sys\nprint('\x{e9}' * 10)\nsys.stderr.write('abc')");
is($r->{usage}{stdout_bytes}, 21, 'stdout_bytes counts UTF-8 bytes (10 x 2 + newline)');
is($r->{usage}{stderr_bytes}, 3, 'stderr_bytes');

($r) = $c->cell($sid, "print('y' * (3 * 2**20))");
ok($r->{truncated}, 'output over pyexec_output_max is cut');
is($r->{usage}{stdout_bytes}, 3 * 2**20 + 1, 'stdout_bytes counts what the cap cut too');

($r) = $c->cell($sid, "n = 0\nwhile n < 3 * 10**6:\n    n += 1");
ok($r->{usage}{cpu_ms} > 0.5 * $r->{usage}{wall_ms},
   "a busy loop's CPU time is its wall time ($r->{usage}{cpu_ms} of $r->{usage}{wall_ms} ms)");
($r) = $c->cell($sid, "import time\ntime.sleep(0.3)");
ok($r->{usage}{wall_ms} >= 300 && $r->{usage}{cpu_ms} < 0.5 * $r->{usage}{wall_ms},
   "a sleep's CPU time is not ($r->{usage}{cpu_ms} of $r->{usage}{wall_ms} ms)");

($r) = $c->cell($sid, "big = b'x' * (100 * 2**20)");
ok($r->{usage}{rss_delta_kib} >= 90 * 1024,
   "100 MiB kept by the session shows in rss_delta_kib ($r->{usage}{rss_delta_kib})");
($r) = $c->cell($sid, "del big");
ok($r->{usage}{rss_delta_kib} <= -90 * 1024,
   "and leaves it when deleted ($r->{usage}{rss_delta_kib})");

SKIP: {
    # ASan maps terabytes of shadow memory: the module ignores the limit
    skip 'pyexec_memory_limit is off under AddressSanitizer (make test-asan)', 2
        if ($ENV{LD_PRELOAD} // '') =~ /asan/;
    ($r) = $c->cell($sid, "b = bytearray(10**11)");
    is($r->{error_name}, 'MemoryError', 'more than pyexec_memory_limit: MemoryError');
    is(ended($r), 'memory/null', 'termination "memory"');
}

# --- the ladder: a cell that swallows its TimeoutError --------------------------

my $swallow = <<'_PY_';
caught = 0
while True:
    try:
        while True:
            pass
    except BaseException:
        caught += 1
_PY_
my $t0 = time;
($r, $st, undef, my $pid) = $c->cell($sid, $swallow, timeout => 1);
my $took = time - $t0;
is($st, 200, 'a cell that catches BaseException in a loop is answered');
is($r->{error_name}, 'TimeoutError', 'with TimeoutError');
is(ended($r), 'timeout/trace', 'ended by the trace stage');
ok($took < 3, sprintf('before the kill grace (%.2f s)', $took));
is($pid, $pid0, 'by the same worker: not recycled');
($r) = $c->cell($sid, "print(x, caught >= 1)");
is($r->{stdout}, "41 True\n", 'the session keeps its variables, the loop caught it once');
like($c->log_after_start,
     qr/\[warn\].*cell \d+ still runs \d+ ms after it ran past its time limit: raising at every line/,
     'the trace stage is logged');

my $finally = <<'_PY_';
import time
while True:
    try:
        try:
            time.sleep(10)
        finally:
            for i in range(10**9):
                try:
                    time.sleep(0.01)
                except BaseException:
                    continue
    except BaseException:
        pass
_PY_
($r) = $c->cell($sid, $finally, timeout => 1);
is(ended($r), 'timeout/trace', 'a cell that sleeps on inside finally and except is stopped too');
($r) = $c->cell($sid, "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    raise KeyError('k')");
is(scalar(grep { /TimeoutError/ } @{ $r->{traceback} }), 0,
   'the next exception carries no context of the stopped cell');

($r) = $c->cell($sid, "import time\ntime.sleep(30)", timeout => 1);
is(ended($r), 'timeout/exception', 'a sleeping cell ends at the first stage');

# --- interrupt --------------------------------------------------------------------

my $s = post_cell($sid, "import time\nslept = 0\ntime.sleep(60)\nslept = 1", timeout => 120);
sleep 0.5;
my ($ist, $ibody) = $ng->http('POST', "/sessions/$sid/interrupt");
my $asked = time;
is($ist, 200, 'POST /sessions/{id}/interrupt answers 200');
is($ibody, qq({"interrupted":true,"session_id":"$sid"}), '"interrupted": true');
($st, $r) = answer($s);
my $after = time - $asked;
is($r->{error_name}, 'KeyboardInterrupt', 'the cell gets KeyboardInterrupt');
# a Jupyter kernel's interrupt of the same cell (jupyter_client's
# interrupt_kernel): ename KeyboardInterrupt, evalue '', slept still 0
is($r->{error}, 'KeyboardInterrupt', 'with no message, as in a Jupyter kernel');
is(ended($r), 'interrupted/exception', 'termination "interrupted"');
ok($after < 5, sprintf('time.sleep(60) answered %.2f s after the interrupt', $after));
($r) = $c->cell($sid, "print(x, slept)");
is($r->{stdout}, "41 0\n", 'the session is usable and kept its state');

($ist, $ibody) = $ng->http('POST', "/sessions/$sid/interrupt");
is($ibody, qq({"interrupted":false,"session_id":"$sid"}), 'nothing running: "interrupted": false');
($ist, $ibody) = $ng->http('POST', "/sessions/no-such-session-x/interrupt");
is($ist, 404, 'an unknown session: 404');

$s = post_cell($sid, $swallow, timeout => 120);
sleep 0.5;
$ng->http('POST', "/sessions/$sid/interrupt");
($st, $r) = answer($s);
is(ended($r), 'interrupted/trace', 'an interrupt swallowed in a loop escalates to the trace stage');

# --- a deleted session's threads -----------------------------------------------------

my $doomed = $c->id_on(0, 'doomed');
my $threads = <<'_PY_';
import threading, time
def spin():
    while True:
        try:
            time.sleep(0.02)
        except BaseException:
            pass
def nap():
    while True:
        time.sleep(0.05)
for f in (spin, nap):
    threading.Thread(target=f, name="doomed-" + f.__name__, daemon=True).start()
print(sorted(t.name for t in threading.enumerate() if t.name.startswith("doomed")))
_PY_
($r) = $c->cell($doomed, $threads);
is($r->{stdout}, "['doomed-nap', 'doomed-spin']\n", 'a session starts two threads, one swallowing exceptions');
($st) = $ng->http('DELETE', "/sessions/$doomed");
is($st, 200, 'the session is deleted');
my $left = '?';
for (1 .. 40) {
    ($r) = $c->cell($sid, "import threading\nprint(sorted(t.name for t in threading.enumerate() if t.name.startswith('doomed')))");
    $left = $r->{stdout};
    last if $left eq "[]\n";
    sleep 0.1;
}
is($left, "[]\n", 'both threads are gone after the interrupt grace');

# --- a C loop: the worker is recycled, its neighbours come back ----------------------

my $neighbour = $c->id_on(0, 'neighbour');
($r) = $c->cell($neighbour, "state = 42");
ok($r->{success}, 'a neighbour on the same worker has state');
# checkpoints are written once the worker is idle, and a session at most
# every fifty times its last checkpoint's cost: wait until this one is
my $ckpt = Pyexec::Shipped::checkpoint_path($ng, $sid);
my $before = (stat $ckpt)[9] // 0;
($r) = $c->cell($sid, "x = 43");
for (1 .. 600) { last if ((stat $ckpt)[9] // 0) > $before; sleep 0.05 }
ok(((stat $ckpt)[9] // 0) > $before, 'the session is checkpointed after its cell');
sleep 0.3;      # and the neighbour's

$t0 = time;
my $stuck = post_cell($sid, "sum(range(4 * 10**10))", timeout => 1);
sleep 0.3;
my $queued = post_cell($neighbour, "state + 1");
my ($qst, $qr, $qh) = answer($queued);
my $queued_at = time - $t0;
is($qst, 503, 'the request queued behind the stuck cell gets 503');
is($qh->{'retry-after'}, '1', 'with Retry-After');
like($qr->{detail}, qr/the worker is restarting .*did not run: retry/, 'and a JSON reason');
is(ended($qr), 'worker_lost/recycle', 'termination "worker_lost"');
ok($queued_at < 8, sprintf('answered at the kill grace (%.2f s after the stuck cell)', $queued_at));

($st, $r) = answer($stuck);
is($st, 504, 'the stuck cell gets 504');
is(ended($r), 'timeout/recycle', 'ended by the recycle stage');

my $restored;
for (1 .. 100) {
    ($r, $st) = $c->cell($neighbour, "state + 1");
    last if $st == 200;
    sleep 0.1;
}
is($r->{result}, 43, 'the neighbour\'s state is back on the new worker');
ok($r->{restored}, 'from its checkpoint');
($r) = $c->cell($sid, "x");
is($r->{result}, 43, 'the stuck session is back from its last checkpoint too');

# --- a worker killed mid-cell: the front says worker_lost ---------------------------------

# every worker also serves the front: a client whose connection the killed
# worker had accepted loses it with the worker; try until the other one did
my ($h, $tries) = ({}, 0);
while ($tries++ < 12) {
    my $victim = $c->id_on(1, "victim$tries");
    ($r, undef, undef, $pid) = $c->cell($victim, "1");
    next unless $pid;
    $s = post_cell($victim, "import time\ntime.sleep(20)", timeout => 30);
    sleep 0.5;
    kill 'KILL', $pid;
    ($st, $r, $h) = answer($s);
    last if $st;
    sleep 0.5;
}
is($st, 503, "a cell whose worker died: 503 from the front (try $tries)");
is($h->{'retry-after'}, '1', 'with Retry-After');
is(ended($r), 'worker_lost/null', 'termination "worker_lost"');

my $log = $c->log_after_start;
# the front logs the killed worker's connection as an upstream [error]
my @errors = grep { /\[error\]/ && !/upstream prematurely closed|connect\(\) to unix:/ }
             split /\n/, $log;
is(join("\n", @errors), '', 'no other [error] in the log');
unlike($log, qr/signal 11|core dumped|\[emerg\]/, 'no crash');

$c->stop;
done_testing();
