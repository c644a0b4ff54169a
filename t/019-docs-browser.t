# vim:set ft= ts=4 sw=4 et fdm=marker:
# /docs in a real browser: Debian's chromium, headless, loads the Swagger
# UI page of the shipped nginx.conf; the page must show the /execute
# operation (rendered from /openapi.json by the page's JavaScript).  A
# screenshot is kept at build/docs-screenshot.png for a human to look at.
# `make test` installs chromium (tools/deps.sh test), so this runs there;
# elsewhere, without chromium, it is skipped (README, "Test Suite").

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;
use Pyexec::Shipped;

my ($chromium) = grep { -x } '/usr/bin/chromium', '/usr/bin/chromium-browser';
plan skip_all => 'chromium is not installed (make deps-test installs it)' unless $chromium;
plan tests => 7;

$ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 8;
my $root = abs_path('.') . "/t/servroot-docs";
my $shot = abs_path('.') . "/build/docs-screenshot.png";
make_path(abs_path('.') . "/build");

my $ng = Pyexec::Shipped::instance(root => $root, port => $port);
ok($ng->start(), 'the shipped nginx.conf starts') or BAIL_OUT($ng->log_text());

sub browse {
    my (@what) = @_;
    my $profile = tempdir(CLEANUP => 1);
    my @cmd = ($chromium, qw(--headless --no-sandbox --disable-gpu --no-first-run
               --disable-background-networking --disable-component-update
               --disable-sync --hide-scrollbars --virtual-time-budget=20000),
               "--user-data-dir=$profile", @what, "http://127.0.0.1:$port/docs/");
    my $cmd = join ' ', map { "'$_'" } @cmd;
    local $ENV{LD_PRELOAD};     # the browser runs without the server's sanitizer
    delete $ENV{LD_PRELOAD};
    return scalar `timeout 90 $cmd 2>/dev/null`;
}

my $dom = browse('--dump-dom');
like($dom, qr/<title>Swagger UI<\/title>/, 'the Swagger UI page loads');
like($dom, qr/class="opblock-summary-path" data-path="\/execute"/,
     'the page shows the /execute operation');
like($dom, qr/class="opblock opblock-post[^"]*" id="operations-default-execute"/,
     '... as a POST operation');
like($dom, qr/<h1 class="title">pyexec/, 'with the API title from /openapi.json');

unlink $shot;
browse('--window-size=1280,1800', "--screenshot=$shot");
ok(-s $shot && -s $shot > 20000, "a screenshot is kept: build/docs-screenshot.png (" . (-s $shot // 0) . " bytes)");

$ng->stop();

END { $ng->stop() if $ng }
