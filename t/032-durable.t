# vim:set ft= ts=4 sw=4 et fdm=marker:
# Durable sessions (API.md 2.7) on the shipped nginx.conf: a session built
# with a number, a DataFrame, an instance of a cell-defined class, a fitted
# scikit-learn model, an open file and a generator comes back after
# `nginx -s reload`, after kill -9 of its worker and after its worker is
# recycled by a neighbour's stuck C call: every picklable value equal, the
# file and the generator listed as lost.  A torn checkpoint and another
# session's checkpoint are refused with a clear 410; DELETE removes the
# checkpoint; a state folder others can write stops the start.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Cells;
use Pyexec::Instance;
use Pyexec::Shipped;

my $c = Pyexec::Cells->new(name => 'durable', port_offset => 17,
    allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/,
                     qr/\[alert\].*pyexec: cell \d+ did not stop \d+ ms after its time limit/,
                     qr/\[alert\].*pyexec: worker exits to be replaced/]);
my $ng = $c->ng;
my $root = $ng->root;
ok($c->start, 'the shipped nginx.conf starts with two workers');

my $state = "$root/state";
my @st = stat $state;
ok(@st && ($st[2] & 07777) == 0700, sprintf('the state folder is private (%o)', $st[2] & 07777));

sub ckpt { Pyexec::Shipped::checkpoint_path($ng, $_[0]) }

# the checkpoint writers (pyexec-ckpt) that worker $ppid forked, from
# /proc (not ps: under make test-asan a tool run from here would get the
# sanitizer preloaded)
sub writers {
    my ($ppid) = @_;
    my $n = 0;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $f, '<', $stat or next;
        my $line = <$f> // '';
        $n++ if $line =~ /^\d+ \(pyexec-ckpt\) \S+ (\d+) / && $1 == $ppid;
    }
    return $n;
}

sub wait_ckpt {
    my ($sid) = @_;
    for (1 .. 200) { return 1 if -s ckpt($sid); sleep 0.025 }
    return 0;
}

my $build = <<'_PY_';
import pandas as pd
import numpy as np
from sklearn.linear_model import LinearRegression
x = 41
df = pd.DataFrame({"a": np.arange(1000), "b": np.arange(1000) * 0.5})
class Point:
    def __init__(self, v):
        self.v = v
    def double(self):
        return 2 * self.v
p = Point(21)
m = LinearRegression().fit(df[["a"]], df["b"])
f = open("/etc/hostname")
g = (i for i in range(3))
_PY_

my $check = 'print(x, int(df.b.sum() * 2), p.double(), round(float(m.coef_[0]), 6), '
            . 'type(p).__name__, "f" in globals(), "g" in globals())';

my $sid = $c->id_on(0, 'durable');
my ($r, $code) = $c->cell($sid, $build, timeout => 60);
ok($r && $r->{success}, 'the session is built') or diag(explain $r);
($r) = $c->cell($sid, $check);
my $want = $r->{stdout};
is($want, "41 499500 42 0.5 Point True True\n", 'its values');
ok(wait_ckpt($sid), 'a checkpoint is written after the cell');

