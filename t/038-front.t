# vim:set ft= ts=4 sw=4 et fdm=marker:
# The front's short cut (pyexec_front in the shipped nginx.conf's
# location = /execute): a cell whose session this worker holds runs in
# the worker that accepted the client's connection, without a proxied
# request; a cell of another worker's session hands the connection itself
# to that worker, which serves it from then on.  What a client relies on:
# every answer right and from the session's worker, on one keep-alive
# connection whatever sessions it mixes; minted ids still name their
# worker; what cannot be handed on (a pipelined request, a body over
# 64 KB, chunked, Expect) is still answered; one access-log line per
# request; and the metrics say which way each cell went.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Pyexec::Cells;
use Pyexec::Instance;

my $c = Pyexec::Cells->new(name => 'front', port_offset => 26,
    access_log => 1, http_extra => '    pyexec_sched_batch on;',
    allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/]);
my $ng = $c->ng;
ok($c->start, 'the shipped nginx.conf starts with two workers');

my $json = JSON::PP->new->utf8->canonical;

# one keep-alive connection to the front: requests written, answers read
sub conn {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
                                 Proto => 'tcp', Timeout => 10);
}

sub raw_execute {
    my ($body, %h) = @_;
    my $raw = "POST /execute HTTP/1.1\r\nHost: localhost\r\n"
              . "Content-Type: application/json\r\n";
    $raw .= "$_: $h{$_}\r\n" for sort keys %h;
    $raw .= "Content-Length: " . length($body) . "\r\n" unless $h{'Transfer-Encoding'};
    return $raw . "\r\n" . $body;
}

