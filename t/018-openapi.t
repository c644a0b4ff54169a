# vim:set ft= ts=4 sw=4 et fdm=marker:
# openapi.json against the running service (the shipped nginx.conf): every
# documented operation answers a documented status and its JSON validates
# against the spec's schemas (t/lib/openapi_check.py, python3-jsonschema).

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;
use Pyexec::Shipped;

$ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 7;
my $root = abs_path('.') . "/t/servroot-openapi";

my $ng = Pyexec::Shipped::instance(root => $root, port => $port);
ok($ng->start(), 'the shipped nginx.conf starts') or BAIL_OUT($ng->log_text());

my ($code, $body, $h) = $ng->http('GET', '/openapi.json');
open my $f, '<', 'openapi.json' or die $!;
my $file = do { local $/; <$f> };
is($code, 200, 'GET /openapi.json');
ok($body eq $file, '... is the repo\'s openapi.json');

my @out = do {
    local $ENV{LD_PRELOAD};     # the client runs without the server's sanitizer
    delete $ENV{LD_PRELOAD};
    `/usr/bin/python3 t/lib/openapi_check.py http://127.0.0.1:$port openapi.json 2>&1`;
};
my $rc = $? >> 8;
for (@out) {
    chomp;
    if (/^(not )?ok (.*)$/) { ok(!$1, $2) } else { diag($_) }
}
is($rc, 0, 'the walk found nothing wrong');

$ng->stop();
done_testing();

END { $ng->stop() if $ng }
