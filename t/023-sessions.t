# vim:set ft= ts=4 sw=4 et fdm=marker:
# Sessions under odd use, through the shipped nginx.conf: ids that look like
# paths, unicode, the longest allowed, refused ones; two requests at once on
# one session; 100 000 sessions each holding its own value.  Correct answers
# and no value ever seen from another session.
#
# Plain Test::More; the 100 000 requests come from a small Python client
# (keep-alive, two connections) for speed.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use IO::Socket::INET;
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;
use Pyexec::Shipped;

$ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 10;
my $root = abs_path('.') . "/t/servroot-sessions";
my $N = 100_000;

my $ng = Pyexec::Instance->new(root => $root, addr => '127.0.0.1', port => $port);
# a test that dies still stops its nginx (its ports would block the next run)
END { $ng->stop() if $ng }
my $conf = Pyexec::Shipped::render(root => $root, addr => '127.0.0.1',
                                   port => $port,
                                   mod => $ENV{TEST_NGINX_LOAD_MODULES});
$conf =~ s/pyexec_session_max \d+;/pyexec_session_max 120000;/ or die "no session_max";
$ng->write_conf($conf);
ok($ng->start(), 'the shipped nginx.conf starts') or BAIL_OUT($ng->log_text());
ok(Pyexec::Shipped::wait_workers($ng), 'both workers answer');

sub uri_escape {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-_~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# {{{ odd ids: each its own session, readable back, nothing shared

my @odd = ('/', '..', '.', '../../etc/passwd', '%2F', "a b\"c\\d'e",
           "\x{f1}\x{2713}\x{fc}", "\x{1F642}", '?x=1#y', 'x' x 256);
for my $i (0 .. $#odd) {
    my $id = $odd[$i];
    my $json = Pyexec::Instance::json_str($id);
    utf8::encode($json);
    my ($c, $b) = $ng->http('POST', '/execute',
                            "{\"code\": \"v = $i\\nv\", \"session_id\": $json}",
                            { 'Content-Type' => 'application/json' });
    my $echo = $json =~ s/\\/\\\\/gr;
    ok($c == 200 && $b =~ /"result":$i,/, "odd id #$i: a session of its own ($c)");
}
my $mixed = 0;
for my $i (0 .. $#odd) {
    my $json = Pyexec::Instance::json_str($odd[$i]);
    utf8::encode($json);
    my ($c, $b) = $ng->http('POST', '/execute',
                            "{\"code\": \"v\", \"session_id\": $json}",
                            { 'Content-Type' => 'application/json' });
    $mixed++ unless $c == 200 && $b =~ /"result":$i,/ && $b =~ /"execution_count":2,/;
}
is($mixed, 0, 'each odd id reads back its own value, second call');

for my $i (0, 4, 5, 6, 7, 8, 9) {
    my ($c, $b) = $ng->http('GET', '/sessions/' . uri_escape($odd[$i]));
    ok($c == 200 && $b =~ /"variables":\["v"\]/, "GET /sessions/{odd id #$i} ($c)");
}
# ".", ".." and "../../x" cannot be path segments: nginx folds dot segments
# (even %2E / %2F-encoded) before routing; such ids work in the body and
# in X-Session-Id, and their paths get a clear JSON refusal
my ($pc, $pb) = $ng->http('GET', '/sessions/' . uri_escape($odd[3]));
ok($pc == 400 && $pb =~ /"detail"/, "GET /sessions/..%2F..%2Fetc%2Fpasswd: 400 JSON ($pc)");

my ($c, $b) = $ng->execute("1", 'x' x 257);
ok($c == 422 && $b =~ /at most 256/, 'a 257-byte id: 422');
($c, $b) = $ng->execute("1", 'x' x 10240);
ok($c == 422 && $b =~ /at most 256/, 'a 10 KB id: 422');
($c, $b) = $ng->http('POST', '/execute',
                     "{\"code\": \"1\", \"session_id\": \"a\\r\\nX-Pyexec-New-Session: 1\"}",
                     { 'Content-Type' => 'application/json' });
ok($c == 422 && $b =~ /control character/, 'an id with CR LF (header splitting): 422');
($c, $b) = $ng->http('GET', '/sessions/a%0D%0AX-Evil:%201');
ok($c == 404 && $b =~ /"detail"/, 'a path id with CR LF: 404 JSON');

# }}}
# {{{ two requests at once on one session: both run, one after the other

my @s = map {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die $!;
    print $s Pyexec::Instance::request_raw('POST', '/execute',
        '{"code": "import time\ntime.sleep(0.3)\nn = globals().get(\'n\', 0) + 1\nn", "session_id": "together"}'
        =~ s/\n/\\n/gr,
        { 'Content-Type' => 'application/json' });
    $s;
} 1 .. 2;
my @res = sort map { my ($c, $b) = Pyexec::Instance::read_resp($_, 10); "$c:" . ($b =~ /"result":(\d+)/ ? $1 : '?') } @s;
is("@res", '200:1 200:2', 'two concurrent requests on one session: both 200, counts 1 and 2');

# }}}
# {{{ 100 000 sessions, each with its own value

my $client = <<'PY';
import http.client, json, random, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
bad = []
def post(conn, body):
    conn.request("POST", "/execute", json.dumps(body),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, json.loads(r.read())
def fill(lo, hi):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(lo, hi):
        st, j = post(conn, {"code": "v = %d" % i, "session_id": "many-%d" % i})
        if st != 200 or not j["success"]:
            bad.append(("fill", i, st))
ts = [threading.Thread(target=fill, args=(k * n // 2, (k + 1) * n // 2)) for k in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for i in random.Random(1).sample(range(n), 3000):
    st, j = post(conn, {"code": "v", "session_id": "many-%d" % i})
    if st != 200 or j["result"] != i or j["execution_count"] != 2:
        bad.append(("read", i, st, j.get("result")))
conn.request("GET", "/sessions")
r = conn.getresponse()
listed = json.loads(r.read())
names = {s["session_id"] for s in listed["sessions"] if s["session_id"].startswith("many-")}
print("filled %d, listed %d, partial %s, wrong %d %s"
      % (n, len(names), listed["partial"], len(bad), bad[:5]))
PY

my $t0 = time;
my $out = do {
    local $ENV{LD_PRELOAD};     # the client runs without the server's sanitizer
    delete $ENV{LD_PRELOAD};
    open my $py, '-|', '/usr/bin/python3', '-c', $client, $port, $N or die $!;
    local $/;
    <$py>;
};
diag(sprintf "%s (%.0f s)", $out // '', time - $t0);
like($out, qr/^filled $N, listed $N, partial False, wrong 0 /,
     "$N sessions: all created, all listed, each of 3000 read back its own value");

my (undef, $status) = $ng->http('GET', '/health');
is($status, '{"status":"healthy"}', 'healthy after');

# }}}

$ng->stop();
done_testing();
