# vim:set ft= ts=4 sw=4 et fdm=marker:
# How nginx with the module stops, and how a worker whose interpreter is
# stuck in C code leaves.
#
# - QUIT in a single process (master_process off, Test::Nginx's default)
#   and in master mode, idle, with a cell sleeping and with a cell
#   spinning in Python: the process is gone within the deadline (the
#   requirement is one second; the deadline here is generous so a loaded
#   CI machine does not fail it), and in master mode the running cell's
#   client gets its answer: the cell was interrupted by the stop.
# - A cell stuck in C past its kill grace: it gets 504 and a cell queued
#   behind it 503 at once; an upload in flight on the same worker finishes
#   (the worker drains instead of cutting it); the stuck C call returns
#   during the drain and its late completion touches no freed memory (run
#   under `make test-asan`); then the master starts a fresh worker.
#
# Plain Test::More: these need concurrent connections and process control.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;

my $mod = $ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 15;
my $root = abs_path('.') . "/t/servroot-stop";
my $user = $> == 0 ? 'user root;' : '';
my $deadline = 3;

# the stuck cell's recycle is an [alert] on purpose
my $ng = Pyexec::Instance->new(root => $root, port => $port,
    allow_alerts => [qr/\[alert\].*pyexec: cell \d+ did not stop \d+ ms after its time limit \(stuck in C code\), recycling the worker/]);

sub conf {
    my ($master) = @_;
    my $mp = $master ? 'on' : 'off';
    return <<"_EOC_";
load_module $mod;
worker_processes 1;
daemon on;
master_process $mp;
error_log $root/logs/error.log info;
pid $root/logs/nginx.pid;
thread_pool pyexec threads=1;
thread_pool pyexec_io threads=1;
$user
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $root/body;
    client_body_timeout 30s;
    pyexec_data_dir $root/data;
    pyexec_timeout 30s;
    pyexec_kill_grace 500ms;
    server {
        listen 127.0.0.1:$port;
        location = /execute { pyexec_execute; }
        location = /status { pyexec_status; }
        location = /upload { pyexec_upload; }
    }
}
_EOC_
}

sub start {
    my ($master) = @_;
    mkdir "$root/data";
    $ng->start(conf($master), '/status')
        or BAIL_OUT("nginx failed to start:\n" . $ng->log_text());
}

sub worker_pid {
    my ($code, $body) = $ng->http('GET', '/status');
    return $body =~ /"pid":(\d+)/ ? $1 : 0;
}

