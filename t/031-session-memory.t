# vim:set ft= ts=4 sw=4 et fdm=marker:
# 10 000 sessions created and deleted give their memory back: the worker's
# RSS after them is within PYEXEC_TEST_RSS_SLACK_MB (default 8 MB; make
# test-asan allows more for ASan's caches) of what it was before.
#
# Plain Test::More on one keep-alive connection, pipelined in batches:
# under the block format Test::Nginx spends ~50 ms checking the log after
# each of the 20 002 responses (over 15 minutes); this takes seconds.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;

my $mod = $ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 16;
my $root = abs_path('.') . "/t/servroot-memory";
my $user = $> == 0 ? 'user root;' : '';
my $slack = $ENV{PYEXEC_TEST_RSS_SLACK_MB} || 8;
my $n = 10000;

my $ng = Pyexec::Instance->new(root => $root, port => $port);

$ng->start(<<"_EOC_", '/health') or BAIL_OUT("nginx failed to start:\n" . $ng->log_text());
load_module $mod;
daemon on;
master_process off;
error_log $root/logs/error.log warn;
pid $root/logs/nginx.pid;
thread_pool pyexec threads=1;
$user
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $root/body;
    keepalive_requests 100000;
    pyexec_session_max 20000;
    # the journal of executions is a bounded cache of its own (t/037): kept
    # small here, so that what grows is what the sessions hold
    pyexec_journal_max 1m;
    server {
        listen 127.0.0.1:$port;
        location = /health { pyexec_health; }
        location = /execute { pyexec_execute; }
        location /sessions/ { pyexec_sessions; }
    }
}
_EOC_

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                              Proto => 'tcp', Timeout => 10)
    or BAIL_OUT("connect: $!");
binmode $s;

sub req {
    my ($method, $uri, $body) = @_;
    my $r = "$method $uri HTTP/1.1\r\nHost: localhost\r\n";
    $r .= "Content-Type: application/json\r\nContent-Length: "
          . length($body) . "\r\n" if defined $body;
    return $r . "\r\n" . ($body // '');
}

my $buf = '';

# one response off the keep-alive connection: (status, body)
sub resp {
    my $t0 = time;
    while (time - $t0 < 60) {
        if ($buf =~ /^HTTP\/1\.1 (\d+)[^\r]*\r\n(.*?)\r\n\r\n/s) {
            my ($code, $head, $start) = ($1, $2, $+[0]);
            my ($len) = $head =~ /^Content-Length: (\d+)/mi;
            if (defined $len && length($buf) >= $start + $len) {
                my $body = substr($buf, $start, $len);
                substr($buf, 0, $start + $len) = '';
                return ($code, $body);
            }
        }
        my $got = sysread($s, my $chunk, 1 << 20);
        return (0, '') unless $got;
        $buf .= $chunk;
    }
    return (0, '');
}

# requests in batches of 500, every answer checked; the count of bad ones
sub run_all {
    my ($reqs, $want) = @_;
    my $bad = 0;
    for (my $i = 0; $i < @$reqs; $i += 500) {
        my $last = $i + 499 < $#$reqs ? $i + 499 : $#$reqs;
        print $s join('', @$reqs[$i .. $last]);
        for ($i .. $last) {
            my ($code, $body) = resp();
            next if $code == 200 && $body =~ $want;
            diag("answer $code: " . substr($body, 0, 300)) if $bad++ < 3;
        }
    }
    return $bad;
}

my $probe = "def rss():\\n    return int(open('/proc/self/statm').read().split()[1]) * 4096\\n"
            . "for i in range(3):\\n    [dict(x=list(range(100))) for j in range(10000)]\\n"
            . "base = rss()";
is(run_all([req('POST', '/execute', qq({"code": "$probe", "session_id": "probe"}))],
           qr/"success":true/), 0, "the probe session records the RSS");

is(run_all([map { req('POST', '/execute',
                      qq({"code": "data = list(range(200))\\nname = 'n' * 100", "session_id": "m$_"})) } 1 .. $n],
           qr/"success":true/), 0, "$n sessions created");

is(run_all([map { req('DELETE', "/sessions/m$_") } 1 .. $n],
           qr/^\{"message":"Session deleted"\}$/), 0, "$n sessions deleted");

print $s req('POST', '/execute',
             qq({"code": "grown = rss() - base\\nprint(grown < $slack * 1024 * 1024, grown)", "session_id": "probe"}));
my ($code, $body) = resp();
like($body, qr/^\{"result":"True -?\d+",/, "RSS grew by less than $slack MB ($body)");

close $s;

unlike($ng->log_text(), qr/\[error\]|\[alert\]|ERROR: AddressSanitizer/, "no error logged");
$ng->stop();

done_testing();
