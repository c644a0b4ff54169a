# vim:set ft= ts=4 sw=4 et fdm=marker:
# Observability on the shipped nginx.conf (front + two workers): GET
# /metrics gathered from both workers, read by Debian's
# python3-prometheus-client text parser, and counters that move by exactly
# what known requests did; every cell's execution_id (reply, GET
# /sessions/{id}, /status, the front's JSON access log with
# $pyexec_execution_id & co.); /status's running cell and busiest
# sessions; a worker killed outright counted as a start, its session
# counted as restored.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use File::Temp qw(tempfile);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Pyexec::Cells;
use Pyexec::Instance;
use Pyexec::Shipped;

my $json = JSON::PP->new->utf8->canonical;

my $c = Pyexec::Cells->new(name => 'metrics', port_offset => 22,
    access_log => 1,
    allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/]);
my $ng = $c->ng;
ok($c->start, 'the shipped nginx.conf starts with two workers');

# the text, parsed by prometheus_client: (families, samples) where a
# sample's key is name{label=value,...} with the labels sorted
my $parser = <<'_PY_';
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"families": [], "samples": {}}
for f in text_string_to_metric_families(sys.stdin.read()):
    out["families"].append([f.name, f.type, f.documentation])
    for s in f.samples:
        key = s.name + "{" + ",".join(
            "%s=%s" % kv for kv in sorted(s.labels.items())) + "}"
        if key in out["samples"]:
            sys.exit("duplicate sample " + key)
        out["samples"][key] = s.value
print(json.dumps(out))
_PY_

sub scrape {
    my ($st, $body, $h) = $ng->http('GET', '/metrics');
    return undef unless $st == 200;
    my ($fh, $file) = tempfile(UNLINK => 1);
    print $fh $body;
    close $fh;
    local $ENV{LD_PRELOAD};
    delete $ENV{LD_PRELOAD};
    my $out = `/usr/bin/python3 -c '$parser' < $file 2>&1`;
    my $m = eval { $json->decode($out) };
    diag("the parser says: $out") unless $m;
    return $m ? { %$m, text => $body, type => $h->{'content-type'} } : undef;
}

sub val {
    my ($m, $key) = @_;
    return $m->{samples}{$key} // 'absent';
}

sub delta {
    my ($a, $b, $key) = @_;
    my ($x, $y) = (val($a, $key), val($b, $key));
    return 'absent' if $x eq 'absent' || $y eq 'absent';
    return $y - $x;
}

ok(Pyexec::Shipped::wait_warm($ng), 'both workers warm (session_init imported)');
my $a_sid = $c->id_on(0, 'metrics-a');
my $b_sid = $c->id_on(1, 'metrics-b');

my $m0 = scrape();
ok($m0, 'GET /metrics through the front is valid Prometheus text')
    or BAIL_OUT('no metrics');
like($m0->{type}, qr{^text/plain; version=0\.0\.4}, '... served as text/plain; version=0.0.4');

