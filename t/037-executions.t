# vim:set ft= ts=4 sw=4 et fdm=marker:
# Executions you can watch, leave and come back to, on the shipped
# nginx.conf (front + two workers): a cell's events as Server-Sent Events
# while it runs ("stream": true, Accept: text/event-stream), a stream
# resumed from Last-Event-ID, "async": true then polling, a client that
# goes away losing nothing (or stopping its cell with
# pyexec_interrupt_on_disconnect on), the journal's expiry and byte bound,
# and a reader that reads nothing, which neither stops nor slows the cell.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Pyexec::Cells;
use Pyexec::Instance;
use Pyexec::Shipped;

my $json = JSON::PP->new->utf8->canonical;

# {{{ a Server-Sent Events client: the status, the headers, each event
# with the time it arrived; raw HTTP/1.1 with chunked decoding

sub sse_open {
    my ($ng, $method, $uri, $body, $headers) = @_;
    my $s = $ng->send_req($method, $uri, $body, $headers) or return undef;
    $s->blocking(0);
    return { s => $s, raw => '', body => '', head => undef, eof => 0 };
}

sub sse_pump {      # read what has come; 0 at EOF
    my ($c) = @_;
    my $n = sysread($c->{s}, my $buf, 65536);
    if (defined $n && $n == 0) { $c->{eof} = 1; return 0 }
    $c->{raw} .= $buf if $n;
    if (!defined $c->{head} && $c->{raw} =~ s/\A(.*?)\r\n\r\n//s) {
        $c->{head} = $1;
        ($c->{status}) = $c->{head} =~ m{^HTTP/1\.1 (\d+)};
        $c->{chunked} = $c->{head} =~ /^Transfer-Encoding: chunked/mi;
    }
    if (defined $c->{head}) {
        if (!$c->{chunked}) { $c->{body} .= $c->{raw}; $c->{raw} = '' }
        while ($c->{chunked} && $c->{raw} =~ /\A([0-9a-fA-F]+)\r\n/) {
            my $len = hex $1;
            my $start = length($1) + 2;
            last if length($c->{raw}) < $start + $len + 2;
            $c->{body} .= substr($c->{raw}, $start, $len);
            substr($c->{raw}, 0, $start + $len + 2) = '';
            $c->{done} = 1 if $len == 0;
        }
    }
    return 1;
}

