# vim:set ft= ts=4 sw=4 et fdm=marker:
# The process model, end to end with a real master: a cell stuck in C code
# recycles the worker (504, then 410 for the ids it minted), requests for a
# session run in arrival order, a client that leaves mid-run loses nothing,
# reload and quit during a run answer cleanly: the running cell is
# interrupted by the stop (KeyboardInterrupt, "the server is stopping").
#
# Plain Test::More (not the block format): these flows need several
# concurrent connections and values carried from one response to the next.

use strict;
use warnings;

use Test::More tests => 33;
use Time::HiRes qw(sleep time);
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;

my $mod = $ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 1;
my $root = abs_path('.') . "/t/servroot-process";
my $user = $> == 0 ? 'user root;' : '';
# both runs make a worker recycle on purpose: the cell stuck in C code
my $ng = Pyexec::Instance->new(root => $root, port => $port,
    allow_alerts => [qr/\[alert\].*pyexec: cell \d+ did not stop \d+ ms after its time limit \(stuck in C code\), recycling the worker/,
                     qr/\[alert\].*pyexec: worker exits to be replaced/]);

sub conf {
    my ($workers) = @_;
    return <<"_EOC_";
load_module $mod;
worker_processes $workers;
daemon on;
master_process on;
error_log $root/logs/error.log info;
pid $root/logs/nginx.pid;
thread_pool pyexec threads=1;
$user
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $root/body;
    pyexec_kill_grace 500ms;
    server {
        listen 127.0.0.1:$port;
        location = /execute { pyexec_execute; }
        location = /status { pyexec_status; }
        location /sessions/ { pyexec_sessions; }
    }
}
_EOC_
}

sub master_pid { $ng->master_pid() }
sub alive      { Pyexec::Instance::alive(@_) }
sub children   { $ng->children() }
sub send_req   { $ng->send_req(@_) }
sub read_resp  { Pyexec::Instance::read_resp(@_) }
sub http       { $ng->http(@_) }
sub execute    { $ng->execute(@_) }
sub stop       { $ng->stop() }
sub log_text   { $ng->log_text() }

sub worker_pid {
    my ($code, $body) = http('GET', '/status');
    return $body =~ /"pid":(\d+)/ ? $1 : 0;
}