sub lost_names {
    my ($r) = @_;
    return join ',', sort map { $_->{name} } @{ $r->{restored}{lost} // [] };
}

# --- nginx -s reload --------------------------------------------------------

ok(Pyexec::Shipped::reload($ng), 'reload');

($r, $code) = $c->cell($sid, $check);
is($code, 200, 'after the reload the session answers');
ok($r->{restored}, '... restored from its checkpoint') or diag(explain $r);
is($r->{restored}{from_execution}, 2, '... at the execution it had reached');
is($r->{stdout}, "41 499500 42 0.5 Point False False\n",
   '... every picklable value equal, the cell-defined class included');
is(lost_names($r), 'f,g', '... the open file and the generator listed as lost');
my %why = map { $_->{name} => "$_->{type}: $_->{reason}" } @{ $r->{restored}{lost} };
like($why{f}, qr/^TextIOWrapper: an open file/, '... with type and reason (file)');
like($why{g}, qr/^generator: .*pickle/, '... with type and reason (generator)');
is($r->{execution_count}, 3, 'the execution count goes on from there');

# --- kill -9 of its worker ----------------------------------------------------

($r) = $c->cell($sid, "x += 1\n$check");
like($r->{stdout}, qr/^42 /, 'a cell after the restore');
ok(wait_ckpt($sid), 'checkpointed');
sleep 0.5;
my (undef, undef, undef, $pid) = $c->cell($sid, "1");
sleep 0.5;
kill 'KILL', $pid;
my $back;
for (1 .. 200) {
    ($r, $code) = $c->cell($sid, $check);
    if ($code == 200) { $back = 1; last }
    sleep 0.05;
}
ok($back, 'after kill -9 of its worker the session answers');
is($r->{stdout}, "42 499500 42 0.5 Point False False\n", '... with its values');
ok($r->{restored}, '... restored');

# --- a neighbour's stuck C call recycles the worker ------------------------

($r) = $c->cell($sid, "x += 1\n$check");
ok(wait_ckpt($sid), 'checkpointed again');
sleep 0.5;
my $stuck = $c->id_on(0, 'stuck');
($r, $code) = $c->cell($stuck, "sum(range(10**12))", timeout => 0.5);
is($code, 504, 'a stuck C call on the same worker: 504');
$back = 0;
for (1 .. 400) {
    ($r, $code) = $c->cell($sid, $check);
    if ($code == 200) { $back = 1; last }
    sleep 0.05;
}
ok($back && $r->{stdout} eq "43 499500 42 0.5 Point False False\n" && $r->{restored},
   'after the recycle the other session is restored with its values')
    or diag(explain $r);

# --- a session changed while the worker was busy, then a stuck C call that
#     releases the GIL: written just before the recycled worker exits

my $busy = $c->id_on(0, 'busy');
my $held = $c->id_on(0, 'held');
my $s1 = $ng->send_req('POST', '/execute',
    '{"code": "import time\ntime.sleep(1)\nz = 5", "session_id": "' . $busy . '"}',
    { 'Content-Type' => 'application/json' });
sleep 0.2;
my $s2 = $ng->send_req('POST', '/execute',
    '{"code": "import signal, ctypes\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN + 3])\nctypes.CDLL(None).sleep(30)", "session_id": "' . $held . '", "timeout": 0.5}',
    { 'Content-Type' => 'application/json' });
my ($st1) = Pyexec::Instance::read_resp($s1, 20);
is($st1, 200, 'a cell that ends while a stuck one is queued behind it');
ok(!-e ckpt($busy), '... is not checkpointed then (the worker is busy)');
my ($st2) = Pyexec::Instance::read_resp($s2, 30);
is($st2, 504, 'the stuck ctypes call: 504');
$back = 0;
for (1 .. 400) {
    ($r, $code) = $c->cell($busy, "z");
    if ($code == 200) { $back = 1; last }
    sleep 0.05;
}
ok($back && ($r->{result} // '') eq '5' && $r->{restored},
   'the recycled worker wrote it before it exited: restored')
    or diag(explain $r);
like($c->log_after_start, qr/checkpointed the 1 changed sessions before the exit/,
     '... as its log says');

# --- a torn checkpoint, another session's checkpoint ---------------------------

my $torn = $c->id_on(0, 'torn');
my $foreign = $c->id_on(0, 'foreign');
(undef, undef, undef, $pid) = $c->cell($torn, "t = 1");
$c->cell($foreign, "y = 2");
ok(wait_ckpt($torn) && wait_ckpt($foreign), 'two more sessions checkpointed');
sleep 0.5;
{
    open my $fh, '+<', ckpt($torn) or die $!;
    truncate $fh, (-s ckpt($torn)) / 2;
    close $fh;
}
system('cp', ckpt($sid), ckpt($foreign)) == 0 or die "cp";
kill 'KILL', $pid;
for (1 .. 200) { ((undef, $code) = $c->cell($c->id_on(0, 'up'), "1")); last if $code == 200; sleep 0.05 }

my ($st, $body) = $ng->execute("t", $torn);
is($st, 410, 'a torn checkpoint: 410');
like($body, qr/"detail":"session lost: checkpoint unreadable/, '... saying why');
($st, $body) = $ng->execute("y", $foreign);
is($st, 410, "another session's checkpoint: 410");
like($body, qr/"detail":"session lost: checkpoint of another session"/, '... saying why');
like($c->log_after_start, qr/\[error\].*not restored from .*checkpoint unreadable/,
     'the refusal is logged');
($st, $body) = $ng->execute("1 + 1", $sid);
is($st, 200, 'the worker did not crash');

# --- one step of undo -----------------------------------------------------------

($r) = $c->cell($sid, "del df");
ok($r && $r->{success}, 'del df');
ok(wait_ckpt($sid), 'checkpointed');
sleep 0.5;
($st, $body) = $ng->http('POST', "/sessions/$sid/rollback");
is($st, 200, 'POST /sessions/{id}/rollback');
like($body, qr/^\{"session_id":"\Q$sid\E","execution_count":\d+,"restored":/, '... says where it went back to');
($r) = $c->cell($sid, "int(df.b.sum() * 2), x");
is($r->{value}, '(499500, 43)', 'rollback undoes del df');
($st, $body) = $ng->http('POST', "/sessions/$sid/rollback");
($st, $body) = $ng->http('POST', "/sessions/$sid/rollback");
is($st, 404, 'one step only: then nothing to undo');
is($body, '{"detail":"nothing to undo"}', '... says so');

# --- a reload writes what changed while the worker was busy ------------------

{
    my $a1 = $c->id_on(1, 'exitA');
    my $b1 = $c->id_on(1, 'exitB');
    my $sa = $ng->send_req('POST', '/execute',
        '{"code": "import time\ntime.sleep(1)\nw = 7", "session_id": "' . $a1 . '"}',
        { 'Content-Type' => 'application/json' });
    sleep 0.2;
    my $sb = $ng->send_req('POST', '/execute',
        '{"code": "import time\ntime.sleep(3)", "session_id": "' . $b1 . '"}',
        { 'Content-Type' => 'application/json' });
    my ($sta) = Pyexec::Instance::read_resp($sa, 20);
    is($sta, 200, 'a cell ends while another is queued behind it');
    ok(!-e ckpt($a1), '... not checkpointed yet (the worker is busy)');
    my @old = $ng->children();
    $ng->signal('HUP');
    my ($stb, $bb) = Pyexec::Instance::read_resp($sb, 20);
    like($bb, qr/KeyboardInterrupt: the server is stopping/, 'the reload interrupts the running cell');
    ok(wait_ckpt($a1), 'the old worker wrote the changed session as it left');
    Pyexec::Shipped::wait_workers($ng);
    my ($ra) = $c->cell($a1, "w");
    ok(($ra->{result} // '') eq '7' && $ra->{restored}, '... and it is restored from there');
}

# --- a session slow to pickle is written by a forked writer ----------------

{
    # 30 000 instances of a cell-defined class: dill, by value, 0.3-0.8 s
    # (15 000 took 0.14 s on a fast machine, under the 200 ms that makes a
    # fork worth it); the first checkpoint (in the thread) measures that,
    # the next one forks, no sooner than 50 times that later (at most a
    # fiftieth of the time)
    my $slow = $c->id_on(1, 'slow');
    my ($rs, undef, undef, $wpid) = $c->cell($slow,
        "class Q:\n    def __init__(self, i):\n        self.i = i\n"
        . "qs = [Q(i) for i in range(30000)]", timeout => 60);
    ok($rs && $rs->{success}, 'a session of 30 000 cell-class instances');
    ok(wait_ckpt($slow), '... checkpointed');
    my $first = -M ckpt($slow);
    ($rs) = $c->cell($slow, "qs.append(Q(-1))\nlen(qs)");
    is($rs->{result}, "30001", 'a cell changes it');
    my ($seen, $later) = (0, 0);
    my $until = time + 120;
    while (time < $until) {
        $seen ||= writers($wpid);
        if ($seen && -M ckpt($slow) < $first) { $later = 1; last }
        sleep 0.01;
    }
    ok($seen, '... its next checkpoint is written by a forked writer (pyexec-ckpt)');
    ok($later, '... which writes it');
    for (1 .. 200) { last unless writers($wpid); sleep 0.05 }
    kill 'KILL', $wpid;
    my ($rb, $cb);
    for (1 .. 200) { ($rb, $cb) = $c->cell($slow, "len(qs), type(qs[-1]).__name__, qs[-1].i"); last if $cb == 200; sleep 0.05 }
    is($rb->{value}, "(30001, 'Q', -1)", '... and after kill -9 the session is back as the writer wrote it');
}

# --- DELETE removes the checkpoint ------------------------------------------

ok(-e ckpt($sid), 'the checkpoint is there');
($st) = $ng->http('DELETE', "/sessions/$sid");
is($st, 200, 'DELETE');
my $gone = 0;
for (1 .. 200) { if (!-e ckpt($sid)) { $gone = 1; last } sleep 0.025 }
ok($gone, '... removes its checkpoint');

$c->stop;


# --- pyexec_checkpoint_max, and eviction removes a checkpoint ---------------

{
    my $c2 = Pyexec::Cells->new(name => 'durable-cap', port_offset => 18,
        http_extra => "    pyexec_checkpoint_max 1k;",
        set => { pyexec_session_max => 2 },
        allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/]);
    my $ng2 = $c2->ng;
    ok($c2->start, 'an instance with pyexec_checkpoint_max 1k, pyexec_session_max 2');
    my $ck = sub { Pyexec::Shipped::checkpoint_path($ng2, $_[0]) };
    my $wait = sub { for (1 .. 200) { return 1 if -s $ck->($_[0]); sleep 0.025 } 0 };

    my $big = $c2->id_on(0, 'big');
    my (undef, undef, undef, $p2) = $c2->cell($big, "a = 'x' * 5000\nb = 1");
    ok($wait->($big), 'checkpointed');
    sleep 0.3;
    kill 'KILL', $p2;
    my $rr;
    for (1 .. 200) { my $cc; ($rr, $cc) = $c2->cell($big, "b, 'a' in globals()"); last if $cc == 200; sleep 0.05 }
    is($rr->{value}, '(1, False)', 'restored without the name over the cap');
    my ($lost) = grep { $_->{name} eq 'a' } @{ $rr->{restored}{lost} // [] };
    like($lost->{reason} // '', qr/over pyexec_checkpoint_max/, '... listed as lost, saying why');

    my @ids = map { $c2->id_on(0, "evict$_") } 1 .. 3;
    $c2->cell($ids[0], "v = 1");
    ok($wait->($ids[0]), 'a first session checkpointed');
    $c2->cell($ids[1], "v = 2");
    $c2->cell($ids[2], "v = 3");
    my $gone2 = 0;
    for (1 .. 200) { if (!-e $ck->($ids[0])) { $gone2 = 1; last } sleep 0.025 }
    ok($gone2, 'the session evicted past pyexec_session_max takes its checkpoint along');
    $c2->stop;
}

# --- a state folder others can write stops the start ------------------------

chmod 0777, $state;
my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $out = `$bin -p $root/ -c $root/conf/nginx.conf -e $root/logs/bad.log 2>&1`;
isnt($?, 0, 'a world-writable state folder: nginx does not start');
$out .= `cat $root/logs/bad.log $root/logs/error.log 2>/dev/null`;
like($out, qr/\[emerg\].*pyexec_state_dir .* is writable by others/, '... [emerg] saying why');

done_testing();
