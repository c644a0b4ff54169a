# vim:set ft= ts=4 sw=4 et fdm=marker:
# Process parallelism as users write it (API.md 2.6), against the shipped
# nginx.conf: every multiprocessing start method, concurrent.futures,
# joblib/loky and scikit-learn's n_jobs over functions defined in a cell,
# subprocess of sys.executable.  Each snippet prints what
# /usr/bin/python3.11 prints for the same code; after each, another
# session on the same worker answers at once (nothing wedged).
#
# Plain Test::More: worker pids and state carried across requests.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Pyexec::Cells;

my $c = Pyexec::Cells->new(name => 'parallel', port_offset => 11);
END { $c->stop() if $c }
ok($c->start(), 'the shipped nginx.conf starts, both workers answer')
    or BAIL_OUT($c->ng->log_text());

my $w = 1;
my $sid = $c->id_on($w, 'par');

sub same_as_python {
    my ($what, $code, %o) = @_;
    my $want = Pyexec::Cells::plain($code);
    my $got = $c->stdout_of($sid, $code, timeout => $o{timeout} // 60);
    is($got, $want, "$what: as /usr/bin/python3.11 prints it");
    my $n = $c->neighbour($w);
    ok(defined $n && $n < 3,
       sprintf("$what: the neighbour session answers (%s s)",
               defined $n ? sprintf('%.2f', $n) : 'no answer'));
}

# {{{ multiprocessing, every start method, cell-defined function and class

for my $m (qw(fork spawn forkserver)) {
    same_as_python("Pool, $m", <<"PY");
import multiprocessing as mp

def square(x):
    return x * x

class Box:
    def __init__(self, v):
        self.v = v

def unbox(b):
    return b.v + 1

if __name__ == "__main__":
    with mp.get_context("$m").Pool(2) as pool:
        print(pool.map(square, range(6)))
        print(pool.map(unbox, [Box(1), Box(2)]))
    p = mp.get_context("$m").Process(target=square, args=(3,))
    p.start()
    p.join()
    print("exitcode", p.exitcode)
PY
}

same_as_python('ProcessPoolExecutor, default and spawn', <<'PY');
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

def cube(x):
    return x ** 3

if __name__ == "__main__":
    with ProcessPoolExecutor(2) as ex:
        print(list(ex.map(cube, range(5))))
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        print(sorted(ex.map(cube, range(5))))
PY

# }}}
# {{{ joblib, scikit-learn

same_as_python('joblib.Parallel(n_jobs=2), loky', <<'PY');
from joblib import Parallel, delayed

def cube(x):
    return x ** 3

print(Parallel(n_jobs=2)(delayed(cube)(i) for i in range(8)))
print(Parallel(n_jobs=2, backend="multiprocessing")(delayed(cube)(i) for i in range(4)))
PY

same_as_python('scikit-learn n_jobs', <<'PY', timeout => 120);
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score

X, y = load_iris(return_X_y=True)
s = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=3, n_jobs=2)
print([round(v, 3) for v in s])
g = GridSearchCV(RandomForestClassifier(n_estimators=10, random_state=0),
                 {"max_depth": [2, 3]}, cv=3, n_jobs=-1).fit(X, y)
print(g.best_params_)
PY

# }}}
# {{{ subprocess, sys.executable, exit statuses

same_as_python('subprocess of sys.executable, exit statuses', <<'PY');
import subprocess, sys
print(sys.executable, sys._base_executable)
r = subprocess.run([sys.executable, "-c", "import numpy, sys; print(6 * 7, sys.version_info[:2])"],
                   capture_output=True, text=True)
print(r.returncode, r.stdout.strip())
print(subprocess.run(["sh", "-c", "exit 3"]).returncode)
print(subprocess.call(["sh", "-c", "kill -TERM $$"]))
PY

# a child a cell leaves unwaited keeps its status for a later cell
$c->cell($sid, "import subprocess\nleft = subprocess.Popen(['sh', '-c', 'exit 5'])");
sleep 3;
my ($r) = $c->cell($sid, "left.wait()");
is($r && $r->{result}, 5, 'a Popen waited for in a later cell still has its exit status');

# }}}
# {{{ fork: the child holds none of nginx's sockets and is reaped

my $fork = <<'PY';
import os

def sockets():
    fds = os.listdir("/proc/self/fd")
    return sum(os.readlink("/proc/self/fd/" + f).startswith("socket:")
               for f in fds if os.path.exists("/proc/self/fd/" + f))

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, str(sockets()).encode())
    os._exit(0)
os.close(w)
print("sockets in the child:", os.read(r, 100).decode())
os.waitpid(pid, 0)
PY
same_as_python('a fork()ed child', $fork);
($r) = $c->cell($sid, "sockets()");
ok($r && $r->{result} > 0, "the worker itself has sockets ($r->{result}): the check above can fail");

($r) = $c->cell($sid, "import os\norphan = os.fork()\nif orphan == 0:\n    os._exit(0)\norphan");
my $orphan = $r && $r->{result};
ok($orphan && $orphan > 1, 'a cell forks a child and never waits for it');
my $gone = 0;
for (1 .. 100) {
    if (!-e "/proc/$orphan") { $gone = 1; last }
    sleep 0.1;
}
ok($gone, 'the child nobody waited for is reaped while the worker is idle');

# }}}
# {{{ no start method wedges the worker: cells stopped at their time limit

for my $m (qw(fork spawn forkserver)) {
    my $t0 = time;
    my ($r) = $c->cell($sid, <<"PY", timeout => 2);
import multiprocessing as mp, time
with mp.get_context("$m").Pool(2) as pool:
    pool.map(time.sleep, [100, 100])
PY
    is($r && $r->{error_name}, 'TimeoutError', "a $m Pool past its time limit: TimeoutError");
    my $n = $c->neighbour($w);
    ok(defined $n && $n < 3, sprintf("after it, the neighbour answers (%s s)",
                                     defined $n ? sprintf('%.2f', $n) : 'no answer'));
    ($r) = $c->cell($sid, "square(7)");
    is($r && $r->{result}, 49, "the session that ran the $m Pool still holds its functions");
}

# a child that outlives its cell does not keep the worker's port alive
($r) = $c->cell($sid, "import os, time\nsleeper = os.fork()\nif sleeper == 0:\n    time.sleep(30)\n    os._exit(0)\nsleeper");
my $sleeper = $r && $r->{result};

# }}}

unlike($c->log_after_start(), qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');
$c->stop();
my $free = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $c->ng->port,
                                 ReuseAddr => 1, Listen => 1);
ok($free, 'after nginx stops, its port is free although a child still runs');
close $free if $free;
kill 'TERM', $sleeper if $sleeper;
undef $c;

done_testing();