# names and units as Prometheus names them; every series has its worker
my %fam = map { $_->[0] => $_ } @{ $m0->{families} };
for my $f (qw(pyexec_executions pyexec_sessions_created pyexec_sessions_expired
              pyexec_sessions_evicted pyexec_sessions_restored pyexec_sessions_lost
              pyexec_checkpoints pyexec_checkpoint_bytes pyexec_checkpoint_seconds
              pyexec_output_bytes pyexec_upload_bytes pyexec_worker_starts)) {
    is($fam{$f} && $fam{$f}[1], 'counter', "$f is a counter (${f}_total)");
}
for my $f (qw(pyexec_execution_duration_seconds pyexec_queue_wait_seconds)) {
    is($fam{$f} && $fam{$f}[1], 'histogram', "$f is a histogram");
}
for my $f (qw(pyexec_sessions pyexec_cells_in_flight pyexec_worker_resident_memory_bytes
              pyexec_worker_heap_bytes pyexec_worker_warm pyexec_worker_up)) {
    is($fam{$f} && $fam{$f}[1], 'gauge', "$f is a gauge");
}
my @unlabelled = grep { !/\bworker=\d+\b/ } keys %{ $m0->{samples} };
is_deeply(\@unlabelled, [], 'every series is labelled with its worker');
my @nohelp = grep { !length $_->[2] } @{ $m0->{families} };
is(scalar @nohelp, 0, 'every family has a HELP text');
my @le = sort { $a <=> $b } map { /le=([^,}]+)/ ? ($1 eq '+Inf' ? 1e99 : $1) : () }
         grep { /^pyexec_execution_duration_seconds_bucket\{.*worker=0/ } keys %{ $m0->{samples} };
is_deeply(\@le, [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                 5, 10, 30, 60, 120, 300, 600, 1e99],
          'duration buckets from 1 ms to 10 min, then +Inf');
for my $w (0, 1) {
    is(val($m0, "pyexec_worker_up{worker=$w}"), 1, "worker $w answered the scrape");
    cmp_ok(val($m0, "pyexec_worker_resident_memory_bytes{worker=$w}"), '>', 20e6,
           "worker $w: its resident memory");
    like(val($m0, "pyexec_worker_heap_bytes{worker=$w}"), qr/^\d+(\.0)?$/,
         "worker $w: its heap in use, in bytes");
    is(val($m0, "pyexec_worker_warm{worker=$w}"), 1, "worker $w: warm");
}

# known cells on worker 0: two ok, one error, one timeout
my @replies;
for my $code ("print('abcd')", "x = 1", "1 / 0") {
    my ($r, $st) = $c->cell($a_sid, $code);
    push @replies, $r;
}
my ($late, $st_late) = $c->cell($a_sid, "import time\ntime.sleep(30)", timeout => 0.3);
push @replies, $late;
is(join(' ', map { $_ ? $_->{termination}{reason} : '?' } @replies), 'ok ok error timeout',
   'four cells on worker 0: ok, ok, error, timeout');
my $out_bytes = 0;
$out_bytes += $_->{usage}{stdout_bytes} + $_->{usage}{stderr_bytes} for grep { $_ } @replies;

my $m1 = scrape();
my %want = (ok => 2, error => 1, memory => 0, timeout => 1, interrupted => 0, worker_lost => 0);
for my $reason (sort keys %want) {
    is(delta($m0, $m1, "pyexec_executions_total{reason=$reason,worker=0}"), $want{$reason},
       "worker 0: executions_total{reason=$reason} +$want{$reason}");
    is(delta($m0, $m1, "pyexec_executions_total{reason=$reason,worker=1}"), 0,
       "worker 1: executions_total{reason=$reason} unchanged");
}
my $h = 'pyexec_execution_duration_seconds';
is(delta($m0, $m1, "${h}_count{worker=0}"), 4, 'duration histogram: 4 more cells');
is(delta($m0, $m1, "${h}_bucket{le=+Inf,worker=0}"), 4, '... +Inf bucket: the same 4');
is(delta($m0, $m1, "${h}_bucket{le=0.25,worker=0}"), 3, '... the three short cells under 0.25 s');
cmp_ok(delta($m0, $m1, "${h}_sum{worker=0}"), '>=', 0.3, '... the sum holds the timed-out cell\'s 0.3 s');
is(delta($m0, $m1, "pyexec_queue_wait_seconds_count{worker=0}"), 4, 'queue wait observed for each cell');
is(delta($m0, $m1, "pyexec_sessions_created_total{worker=0}"), 1, 'one session created on worker 0');
is(delta($m0, $m1, "pyexec_sessions_created_total{worker=1}"), 0, '... none on worker 1');
is(val($m1, "pyexec_sessions{worker=0}") - val($m0, "pyexec_sessions{worker=0}"), 1,
   'sessions held on worker 0: one more');
is(delta($m0, $m1, "pyexec_output_bytes_total{worker=0}"), $out_bytes,
   "output bytes: what the replies' usage says ($out_bytes)");

# execution ids: in the reply, unique, naming their session; the session
# and the access log agree
my @ids = map { $_ ? $_->{execution_id} // '' : '' } @replies;
is(scalar(grep { /^[0-9a-f]{16}\.\Q$a_sid\E$/ } @ids), 4, 'every reply has an execution_id: 16 hex digits, ".", its session');
my %uniq = map { $_ => 1 } @ids;
is(scalar keys %uniq, 4, '... all different');
my ($st, $body) = $ng->http('GET', "/sessions/$a_sid");
my $info = eval { $json->decode($body) } // {};
is($info->{last_execution_id}, $ids[-1], 'GET /sessions/{id}: last_execution_id is its last cell\'s');
my ($rb) = $c->cell($b_sid, "y = 2");
my ($hex_a) = $ids[0] =~ /^([0-9a-f]{8})/;
my ($hex_b) = ($rb->{execution_id} // '') =~ /^([0-9a-f]{8})/;
isnt($hex_a, $hex_b, 'the two workers draw different execution_id prefixes');

sub access_lines {
    open my $f, '<', $ng->root . '/logs/access.log' or return ();
    return map { eval { $json->decode($_) } // () } <$f>;
}
my %log;
for (1 .. 50) {
    %log = map { ($_->{execution_id} || '-') => $_ } access_lines();
    last if $log{$ids[-1]};
    sleep 0.1;
}
for my $i (0 .. $#replies) {
    my $l = $log{$ids[$i]} // {};
    my $r = $replies[$i];
    is($l->{termination}, $r->{termination}{reason}, "access log, cell $i: termination $r->{termination}{reason}");
    is($l->{session_id}, $a_sid, "access log, cell $i: its session_id");
    like($l->{worker} // '', qr{^0/\d+$}, "access log, cell $i: its worker");
    like($l->{duration_ms} // '', qr/^\d+\.\d{3}$/, "access log, cell $i: duration_ms");
    like($l->{queue_ms} // '', qr/^\d+\.\d{3}$/, "access log, cell $i: queue_ms");
}
cmp_ok($log{$ids[-1]}{duration_ms} // 0, '>=', 300, 'access log: the timed-out cell ran >= 300 ms');
my @health = grep { $_->{uri} eq '/metrics' } access_lines();
ok(@health && $health[0]{execution_id} eq '' && $health[0]{session_id} eq '',
   'access log: a request that is not a cell has no execution nor session id');

# /upload: its bytes, on the worker that stored them
my $boundary = 'pyexecmetricsboundary';
my $file = "hello metrics\n" x 10;
my $mp = "--$boundary\r\nContent-Disposition: form-data; name=\"files\"; filename=\"m.txt\"\r\n"
       . "Content-Type: text/plain\r\n\r\n$file\r\n--$boundary--\r\n";
my ($ust) = $ng->http('POST', '/upload', $mp,
                      { 'Content-Type' => "multipart/form-data; boundary=$boundary",
                        'X-Session-Id' => $a_sid });
is($ust, 200, 'an upload through the front');
my $m2 = scrape();
is(delta($m1, $m2, "pyexec_upload_bytes_total{worker=0}"), length($file),
   'upload_bytes_total: the file\'s ' . length($file) . ' bytes');

# /status: the running cell, the busiest sessions
my $s = $ng->send_req('POST', '/execute',
                      $json->encode({ code => "import time\ntime.sleep(1.5)", session_id => $a_sid }),
                      { 'Content-Type' => 'application/json' });
my $status;
for (1 .. 50) {
    sleep 0.05;
    my ($sst, $sbody) = $ng->http('GET', '/status', undef, { 'X-Session-Id' => $a_sid });
    $status = eval { $json->decode($sbody) };
    last if $status && $status->{running};
}
my ($rst, $rbody) = Pyexec::Instance::read_resp($s, 20);
my $long = eval { $json->decode($rbody) } // {};
is($status->{running}{execution_id}, $long->{execution_id}, '/status: running is the cell that runs, by execution_id');
is($status->{running}{session_id}, $a_sid, '... in its session');
my ($busy) = grep { $_->{session_id} eq $a_sid } @{ $status->{busiest} // [] };
is($busy && $busy->{cells}, 5, '/status: the session among the busiest, with its cells');
is($busy && $busy->{last_execution_id}, $long->{execution_id}, '... and its latest cell');

# checkpoints: session b's (one cell), counted with the file's size
my $ckpt = Pyexec::Shipped::checkpoint_path($ng, $b_sid);
my $m3;
for (1 .. 100) {
    $m3 = scrape();
    last if -s $ckpt && delta($m0, $m3, "pyexec_checkpoints_total{worker=1}") >= 1;
    sleep 0.1;
}
sleep 0.3;
$m3 = scrape();
is(delta($m0, $m3, "pyexec_checkpoints_total{worker=1}"), 1, 'worker 1 wrote one checkpoint');
is(delta($m0, $m3, "pyexec_checkpoint_bytes_total{worker=1}"), -s $ckpt,
   '... of the checkpoint file\'s size (' . (-s $ckpt) . ' bytes)');
cmp_ok(delta($m0, $m3, "pyexec_checkpoint_seconds_total{worker=1}"), '>', 0, '... and some CPU time');

# worker 1 killed outright: one more start; its session comes back
my ($w1pid) = grep { defined } map { (Pyexec::Cells::worker_of($_))[1] }
              ($ng->http('GET', '/status', undef, { 'X-Session-Id' => $b_sid }))[2];
kill 'KILL', $w1pid;
my $back;
for (1 .. 200) {
    sleep 0.05;
    my $m = scrape();
    if ($m && val($m, 'pyexec_worker_up{worker=1}') == 1
        && delta($m3, $m, 'pyexec_worker_starts_total{worker=1}') >= 1) {
        $back = $m;
        last;
    }
}
ok($back, 'worker 1 is back after kill -9');
is(delta($m3, $back, 'pyexec_worker_starts_total{worker=1}'), 1, 'worker_starts_total{worker=1}: +1');
is(delta($m3, $back, 'pyexec_worker_starts_total{worker=0}'), 0, 'worker_starts_total{worker=0}: unchanged');
my ($rr) = $c->cell($b_sid, "y + 1");
is($rr && $rr->{result}, '3', 'the session of the killed worker comes back from its checkpoint');
my $m4 = scrape();
is(val($m4, 'pyexec_sessions_restored_total{worker=1}'), 1, 'its new worker counts one session restored');
is(val($m4, 'pyexec_executions_total{reason=ok,worker=1}'), 1, '... and one cell (a new process\'s counters)');

# 100 cells in a row in one session: checkpointed at most a fiftieth of
# the time (not at every pause between two cells), and its last state is
# written all the same once it is due
my $burst = $c->id_on(1, 'metrics-burst');
my $m5 = scrape();
my ($inrow, $last) = (0, 0);
for my $i (1 .. 100) {
    my ($r) = $c->cell($burst, "n = globals().get('n', 0) + 1\nn");
    $inrow++ if $r && $r->{result} eq $i;
    $last = $r->{execution_count} if $r;
}
is($inrow, 100, '100 cells in a row in one session');
my $bfile = Pyexec::Shipped::checkpoint_path($ng, $burst);
my $written = -1;
for (1 .. 100) {
    local $ENV{LD_PRELOAD};
    delete $ENV{LD_PRELOAD};
    $written = `/usr/bin/python3 -c 'import pickle, sys; print(pickle.load(open(sys.argv[1], "rb"))["count"])' $bfile 2>/dev/null` if -s $bfile;
    chomp $written;
    last if $written eq $last;
    sleep 0.1;
}
is($written, $last, "... its last state is checkpointed once due (execution $last)");
my $nck = delta($m5, scrape(), "pyexec_checkpoints_total{worker=1}");
cmp_ok($nck, '<=', 50, "... in $nck checkpoints, not one after every cell");

$c->stop;     # and no [alert] nor sanitizer report in its error log

# the other ends of a session: evicted at pyexec_session_max, expired
# after pyexec_session_idle_timeout, lost with its worker (no state folder)
my $c2 = Pyexec::Cells->new(name => 'metrics-ends', port_offset => 23,
    set => { pyexec_state_dir => '""', pyexec_session_max => 2,
             pyexec_session_idle_timeout => '2s' },
    allow_alerts => [qr/\[alert\].*worker process \d+ exited on signal 9/]);
$ng = $c2->ng;
ok($c2->start, 'the shipped conf with 2 sessions a worker, 2 s idle, no checkpoints');
my @sids = map { $c2->id_on(0, "ends-$_") } 1 .. 3;
my $e0 = scrape();
for my $sid (@sids) {
    my ($r) = $c2->cell($sid, "z = 1");
}
my $e1 = scrape();
is(delta($e0, $e1, 'pyexec_sessions_evicted_total{worker=0}'), 1,
   'a third session on the worker evicts the least recently used: evicted_total +1');
is(val($e1, 'pyexec_sessions{worker=0}'), 2, '... two sessions held');
my $e2;
for (1 .. 100) {
    sleep 0.1;
    $e2 = scrape();
    last if val($e2, 'pyexec_sessions{worker=0}') == 0;
}
is(delta($e1, $e2, 'pyexec_sessions_expired_total{worker=0}'), 2,
   'both idle past 2 s expire: expired_total +2');
is(val($e2, 'pyexec_sessions{worker=0}'), 0, '... none held');

# a session the front minted, its worker killed: its next cell is a 410
my ($mst, $mbody, $mh) = $ng->execute("m = 1");
my $minted = (eval { $json->decode($mbody) } // {})->{session_id} // '';
my ($mw, $mpid) = Pyexec::Cells::worker_of($mh);
ok(length $minted && defined $mpid, "a minted session ($minted) on worker " . ($mw // '?'));
kill 'KILL', $mpid if $mpid;
my $e3;
for (1 .. 200) {
    sleep 0.05;
    $e3 = scrape();
    last if $e3 && val($e3, "pyexec_worker_up{worker=$mw}") == 1
            && delta($e2, $e3, "pyexec_worker_starts_total{worker=$mw}") >= 1;
}
my ($lst) = $ng->execute("m", $minted);
is($lst, 410, 'its next cell: 410, the session was lost with its worker');
my $e4 = scrape();
is(val($e4, "pyexec_sessions_lost_total{worker=$mw}"), 1, 'sessions_lost_total of its new worker: 1');
$c2->stop;

done_testing();