sub sse_next {      # the next event, or undef (EOF, timeout)
    my ($c, $timeout) = @_;
    my $deadline = time + ($timeout // 20);
    while (1) {
        if ($c->{body} =~ s/\A(.*?)\n\n//s) {
            my %e = (t => time);
            for (split /\n/, $1) { $e{$1} = $2 if /^(\w+): ?(.*)$/ }
            $e{json} = eval { $json->decode($e{data}) } if defined $e{data};
            return \%e;
        }
        return undef if $c->{eof} || $c->{done} || time > $deadline;
        sse_pump($c) or next;
        sleep 0.005;
    }
}

sub sse_all {
    my ($c, $timeout) = @_;
    my @e;
    while (my $e = sse_next($c, $timeout)) { push @e, $e; last if $e->{event} eq 'result' }
    return @e;
}
# }}}

my $c = Pyexec::Cells->new(name => 'executions', port_offset => 24,
                           http_extra => 'send_timeout 2s;',
                           set => { pyexec_journal_execution_max => '32m' });
my $ng = $c->ng;
ok($c->start, 'the shipped nginx.conf starts with two workers');
my $sid = $c->id_on(0, 'exec');

# a 3-second cell printing once a second, streamed through the front
my $cell = "import time\nfor i in range(3):\n    print('tick', i)\n    time.sleep(1)\n'done'";
my $t0 = time;
my $st = sse_open($ng, 'POST', '/execute',
                  $json->encode({ code => $cell, session_id => $sid, stream => JSON::PP::true }),
                  { 'Content-Type' => 'application/json' });
my @ev = sse_all($st, 20);
is($st->{status}, 200, '"stream": true: 200');
like($st->{head}, qr{^Content-Type: text/event-stream}mi, '... text/event-stream');
is(join(' ', map { $_->{event} } @ev), 'stdout stdout stdout result',
   'three stdout events, then the result');
is(join('', map { $_->{json}{text} // '' } @ev[0 .. 2]), "tick 0\ntick 1\ntick 2\n",
   '... each a line the cell printed');
is(join(' ', map { $_->{id} } @ev), '1 2 3 4', 'every event has an id, in order');
my $res = $ev[-1]{json} // {};
is($res->{value}, "'done'", 'the result event holds the usual reply');
like($res->{execution_id} // '', qr/^[0-9a-f]{16}\.\Q$sid\E$/, '... with its execution_id');
cmp_ok($ev[2]{t} - $ev[0]{t}, '>', 1.5, 'the events arrived as they were written, spread over the cell');
cmp_ok($ev[0]{t} - $t0, '<', 1.0, '... the first before the cell was half way');
like($st->{head}, qr{^X-Pyexec-Execution-Id: \Q$res->{execution_id}\E\r?$}mi,
     'the stream\'s headers name the execution');

# Accept: text/event-stream, without "stream"
$st = sse_open($ng, 'POST', '/execute', $json->encode({ code => "print('hi')\n1 + 1", session_id => $sid }),
               { 'Content-Type' => 'application/json', 'Accept' => 'text/event-stream' });
@ev = sse_all($st, 20);
is(join(' ', map { $_->{event} } @ev), 'stdout result', 'Accept: text/event-stream streams too');
is($ev[-1]{json}{result}, 'hi', '... the reply in its result event');

# display() outputs are events too, in the order the cell made them
$st = sse_open($ng, 'POST', '/execute',
               $json->encode({ code => "import pandas as pd\nprint('before')\ndisplay(pd.DataFrame({'a': [1, 2]}))\nprint('after')",
                               session_id => $sid, stream => JSON::PP::true }),
               { 'Content-Type' => 'application/json' });
@ev = sse_all($st, 30);
is(join(' ', map { $_->{event} } @ev), 'stdout display stdout result',
   'a display() between two prints: stdout, display, stdout, result');
is($ev[1]{json}{mime}, 'text/html', '... the display event holds the richest type');
like($ev[1]{json}{data} // '', qr/<table/, '... and its data (the DataFrame\'s HTML)');

# a client that drops after the first event and comes back with Last-Event-ID
my $slow = "import sys, time\nfor i in range(5):\n    print('line', i)\n    time.sleep(0.4)\nprint('to stderr', file=sys.stderr)\n42";
$st = sse_open($ng, 'POST', '/execute',
               $json->encode({ code => $slow, session_id => $sid, stream => JSON::PP::true }),
               { 'Content-Type' => 'application/json' });
my $first = sse_next($st, 10);
close $st->{s};
my ($eid) = $st->{head} =~ /^X-Pyexec-Execution-Id: (\S+)/mi;
is($first && $first->{event}, 'stdout', 'the first event, then the client drops');
my $back = sse_open($ng, 'GET', "/executions/$eid/events", undef, { 'Last-Event-ID' => $first->{id} });
my @rest = sse_all($back, 20);
is($back->{status}, 200, 'GET /executions/{id}/events with Last-Event-ID through the front');
is(join(' ', map { $_->{id} } @rest), join(' ', map { $first->{id} + $_ } 1 .. scalar @rest),
   '... the events after it, each once, in order');
is(join('', $first->{json}{text}, map { $_->{event} eq 'stdout' ? $_->{json}{text} : '' } @rest),
   join('', map { "line $_\n" } 0 .. 4), '... so that the stdout is whole');
is((grep { $_->{event} eq 'stderr' } @rest)[0]{json}{text}, "to stderr\n", '... and the stderr event');
is($rest[-1]{event} . ' ' . $rest[-1]{json}{result}, 'result line 0
line 1
line 2
line 3
line 4', '... and the result last');
my $again = sse_open($ng, 'GET', "/executions/$eid/events");
my @whole = sse_all($again, 20);
is(scalar @whole, scalar(@rest) + 1, 'without Last-Event-ID: the whole stream again');

# "async": 202 at once, then poll
my ($ast, $abody, $ah) = $ng->execute("import time\ntime.sleep(1.5)\nx = 6 * 7\nx", $sid, ', "async": true');
my $a = eval { $json->decode($abody) } // {};
is($ast, 202, '"async": true answers 202 at once');
like($a->{execution_id} // '', qr/^[0-9a-f]{16}\.\Q$sid\E$/, '... with the execution_id');
is($ah->{'x-pyexec-execution-id'}, $a->{execution_id}, '... also in X-Pyexec-Execution-Id');
is($a->{session_id}, $sid, '... and the session_id');
my ($pst, $pbody) = $ng->http('GET', "/executions/$a->{execution_id}");
is($pst, 202, 'GET /executions/{id} while it runs: 202');
is((eval { $json->decode($pbody) } // {})->{status}, 'running', '... {"status": "running"}');
my $done;
for (1 .. 100) {
    ($pst, $pbody) = $ng->http('GET', "/executions/$a->{execution_id}");
    last if $pst == 200;
    sleep 0.1;
}
$done = eval { $json->decode($pbody) } // {};
is($pst, 200, 'then 200');
is($done->{result}, 42, '... with the reply');
is($done->{execution_id}, $a->{execution_id}, '... of that execution');
my ($nst, $nbody) = $ng->http('GET', "/executions/0123456789abcdef.$sid");
is($nst, 404, 'an unknown execution: 404');
like($nbody, qr/"detail":"Execution not found/, '... saying so');

# a client that goes away mid-cell loses nothing: the reply waits
# a cell posted, then its client gone after $secs
sub leave_mid_cell {
    my ($ng, $sid, $code, $secs) = @_;
    my $s = $ng->send_req('POST', '/execute', $json->encode({ code => $code, session_id => $sid }),
                          { 'Content-Type' => 'application/json' });
    sleep $secs;
    close $s if $s;
}

leave_mid_cell($ng, $sid, "import time\ntime.sleep(1)\nleft = 'kept'\nleft", 0.3);
my $info;
for (1 .. 100) {
    sleep 0.1;
    my (undef, $ibody) = $ng->http('GET', "/sessions/$sid");
    $info = eval { $json->decode($ibody) } // {};
    last if grep { $_ eq 'left' } @{ $info->{variables} // [] };
}
ok(grep({ $_ eq 'left' } @{ $info->{variables} // [] }), 'a client that went away: its cell ran on');
my ($lst, $lbody) = $ng->http('GET', "/executions/$info->{last_execution_id}");
is($lst, 200, '... and its reply waits in the journal');
is((eval { $json->decode($lbody) } // {})->{result}, 'kept', '... whole');

# a reader that reads nothing: the cell is not slowed, the reader dropped
my $flood = "s = 'x' * 1023\nfor i in range(20000):\n    print(s)\n'flooded'";
my $mute = sse_open($ng, 'POST', '/execute', $json->encode({ code => $flood, session_id => $sid, stream => JSON::PP::true }),
                    { 'Content-Type' => 'application/json' });
my $fid;
for (1 .. 600) {        # 20 MB through the journal: seconds on a slow machine
    sleep 0.1;
    my (undef, $sbody) = $ng->http('GET', '/status', undef, { 'X-Session-Id' => $sid });
    my $status = eval { $json->decode($sbody) } // {};
    $fid = ($status->{busiest} // [])->[0]{last_execution_id} if !$status->{running};
    last if $fid && $fid =~ /^[0-9a-f]{8}/ && !$status->{running};
}
my ($fst, $fbody) = $ng->http('GET', "/executions/$fid") if $fid;
my $flooded = eval { $json->decode($fbody // '') } // {};
is($flooded->{value}, "'flooded'", 'a stream nobody reads: its cell (20 MB of output) finished all the same');
is($flooded->{usage}{stdout_bytes}, 20000 * 1024, '... having written all of it');
sleep 4;                # past send_timeout (2 s) without reading
my $read = 0;
my $eof = 0;
for (1 .. 400) {        # what the server still sends, then its close
    my $n = sysread($mute->{s}, my $buf, 1 << 20);
    if (defined $n && $n == 0) { $eof = 1; last }
    $read += $n if $n;
    sleep 0.05 unless $n;
}
ok($eof, 'the reader that took nothing is dropped (send_timeout)');
cmp_ok($read, '<', 20000 * 1024, "... before it got the whole stream ($read bytes)");
like($ng->log_text(), qr/the client took nothing for send_timeout, dropped|client timed out/,
     '... as the log says (the worker\'s stream, or the front\'s proxy)');

$c->stop;

# pyexec_interrupt_on_disconnect on; the journal's time and byte bound
my $c2 = Pyexec::Cells->new(name => 'executions-bounds', port_offset => 25,
    set => { pyexec_interrupt_on_disconnect => 'on', pyexec_journal_time => '2s',
             pyexec_journal_max => '256k' });
$ng = $c2->ng;
ok($c2->start, 'the shipped conf with interrupt on disconnect, a 2 s journal of 256 KB');
my $sid2 = $c2->id_on(1, 'bounds');
leave_mid_cell($ng, $sid2, "import time\ntime.sleep(30)", 0.5);
my $stopped;
for (1 .. 100) {
    sleep 0.1;
    my (undef, $ibody) = $ng->http('GET', "/sessions/$sid2");
    my $i = eval { $json->decode($ibody) } // {};
    next unless $i->{last_execution_id};
    my (undef, $ebody) = $ng->http('GET', "/executions/$i->{last_execution_id}");
    $stopped = eval { $json->decode($ebody) };
    last if $stopped;
}
is($stopped && $stopped->{termination}{reason}, 'interrupted',
   'pyexec_interrupt_on_disconnect on: a client that goes away stops its cell');
is($stopped && $stopped->{error_name}, 'KeyboardInterrupt', '... as an interrupt does');

my ($r1) = $c2->cell($sid2, "1");
for my $i (1 .. 1000) {
    my ($r) = $c2->cell($sid2, "print('%d' % $i + 'y' * 300)");
}
my ($last) = $c2->cell($sid2, "'last'");
my (undef, $sbody) = $ng->http('GET', '/status', undef, { 'X-Session-Id' => $sid2 });
my $journal = (eval { $json->decode($sbody) } // {})->{journal} // {};
cmp_ok($journal->{bytes} // 1e9, '<=', 256 * 1024, "1 002 executions: the journal within its 256 KB ($journal->{bytes} bytes)");
cmp_ok($journal->{executions} // 1e9, '<', 1002, "... the oldest gone first ($journal->{executions} kept)");
my ($ost, $obody) = $ng->http('GET', "/executions/$r1->{execution_id}");
is($ost, 404, 'the oldest: 404');
like($obody, qr/Execution expired/, '... expired');
my ($kst) = $ng->http('GET', "/executions/$last->{execution_id}");
is($kst, 200, 'the newest is kept');
sleep 3.5;
($kst, my $kbody) = $ng->http('GET', "/executions/$last->{execution_id}");
is($kst, 404, 'past pyexec_journal_time (2 s): 404');
like($kbody, qr/Execution expired/, '... expired');
$c2->stop;

done_testing();
