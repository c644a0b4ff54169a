# vim:set ft= ts=4 sw=4 et fdm=marker:
# The README's walkthrough, run as written: every "$ command" of its sh
# block (the port changed) against the shipped nginx.conf, each command's
# output compared with the lines the README shows ("..." skips lines and
# ",..." the rest of a line).  Keeps the README true.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;
use Pyexec::Shipped;

$ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 5;
my $root = abs_path('.') . "/t/servroot-walkthrough";
my $repo = abs_path('.');

open my $in, '<', 'README.md' or die $!;
my $readme = do { local $/; <$in> };
my ($block) = $readme =~ /^## Walkthrough.*?\n```sh\n(.*?)\n```/ms
    or BAIL_OUT('no walkthrough in README.md');

# commands ("$ " lines and their "\" continuations) and the output after each
my @steps;
my @lines = split /\n/, $block;
while (@lines) {
    my $l = shift @lines;
    next unless $l =~ s/^\$ //;
    my $cmd = $l;
    while ($cmd =~ /\\$/ || ($cmd =~ tr/'// % 2)) { $cmd .= "\n" . shift @lines }
    my @want;
    push @want, shift @lines while @lines && $lines[0] !~ /^(\$ |#|$)/;
    push @steps, [$cmd, \@want];
}

plan tests => 2 + 2 * @steps;

my $ng = Pyexec::Shipped::instance(root => $root, port => $port);
ok($ng->start(), 'the shipped nginx.conf starts') or BAIL_OUT($ng->log_text());

my $work = tempdir(CLEANUP => 1);
system('cp', '-r', "$repo/examples", "$work/");

for my $step (@steps) {
    my ($cmd, $want) = @$step;
    (my $run = $cmd) =~ s/127\.0\.0\.1:8123/127.0.0.1:$port/g;
    # the client commands run as a user runs them: without the sanitizer
    # `make test-asan` preloads into the server (curl hangs under it)
    local $ENV{LD_PRELOAD};
    delete $ENV{LD_PRELOAD};
    my $out = `cd $work && $run 2>&1`;
    is($?, 0, "runs: " . (split /\n/, $cmd)[0]);

    # the shown lines, in order, each a prefix when it ends in ",..."
    my @got = split /\n/, $out;
    my $ok = 1;
    my $i = 0;
    for my $w (@$want) {
        next if $w eq '...';    # lines left out; the search skips them
        my $re = quotemeta $w;
        $re =~ s/\\,\\\.\\\.\\\.(.)/,.*?$1/g;
        $re =~ s/\\,\\\.\\\.\\\.$/,.*/;
        my $found = 0;
        while ($i < @got) { if ($got[$i++] =~ /^$re$/) { $found = 1; last } }
        $ok = 0, diag("not shown: $w\ngot:\n$out") unless $found;
        last unless $ok;
    }
    ok($ok, 'output as the README shows');
}

$ng->stop();

END { $ng->stop() if $ng }