sub exec_req {
    my ($code, $extra) = @_;
    my $body = '{"code": ' . Pyexec::Instance::json_str($code)
               . ($extra // '') . '}';
    return $ng->send_req('POST', '/execute', $body,
                         { 'Content-Type' => 'application/json' });
}

# an answer, read as a client does: headers, then Content-Length bytes
sub read_answer {
    my ($s) = @_;
    my $resp = '';
    my $t0 = time;
    $s->blocking(0);
    while (time - $t0 < 10) {
        my $n = sysread($s, my $buf, 65536);
        if (defined $n) {
            last if $n == 0;
            $resp .= $buf;
            if ($resp =~ /^(.*?\r\n\r\n)/s) {
                my $head = $1;
                my ($len) = $head =~ /Content-Length: (\d+)/i;
                last if defined $len && length($resp) >= length($head) + $len;
            }
            next;
        }
        sleep 0.002;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($code) = ($head // '') =~ /^HTTP\/1\.1 (\d+)/;
    return ($code // 0, $body // '');
}

# seconds from QUIT until every process of the instance is gone; a cell's
# client reads its answer meanwhile
sub quit_time {
    my ($s, $answer) = @_;
    my @pids = ($ng->master_pid(), $ng->children());
    my $t0 = time;
    $ng->signal('QUIT');
    @$answer = read_answer($s) if $s;
    while (time - $t0 < 15) {
        last unless grep { Pyexec::Instance::alive($_) } @pids;
        sleep 0.01;
    }
    return time - $t0;
}

my %cells = (
    'idle'            => undef,
    'a cell sleeping' => 'import time; time.sleep(30)',
    'a cell spinning' => 'while True: pass',
);

for my $master (0, 1) {
    my $mode = $master ? 'master mode' : 'single process';

    for my $what (sort keys %cells) {
        start($master);

        my $s;
        if (defined $cells{$what}) {
            $s = exec_req($cells{$what});
            sleep 0.3;      # the cell is running
        }

        my @answer;
        my $took = quit_time($s, \@answer);
        ok($took < $deadline,
           sprintf("%s, %s: gone %.2f s after QUIT", $mode, $what, $took));

        if ($s && $master) {
            my ($code, $body) = @answer;
            is($code, 200, "$mode, $what: the running cell was answered");
            like($body, qr/"error_name":"KeyboardInterrupt".*/,
                 "$mode, $what: interrupted by the stop");
            like($body, qr/the server is stopping/, "$mode, $what: says why");
        }

        unlike($ng->log_text(), qr/\[alert\]|\[emerg\]|ERROR: AddressSanitizer/,
               "$mode, $what: no alert");
    }
}

# --- a stuck cell: answer, drain, late return, fresh worker ----------------

start(1);
my $pid0 = worker_pid();
ok($pid0, "worker up");

# an upload whose body is still coming in when the cell gets stuck

my $boundary = 'xYzZy';
my $part = "--$boundary\r\nContent-Disposition: form-data; name=\"files\"; "
           . "filename=\"drain.txt\"\r\nContent-Type: text/plain\r\n\r\n"
           . ("x" x 1000) . "\r\n--$boundary--\r\n";
my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                               Proto => 'tcp', Timeout => 5)
    or BAIL_OUT("connect: $!");
print $up "POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
          . "Content-Type: multipart/form-data; boundary=$boundary\r\n"
          . "Content-Length: " . length($part) . "\r\n\r\n"
          . substr($part, 0, 100);

# a C call that the time limit's signal cannot reach, returning after 4 s

my $t0 = time;
my $stuck = exec_req("import signal, time\n"
                     . "signal.pthread_sigmask(signal.SIG_BLOCK, "
                     . "[signal.SIGRTMIN + 3])\n"
                     . "time.sleep(4)", ', "timeout": 0.5');
sleep 0.2;
my $queued = exec_req("1 + 1");

my ($code, $body) = read_answer($queued);
is($code, 503, "the cell queued behind the stuck one gets 503");
like($body, qr/the worker is restarting/, "503 says why");
my $queued_at = time - $t0;
ok($queued_at < 3.5, sprintf("answered at the kill grace (%.2f s), not "
                             . "when the stuck call returned", $queued_at));

($code, $body) = read_answer($stuck);
is($code, 504, "the stuck cell gets 504");
like($body, qr/execution could not be stopped/, "504 says why");

# the stuck call has returned by now (4 s); the upload finishes after it

sleep 4.5 - (time - $t0) if time - $t0 < 4.5;
print $up substr($part, 100);
($code, $body) = Pyexec::Instance::read_resp($up, 10);
is($code, 200, "the upload in flight during the drain finished");
like($body, qr/"uploaded_files":\["drain.txt"\]/, "and stored its file");
ok(-f "$root/data/drain.txt", "the file is in the data folder");

my $pid1 = 0;
for (1 .. 400) { $pid1 = worker_pid(); last if $pid1 && $pid1 != $pid0; sleep 0.025; }
ok($pid1 && $pid1 != $pid0, "the master started a fresh worker ($pid0 -> $pid1)");

($code, $body) = $ng->execute("6 * 7");
like($body, qr/^\{"result":42,/, "the fresh worker runs code");

my $log = $ng->log_text();
like($log, qr/\[alert\].*recycling the worker/, "the recycle is logged at alert");
like($log, qr/returned after it was abandoned/, "the late completion is logged");
like($log, qr/the stuck cell returned, the worker exits/,
     "the worker left as on QUIT, not by _exit");
unlike($log, qr/signal 11|core dumped|ERROR: AddressSanitizer|worker exits to be replaced/,
       "no crash, no cut");

$ng->stop();

done_testing();