sub start {
    my ($workers) = @_;
    $ng->start(conf($workers // 1), '/status')
        or BAIL_OUT("nginx failed to start:\n" . log_text());
}

# --- two workers: a stuck cell recycles its own worker only -----------------

start(2);
my @before = children();
is(scalar @before, 2, "two workers");
my ($code, $body) = execute("sum(range(10**12))", undef, ', "timeout": 0.5');
is($code, 504, "a cell stuck in C gets 504");
my @after;
for (1 .. 200) {
    @after = children();
    last if @after == 2 && "@after" ne "@before";
    sleep 0.025;
}
my %was = map { $_ => 1 } @before;
is(scalar(grep { $was{$_} } @after), 1, "one worker replaced (@before -> @after)");
is(scalar(grep { !$was{$_} } @after), 1, "the other worker untouched, its sessions kept");
stop();

# --- one worker from here on -------------------------------------------------

start(1);
my $pid0 = worker_pid();
ok($pid0, "worker up");

# --- a cell stuck in C code: the worker is recycled -----------------------

($code, $body) = execute("x = 5");
my ($minted) = $body =~ /"session_id":"([0-9a-f-]{36})"/;
ok($minted, "server minted a session id");

my $t0 = time;
($code, $body) = execute("sum(range(10**12))", $minted, ', "timeout": 0.5');
my $took = time - $t0;
is($code, 504, "a cell stuck in C gets 504 after the grace period");
like($body, qr/^\{"detail":"execution could not be stopped \(stuck in C code\); the worker is restarting and its sessions are lost","termination":\{"reason":"timeout","stage":"recycle"\},"usage":\{"wall_ms":\d+\}\}$/, "clear JSON error: why, and how the cell ended");
ok($took > 0.9 && $took < 5, sprintf("answered after timeout + grace (%.2f s)", $took));

my $pid1 = 0;
for (1 .. 200) { $pid1 = worker_pid(); last if $pid1 && $pid1 != $pid0; sleep 0.025; }
ok($pid1 && $pid1 != $pid0, "the master started a new worker ($pid0 -> $pid1)");

($code, $body) = execute("x", $minted);
is($code, 410, "a minted id of the old worker answers 410");
is($body, '{"detail":"session lost: worker restarted"}', "410 says why");
($code, $body) = http('GET', "/sessions/$minted");
is($code, 410, "GET /sessions/{lost} is 410 too");

($code, $body) = execute("x = 1\nx + 1", "client-chosen");
is($code, 200, "a client-chosen id starts a new session");
like($body, qr/^\{"result":2,/, "and runs");

my $log = log_text();
like($log, qr/\[alert\].*recycling the worker/, "the recycle is logged at alert");
unlike($log, qr/\[emerg\]|signal 11|core dumped/, "no crash");

# --- one session: arrival order, bounded queue ----------------------------

($code, $body) = execute("order = []", "ord");
my $first = send_req('POST', '/execute',
    '{"code": "import time\ntime.sleep(0.3)\norder.append(0)", "session_id": "ord"}');
sleep 0.05;
my @socks;
for my $i (1 .. 4) {
    push @socks, send_req('POST', '/execute',
        "{\"code\": \"order.append($i)\", \"session_id\": \"ord\"}");
    sleep 0.02;
}
my ($c0) = read_resp($first);
my @codes = map { (read_resp($_))[0] } @socks;
is_deeply([$c0, @codes], [200, 200, 200, 200, 200], "all five answered");
($code, $body) = execute("order", "ord");
like($body, qr/^\{"result":\[0,1,2,3,4\],/, "requests for one session ran one at a time, in arrival order");

# --- a client that leaves mid-run -------------------------------------------

my $s = send_req('POST', '/execute',
    '{"code": "import time\ntime.sleep(0.4)\ndone = 42", "session_id": "dc"}');
sleep 0.1;
close $s;
($code, $body) = execute("done", "dc");
like($body, qr/^\{"result":42,/, "the run finished after the client left; the session is consistent");
is(worker_pid(), $pid1, "same worker, no crash");
unlike(log_text(), qr/\[crit\]/, "no crit");

# --- reload during a run ------------------------------------------------------

$s = send_req('POST', '/execute',
    '{"code": "import time\ntime.sleep(1)\nprint(\"survived reload\")", "session_id": "rl"}');
sleep 0.2;
kill 'HUP', master_pid();
($code, $body) = read_resp($s, 10);
is($code, 200, "a run in flight during reload is answered");
like($body, qr/^\{"result":null,"session_id":"rl","success":false,"error":"KeyboardInterrupt: the server is stopping",/,
     "by the old worker, completely: interrupted by the stop");
my $pid2 = 0;
for (1 .. 200) { $pid2 = worker_pid(); last if $pid2 && $pid2 != $pid1; sleep 0.025; }
ok($pid2 && $pid2 != $pid1, "reload replaced the worker");
($code, $body) = execute("1 + 1");
like($body, qr/^\{"result":2,/, "the new worker serves");

# --- quit during a run -----------------------------------------------------------

$s = send_req('POST', '/execute',
    '{"code": "import time\ntime.sleep(1)\nprint(\"finished\")", "session_id": "q"}');
sleep 0.2;
my $mpid = master_pid();
kill 'QUIT', $mpid;
($code, $body) = read_resp($s, 10);
is($code, 200, "a run in flight during graceful quit is answered");
like($body, qr/^\{"result":null,"session_id":"q","success":false,"error":"KeyboardInterrupt: the server is stopping",/,
     "completely: interrupted by the stop");
for (1 .. 250) { last unless alive($mpid); sleep 0.02; }
ok(!alive($mpid), "nginx exited after the run");
$log = log_text();
unlike($log, qr/signal 11|core dumped|\[emerg\]/, "no crash during reload and quit");
is(() = $log =~ /recycling the worker/g, 1, "exactly one recycle in the whole run");
stop();

END {
    my $p = master_pid();
    kill 'KILL', $p if $p && alive($p);
}
