# vim:set ft= ts=4 sw=4 et fdm=marker:
# __main__ is the session (API.md 2.6): pickle, copy and shelve find the
# functions and classes a cell defined, as in IPython.  Each program runs
# cell by cell in pyexec and whole under /usr/bin/python3.11; both print
# the same.  Two sessions on one worker keep their own __main__.
#
# Plain Test::More against the shipped nginx.conf.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Pyexec::Cells;

my $c = Pyexec::Cells->new(name => 'main', port_offset => 12);
END { $c->stop() if $c }
ok($c->start(), 'the shipped nginx.conf starts, both workers answer')
    or BAIL_OUT($c->ng->log_text());

# cells of one program, run one by one in a fresh session on worker 0
sub program {
    my ($what, @cells) = @_;
    my $sid = $c->id_on(0, 'prog');
    my $got = join '', map { $c->stdout_of($sid, $_) } @cells;
    is($got, Pyexec::Cells::plain(join("\n", @cells)),
       "$what: as /usr/bin/python3.11 prints it");
}

program('pickle of a cell-defined class, function and dataclass',
    "import pickle, dataclasses\nclass Point:\n    def __init__(self, x):\n        self.x = x\n"
    . "def double(v):\n    return 2 * v\n"
    . "\@dataclasses.dataclass\nclass Rec:\n    name: str\n    n: int = 0\n",
    "blob = pickle.dumps([Point(3), double, Rec('a', 2)])\nprint(len(blob) > 0)",
    "p, f, r = pickle.loads(blob)\nprint(type(p).__name__, p.x, f(21), r)",
    "print(pickle.loads(pickle.dumps(Point))(5).x, type(p) is Point)");

program('copy, __main__ and globals()',
    "import copy, sys\nclass Node:\n    def __init__(self):\n        self.kids = [1, [2]]\n",
    "n = copy.deepcopy(Node())\nprint(n.kids, type(n) is Node)",
    "import __main__\nprint(__main__.Node is Node, sys.modules['__main__'].__dict__ is globals(), __name__)",
    "x = 41\n__main__.x += 1\nprint(x)");

program('shelve and functools.partial',
    "import functools, pickle, shelve, tempfile, os\n"
    . "def power(b, e):\n    return b ** e\n",
    "sq = functools.partial(power, e=2)\nprint(pickle.loads(pickle.dumps(sq))(9))",
    "d = tempfile.mkdtemp()\nwith shelve.open(os.path.join(d, 's')) as db:\n    db['k'] = sq\n"
    . "with shelve.open(os.path.join(d, 's')) as db:\n    print(db['k'](4))");

# {{{ two sessions on the same worker, each its own __main__

my ($a, $b) = ($c->id_on(1, 'mainA'), $c->id_on(1, 'mainB'));
$c->cell($a, "import pickle\nclass K:\n    who = 'A'\nk = K()");
$c->cell($b, "import pickle\nclass K:\n    who = 'B'\nk = K()");
my ($r) = $c->cell($a, "pickle.loads(pickle.dumps(k)).who");
is($r && $r->{result}, 'A', 'session A unpickles its own K after B defined one');
($r) = $c->cell($b, "import __main__\n(__main__.K.who, pickle.loads(pickle.dumps(k)).who)");
is_deeply($r && $r->{result}, ['B', 'B'], 'session B sees its own __main__');
($r) = $c->cell($a, "import threading\nout = []\n"
                  . "t = threading.Thread(target=lambda: out.append(pickle.loads(pickle.dumps(K())).who))\n"
                  . "t.start(); t.join()\nout");
is_deeply($r && $r->{result}, ['A'], 'a thread the cell starts sees the session\'s __main__');
my (undef, $vars) = $c->ng->http('GET', "/sessions/$a");
like($vars, qr/"variables":\["pickle","K","k","threading","out","t"\]/,
     'GET /sessions/{id} lists what the cells defined, in order, nothing else');

# }}}

unlike($c->log_after_start(), qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');
$c->stop();
done_testing();
