# vim:set ft= ts=4 sw=4 et fdm=marker:
# pyexec_demote_after 200ms (off by default): a cell that has run that long gets
# its interpreter thread's nice raised by 10, so that on a busy machine
# the other workers' short cells get the cores first; the next cell runs
# at the worker's own nice again.  Taking the nice back needs root or an
# RLIMIT_NICE that allows it, which the master raises before it forks
# when it may: where it may not, the worker says so and cells keep the
# worker's nice.
#
# Plain Test::More against the shipped nginx.conf: once with `user root`
# (workers keep CAP_SYS_NICE), once as shipped (workers as nobody).

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Pyexec::Cells;

my $long = <<'_PY_';
import os, threading, time
tid = threading.get_native_id()
before = os.getpriority(os.PRIO_PROCESS, tid)
t0 = time.monotonic()
while os.getpriority(os.PRIO_PROCESS, tid) == before and time.monotonic() - t0 < 3:
    pass
# the loop starts a little after the cell did: not demoted in its first 0.1 s
print(before, os.getpriority(os.PRIO_PROCESS, tid), time.monotonic() - t0 >= 0.1)
_PY_
my $now = "print(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), tid == threading.get_native_id())";
my $short = "t0 = time.monotonic()\nwhile time.monotonic() - t0 < 0.02:\n    pass\nprint(os.getpriority(os.PRIO_PROCESS, tid))";

# the worker's limit on taking its nice back, from /proc
sub nice_limit {
    my ($pid) = @_;
    open my $f, '<', "/proc/$pid/limits" or return -1;
    while (<$f>) { return $1 if /^Max nice priority\s+(\d+)/ }
    return -1;
}

# {{{ workers as root: demoted, then back

my $c = Pyexec::Cells->new(name => 'demote', port_offset => 27, main_extra => 'user root;',
                           http_extra => '    pyexec_demote_after 200ms;');
ok($c->start(), 'the shipped nginx.conf starts with `user root`')
    or BAIL_OUT($c->ng->log_text());
my $sid = $c->id_on(0, 'demote');
my ($r) = $c->cell($sid, $long);
is($r && $r->{stdout}, "0 10 True\n", 'a cell that runs past 200 ms gets its thread\'s nice raised by 10');
($r) = $c->cell($sid, $now);
is($r && $r->{stdout}, "0 True\n", 'the next cell runs in the same thread at the worker\'s nice again');
($r) = $c->cell($sid, $short);
is($r && $r->{stdout}, "0\n", 'a 20 ms cell is not demoted');
my $other = $c->id_on(0, 'neighbour');
($r) = $c->cell($other, "import os, threading\nprint(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))");
is($r && $r->{stdout}, "0\n", 'another session on the worker runs at the worker\'s nice');
unlike($c->log_after_start(), qr/\[(alert|emerg|crit)\]|not demoted|setpriority/,
       'no alert, no failed setpriority in the error log');
$c->stop();

# }}}
# {{{ workers as shipped (nobody): demoted only if they can take it back

$c = Pyexec::Cells->new(name => 'demote-user', port_offset => 28,
                        http_extra => '    pyexec_demote_after 200ms;');
ok($c->start(), 'the shipped nginx.conf starts as it is')
    or BAIL_OUT($c->ng->log_text());
$sid = $c->id_on(0, 'demote');
my (undef, undef, undef, $pid) = $c->cell($sid, "import os");
my $limit = nice_limit($pid);
($r) = $c->cell($sid, $long . "try:\n    os.setpriority(os.PRIO_PROCESS, tid, before - 1)\n"
                             . "except PermissionError:\n    print('refused')\n");
if ($limit >= 20) {
    is($r && $r->{stdout}, "0 10 True\nrefused\n",
       "RLIMIT_NICE $limit: a long cell is demoted, and user code cannot go below the worker's nice");
    ($r) = $c->cell($sid, $now);
    is($r && $r->{stdout}, "0 True\n", 'the next cell runs at the worker\'s nice again');
} else {
    is($r && $r->{stdout}, "0 0 True\nrefused\n",
       "RLIMIT_NICE $limit (the master could not raise it): a long cell keeps the worker's nice");
    like($c->ng->log_text(), qr/\[notice\].*pyexec: long cells are not demoted: RLIMIT_NICE would not let this worker take its nice 0 back/,
         'and the worker said why at its start');
}
unlike($c->log_after_start(), qr/\[(alert|emerg|crit)\]|setpriority/, 'no alert, no failed setpriority in the error log');
$c->stop();

# }}}

done_testing();
