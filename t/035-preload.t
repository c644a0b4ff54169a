# vim:set ft= ts=4 sw=4 et fdm=marker:
# Preload (pyexec_preload on, the shipped nginx.conf): the master runs
# pyexec_session_init once before it forks the workers, so each worker
# starts with pandas & co. imported, in pages it shares with the master;
# and a worker is still what a process of its own would be, as in plain
# Python and a Jupyter kernel: cells run in Python's main thread (signal
# handlers can be set), os.environ is the worker's environment (not the
# master's), random and numpy draw differently in each worker.  A reload
# preloads again; a worker killed outright comes back warm at once.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Pyexec::Cells;
use Pyexec::Instance;
use Pyexec::Shipped;

# in the master's environment only: nginx gives a worker none of it
$ENV{PYEXEC_T_MASTER_ONLY} = 'from the shell';

my $c = Pyexec::Cells->new(name => 'preload', port_offset => 21,
    allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/]);
my $ng = $c->ng;
ok($c->start, 'the shipped nginx.conf starts with two workers');

my $preloaded = qr/\[notice\].*pyexec: pyexec_session_init preloaded in the master in \d+ ms, (\d+) modules/;
my @lines = grep { /$preloaded/ } split /\n/, $ng->log_text();
is(scalar @lines, 1, 'the master preloaded pyexec_session_init once');
my ($nmods) = $lines[0] =~ $preloaded;
cmp_ok($nmods // 0, '>', 300, "... importing pandas & co. ($nmods modules)");

# kB of a process's memory that is anonymous and shared (with the master)
sub shared_dirty_kb {
    my ($pid) = @_;
    open my $f, '<', "/proc/$pid/smaps_rollup" or return -1;
    while (<$f>) { return $1 if /^Shared_Dirty:\s+(\d+) kB/ }
    return -1;
}

my %sid = (0 => $c->id_on(0, 'pre'), 1 => $c->id_on(1, 'pre'));
my (%pid, %draw);
for my $w (0, 1) {
    my ($r, $st, undef, $pid) = $c->cell($sid{$w},
        "import random\nimport numpy as np\n(random.random(), int(np.random.randint(1 << 30)))");
    is($st, 200, "worker $w answers");
    $pid{$w} = $pid;
    $draw{$w} = $r->{value};
    my $kb = shared_dirty_kb($pid);
    cmp_ok($kb, '>', 20000, "worker $w shares its interpreter's pages with the master ($kb kB)");
}
isnt($draw{0}, $draw{1}, 'random and numpy draw differently in each worker');

# the same code as a plain script gives the same lines
my $probe = <<'_PY_';
import os, signal, threading
print(threading.current_thread() is threading.main_thread(), threading.main_thread().is_alive())
old = signal.signal(signal.SIGPROF, lambda *a: None)
signal.signal(signal.SIGPROF, signal.SIG_DFL if old is None else old)
print('a signal handler can be set')
print('PYEXEC_T_MASTER_ONLY' in os.environ)
_PY_
my $want = Pyexec::Cells::plain($probe);
$want =~ s/True\n\z/False\n/;      # the script sees the test's environment
is($c->stdout_of($sid{0}, $probe), $want,
   'a cell runs in the main thread, can set a signal handler, sees the worker\'s environment');

# os.environ is the worker's own environment, name for name (but the two
# that pyexec and session_init.py set)
my ($r) = $c->cell($sid{1}, "import os\nsorted(k for k in os.environ if k not in ('MPLCONFIGDIR', 'MPLBACKEND'))");
open my $ef, '<', "/proc/$pid{1}/environ";
my @env = $ef ? sort grep { length && $_ ne 'MPLCONFIGDIR' && $_ ne 'MPLBACKEND' } map { (split /=/, $_, 2)[0] } split /\0/, do { local $/; <$ef> } : ();
my $want_env = '[' . join(', ', map { "'$_'" } @env) . ']';
is($r->{value}, $want_env, 'os.environ: exactly the worker process\'s environment');

# a worker killed outright: its successor is warm and shares at once
kill 'KILL', $pid{1};
my $new;
for (1 .. 400) {
    my ($rr, $st, undef, $p) = $c->cell($c->id_on(1, 'again'), "import sys\n'pandas' in sys.modules");
    if ($st == 200 && $p != $pid{1}) { $new = $p; is($rr->{value}, 'True', 'the new worker has pandas already'); last }
    sleep 0.05;
}
ok($new, 'a new worker 1 answers');
cmp_ok(shared_dirty_kb($new // 0), '>', 20000, '... and shares the master\'s pages');
my ($r2) = $c->cell($c->id_on(1, 'draw'), "import numpy as np\nint(np.random.randint(1 << 30))");
my ($old_np) = ($draw{1} // '') =~ /, (\d+)\)$/;
isnt($r2->{value}, $old_np, '... and draws other numbers than the worker it replaces');

# a reload preloads again, for the new workers
ok(Pyexec::Shipped::reload($ng), 'reload');
for (1 .. 100) { last if (() = $ng->log_text() =~ /$preloaded/g) == 2; sleep 0.05 }
is(scalar(() = $ng->log_text() =~ /$preloaded/g), 2, 'the reload preloaded again');
my ($r3, $st3, undef, $p3) = $c->cell($c->id_on(0, 'after'), "import pandas as pd\nint(pd.Series([1, 2]).sum())");
is($r3->{value}, '3', 'a cell on a new worker');
cmp_ok(shared_dirty_kb($p3), '>', 20000, '... which shares the master\'s pages');

$c->stop;

# --- pyexec_preload off: each worker imports for itself -----------------------

{
    my $c2 = Pyexec::Cells->new(name => 'preload-off', port_offset => 21,
                                set => { pyexec_preload => 'off' });
    ok($c2->start, 'pyexec_preload off');
    unlike($c2->ng->log_text(), qr/preloaded in the master/, '... nothing preloaded');
    my ($r4, $st4, undef, $p4) = $c2->cell($c2->id_on(0, 'off'), "import sys\n'pandas' in sys.modules");
    is($r4->{value}, 'True', '... the worker imported pandas itself (warm)');
    cmp_ok(shared_dirty_kb($p4), '<', 20000, '... into pages of its own');
    $c2->stop;
}

done_testing();
