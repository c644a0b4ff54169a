# vim:set ft= ts=4 sw=4 et fdm=marker:
# What one cell does to the builtins or to sys.stdout/stderr/stdin never
# reaches another session, and the streams are whole again for the next
# cell (API.md 2.6).  Within its own session a change to the builtins
# stays, as in Jupyter and in plain Python (compared with
# /usr/bin/python3.11).
#
# Plain Test::More against the shipped nginx.conf; every pair of sessions
# here is on the same worker.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Pyexec::Cells;

my $c = Pyexec::Cells->new(name => 'isolation', port_offset => 14);
END { $c->stop() if $c }
ok($c->start(), 'the shipped nginx.conf starts, both workers answer')
    or BAIL_OUT($c->ng->log_text());

my ($a, $b) = ($c->id_on(1, 'isoA'), $c->id_on(1, 'isoB'));
sub out { my ($sid, $code) = @_; return $c->stdout_of($sid, $code) }

# {{{ builtins: the session's own

my @cells = ("import builtins\nbuiltins.len = lambda x: -1\nbuiltins.answer = 42",
             "print(len([1, 2]), answer, builtins is __builtins__)",
             "__builtins__.print = lambda *a: None",
             "print('hidden')\nimport sys\nsys.stdout.write('still\\n')");
is(join('', map { out($a, $_) } @cells), Pyexec::Cells::plain(join "\n", @cells),
   'changes to builtins stay in the session, as /usr/bin/python3.11 keeps them');
is(out($b, "print(len([1, 2]), 'answer' in dir(__builtins__))"), "2 False\n",
   'another session on the worker has the real len and no answer');
is(out($b, "import builtins\nprint(builtins.len is len, builtins.print is print)"), "True True\n",
   'its `import builtins` is its own, untouched module');
is(out($b, "import numpy\nprint(numpy.array([1, 2]).size, numpy.__builtins__['len']([1]))"), "2 1\n",
   'libraries keep the real builtins');

# }}}
# {{{ sys.stdout, sys.stderr, sys.stdin are whole again for every cell

my $s = $c->id_on(1, 'isoS');   # A's print is its own lambda now
my $i = 0;
for my $break ("import sys\nsys.stdout.write = None",
               "import sys\nsys.stdout = None\nsys.stderr = None",
               "import sys\ntype(sys.stdout).write = lambda self, s: 0",
               "import sys, io\nsys.stdout = io.StringIO()\nsys.stdin = None",
               "import sys\nsys.__stdout__.flush = None\nsys.stdout.encoding = 'x'",
               "import sys\nclass Quiet(type(sys.stdout)):\n    def write(self, s): return 0\nsys.stdout.__class__ = Quiet",
               "import sys\ntype(sys.stderr).__mro__[1].writable = lambda self: False\ndel sys.stdin, sys.__stderr__") {
    out($s, $break);
    $i++;
    my ($r) = $c->cell($s, "import sys, warnings\nprint('out')\nwarnings.warn('w$i')\nsys.stderr.write('err\\n')\nsys.stdin.readable()");
    ok($r && $r->{stdout} eq "out\n" && $r->{stderr} =~ /UserWarning: w$i\n.*\nerr\n$/ && $r->{success},
       "after `" . (split /\n/, $break)[-1] . "`: print, warnings and stderr work in the next cell");
    ($r) = $c->cell($b, "print('b')");
    is($r && $r->{stdout}, "b\n", '... and in the other session');
}

# }}}
# {{{ every cell starts in the data folder, whatever the last one did

my $home = out($b, "import os\nprint(os.getcwd())");
like($home, qr{^/.+\n$}, 'a cell starts in a folder: ' . ($home // '?'));
(my $dir = $home // '') =~ s/\n$//;
my $m = $c->id_on(1, 'isoM');       # A prints nothing since its lambda
for my $move ("os.chdir('/tmp')", "os.fchdir(os.open('/', os.O_RDONLY))",
              "import contextlib\nc = contextlib.chdir('/usr'); c.__enter__()") {
    is(out($m, "import os\n$move\nprint(os.getcwd() != '$dir')"), "True\n", "`$move` moves the cell");
    is(out($b, "import os\nprint(os.getcwd())"), $home, '... and the next cell, of another session, starts in the data folder');
    is(out($m, "import os\nprint(os.getcwd())"), $home, '... and so does the next cell of the same session');
}

# }}}

unlike($c->log_after_start(), qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');
$c->stop();
done_testing();