# one answer off a keep-alive connection: (status, body, headers)
sub read_one {
    my ($s, $buf) = @_;
    my $deadline = time + 30;
    while (time < $deadline) {
        if ($$buf =~ /\A(.*?)\r\n\r\n/s) {
            my $head = $1;
            my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            $len //= 0;
            my $need = length($head) + 4 + $len;
            if (length($$buf) >= $need) {
                my $body = substr($$buf, length($head) + 4, $len);
                substr($$buf, 0, $need) = '';
                my ($st) = $head =~ /^HTTP\/1\.1 (\d+)/;
                my %h;
                for (split /\r\n/, $head) { $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
                return ($st // 0, $body, \%h);
            }
        }
        my $n = sysread($s, my $chunk, 65536);
        return (0, '', {}) unless $n;
        $$buf .= $chunk;
    }
    return (0, '', {});
}

sub ask {
    my ($s, $buf, $body, %h) = @_;
    print $s raw_execute($body, %h);
    my ($st, $b, $hd) = read_one($s, $buf);
    return ($st, eval { $json->decode($b) } // {}, $hd);
}

sub worker_of { (Pyexec::Cells::worker_of($_[0]))[0] // -1 }

# the front's counters, summed over the workers
sub counters {
    my ($st, $body) = $ng->http('GET', '/metrics');
    my %sum;
    for (split /\n/, $body) {
        $sum{$1} += $2 if /^pyexec_front_(\w+)_total\{[^}]*\} (\d+)$/;
    }
    return \%sum;
}

# the worker a minted id names: its eighth byte, minus one
sub named {
    my ($sid) = @_;
    return $sid =~ /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]([0-9a-f]{2})-/ ? hex($1) - 1 : -1;
}

my %on = (0 => $c->id_on(0, 'front'), 1 => $c->id_on(1, 'front'));

# --- one connection, cells of two workers' sessions in turn ---------------

my $before = counters();
my $s = conn();
my $buf = '';
my (@bad, %count);
for my $i (1 .. 10) {
    my $w = $i % 2;
    my ($st, $r, $h) = ask($s, \$buf, $json->encode({ code => "n = globals().get('n', 0) + 1\nn",
                                                      session_id => $on{$w} }));
    $count{$w} = $r->{result} // 'none';
    push @bad, "cell $i: status $st, worker " . worker_of($h) . ", result " . ($r->{result} // 'none')
        unless $st == 200 && worker_of($h) == $w && ($r->{result} // '') eq int(($i + 1) / 2);
}
is(join("\n", @bad), '', 'ten cells of two sessions in turn on one connection: each from its worker, in order');
is_deeply(\%count, { 0 => 5, 1 => 5 }, 'each session counted its own five cells');
my $after = counters();
my $handed = ($after->{handoffs_sent} // 0) - ($before->{handoffs_sent} // 0);
my $received = ($after->{handoffs_received} // 0) - ($before->{handoffs_received} // 0);
ok($handed >= 9 && $handed <= 10, "the connection followed its cells: $handed hand-offs for 10 cells");
is($received, $handed, 'every connection handed on was taken up');
is(($after->{local} // 0) - ($before->{local} // 0), 10,
   'every cell ran in the worker that had the connection (pyexec_front_local_total)');

# --- the same session again and again: after the first, no hand-off --------

$before = counters();
for my $i (1 .. 5) {
    my ($st, $r, $h) = ask($s, \$buf, $json->encode({ code => '6 * 7', session_id => $on{0} }));
    is("$st " . worker_of($h) . ' ' . ($r->{result} // ''), '200 0 42', "cell $i of one session on the connection");
}
$after = counters();
ok((($after->{handoffs_sent} // 0) - ($before->{handoffs_sent} // 0)) <= 1,
   'one session on one connection: at most one hand-off');

# --- what is not handed on is still answered right ------------------------

# a body over 64 KB (proxied), for the worker the connection is not on
my ($st, $r, $h) = ask($s, \$buf, $json->encode({ code => '1', session_id => $on{0} }));
my $big = 'x = "' . ('a' x 70000) . '"' . "\nlen(x)";
($st, $r, $h) = ask($s, \$buf, $json->encode({ code => $big, session_id => $on{1} }));
is("$st " . worker_of($h) . ' ' . ($r->{result} // ''), '200 1 70000',
   'a 70 KB cell of the other worker\'s session: proxied, answered by it');

# chunked, and Expect: 100-continue (the client waits for the 100)
{
    my $body = $json->encode({ code => 'print("chunked")', session_id => $on{1} });
    my $chunked = sprintf("%x\r\n%s\r\n0\r\n\r\n", length($body), $body);
    ($st, $r, $h) = ask($s, \$buf, $chunked, 'Transfer-Encoding' => 'chunked');
    is("$st " . worker_of($h) . ' ' . ($r->{stdout} // ''), "200 1 chunked\n", 'a chunked body');
}
{
    my $s2 = conn();
    my $b2 = '';
    my $body = $json->encode({ code => '7 * 6', session_id => $on{0} });
    my $raw = raw_execute($body, Expect => '100-continue');
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    print $s2 "$head\r\n\r\n";
    my $got = '';
    my $deadline = time + 10;
    while (time < $deadline && $got !~ /\r\n\r\n/) {
        sysread($s2, my $chunk, 4096) or last;
        $got .= $chunk;
    }
    like($got, qr{^HTTP/1\.1 100 Continue\r\n\r\n}, 'Expect: 100-continue gets its 100');
    $b2 = substr($got, length("HTTP/1.1 100 Continue\r\n\r\n"));
    print $s2 $rest;
    my ($st2, $body2, $h2) = read_one($s2, \$b2);
    is("$st2 " . worker_of($h2) . ' ' . ((eval { $json->decode($body2) } // {})->{result} // ''),
       '200 0 42', 'then one answer, from the session\'s worker (no second 100)');
    close $s2;
}

# two requests in one write: the second is pipelined behind the first
{
    my $s3 = conn();
    my $b3 = '';
    print $s3 raw_execute($json->encode({ code => '"first"', session_id => $on{1} }))
             . raw_execute($json->encode({ code => '"second"', session_id => $on{0} }));
    my ($st1, $body1, $h1) = read_one($s3, \$b3);
    my ($st2, $body2, $h2) = read_one($s3, \$b3);
    is(join(' ', $st1, worker_of($h1), (eval { $json->decode($body1) } // {})->{result} // '',
                 $st2, worker_of($h2), (eval { $json->decode($body2) } // {})->{result} // ''),
       "200 1 first 200 0 second", 'pipelined requests: both answered, in order, each by its worker');
    close $s3;
}

# --- new sessions minted on one connection stay where their ids say -------

my @mint_bad;
my %minted_on;
for my $i (1 .. 8) {
    my ($st1, $r1, $h1) = ask($s, \$buf, $json->encode({ code => 'y = 1' }));
    my $sid = $r1->{session_id} // '';
    my ($st2, $r2, $h2) = ask($s, \$buf, $json->encode({ code => 'y + 1', session_id => $sid }));
    $minted_on{named($sid)}++;
    push @mint_bad, "mint $i: $st1/$st2 $sid on " . worker_of($h1) . '/' . worker_of($h2)
                    . ' result ' . ($r2->{result} // 'none')
        unless $st1 == 200 && $st2 == 200 && named($sid) == worker_of($h1)
               && worker_of($h2) == worker_of($h1) && ($r2->{result} // '') eq '2';
}
is(join("\n", @mint_bad), '', 'eight new sessions on one connection: each kept by the worker its id names');
is(scalar(keys %minted_on), 2, 'and they were spread over both workers');

# an X-Session-Id header, no id in the body
($st, $r, $h) = ask($s, \$buf, $json->encode({ code => 'n' }), 'X-Session-Id' => $on{1});
is("$st " . worker_of($h) . ' ' . ($r->{session_id} // ''), "200 1 $on{1}",
   'an id in the X-Session-Id header routes as before');
# a header id the front does not route on (too long): a new session, as
# proxy_set_header X-Session-Id did before; it names either worker, so
# four of them meet both
my $long = 'h' x 300;
my @long_bad;
for (1 .. 4) {
    ($st, $r, $h) = ask($s, \$buf, $json->encode({ code => '1' }), 'X-Session-Id' => $long);
    push @long_bad, "$st " . worker_of($h) . ' ' . ($r->{session_id} // '')
        unless $st == 200 && named($r->{session_id} // '') == worker_of($h);
}
is(join("\n", @long_bad), '', 'a too-long X-Session-Id header: a new session, on the worker its id names');

# "async": true, then the poll on the same connection, at once
{
    my ($ast, $ar) = ask($s, \$buf, $json->encode({ code => "import time\ntime.sleep(2)\n1",
                                                    session_id => $on{1}, async => JSON::PP::true }));
    print $s "GET /executions/$ar->{execution_id} HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my ($pst, $pbody) = read_one($s, \$buf);
    # (a connection held until the cell's end would answer its poll 200)
    is("$ast $pst " . ((eval { $json->decode($pbody) } // {})->{status} // ''), '202 202 running',
       'an async cell, then its poll on the same connection: 202, then "running"');
}
close $s;

# --- the access log: one line per request, whichever worker answered ------

my $log = '';
if (open my $f, '<', $ng->root . '/logs/access.log') {
    local $/;
    $log = <$f>;
}
my @lines = grep { /"uri":"\/execute"/ } split /\n/, $log;
# /execute requests above: 10 + 5 + 1 + 1 + 1 + 1 + 2 + 1 + 16 + 1 + 4
is(scalar(@lines), 43, 'one access-log line per /execute request, none twice for a hand-off');
ok(!grep({ !/"worker":"\d+\/\d+"/ } @lines), 'each line names the worker that answered');

my $err = $c->log_after_start;
my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $err;
is(join("\n", @errors), '', 'no [error], [crit] or [alert] in the log');

# --- pyexec_sched_batch on (this file's conf): the worker's two threads ----

{
    my ($r1) = $c->cell($on{0}, "import os\nos.sched_getscheduler(0) == os.SCHED_BATCH");
    is(($r1 && $r1->{result}) ? 'yes' : 'no', 'yes', 'the interpreter thread runs SCHED_BATCH');
    my ($r2) = $c->cell($on{0}, "import os\nr, w = os.pipe()\npid = os.fork()\n"
        . "if pid == 0:\n    os.write(w, str(os.sched_getscheduler(0)).encode())\n    os._exit(0)\n"
        . "os.waitpid(pid, 0)\nint(os.read(r, 10))");
    is($r2 && $r2->{result}, Pyexec::Cells::plain("import os\nprint(os.sched_getscheduler(0))") =~ s/\s+$//r,
       'a child it forks is scheduled as under /usr/bin/python3.11 (SCHED_OTHER)');
    my ($w0pid) = (Pyexec::Cells::worker_of(($ng->http('GET', "/sessions/$on{0}"))[2]))[1];
    my @policies;
    for my $st (glob "/proc/$w0pid/task/*/stat") {
        open my $f, '<', $st or next;
        my @f = split / /, (<$f> =~ s/^.*\) //r);
        push @policies, $f[38];      # field 41, policy (after pid and comm)
    }
    ok((grep { $_ == 3 } @policies) >= 2, "the event loop and the interpreter thread too: policies @policies");
}

# --- a worker killed mid-cell, the client's connection in it --------------

# the cell runs in the worker that holds the connection: killed, the
# connection closes with it, no half answer; the session's next request
# (a new connection) is answered by the new worker
my $victim = $c->id_on(1, 'victim');
my $vs = conn();
my $vb = '';
my ($vst, $vr, $vh) = ask($vs, \$vb, $json->encode({ code => 'v = 1', session_id => $victim }));
my (undef, $vpid) = Pyexec::Cells::worker_of($vh);
is("$vst " . worker_of($vh), '200 1', 'a session of worker 1, its connection handed there');
print $vs raw_execute($json->encode({ code => "import time\ntime.sleep(20)", session_id => $victim }));
sleep 0.5;
kill 'KILL', $vpid;
my ($kst, $kbody) = read_one($vs, \$vb);
is("$kst/" . length($kbody) . '/' . length($vb), '0/0/0',
   'worker 1 killed under the cell: the connection closes, nothing half written');
my $next = 0;
for (1 .. 300) {
    my ($r2, $st2) = $c->cell($victim, '2');
    if ($st2 == 200) { $next = 1; last }
    sleep 0.1;
}
ok($next, 'the session\'s next request is answered by the new worker 1');

$c->stop;
done_testing();
