# vim:set ft= ts=4 sw=4 et fdm=marker:
# tools/datasets.py (`make data`) against a local stand-in of the Hugging
# Face hub (t/lib/hub_fixture.py, the hub's URL layout, fixture files from
# t/fixtures/hub): a full download, a second run that fetches nothing, a
# resume after a cut connection, a checksum mismatch refused, 404s, no
# network, a full disk.  No machine here reaches the real hub.

use strict;
use warnings;

use Test::More tests => 27;
use Time::HiRes qw(sleep);
use File::Temp qw(tempdir);
use File::Compare qw(compare);
use IO::Socket::INET;
use Cwd qw(abs_path);

my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 6;

# no nginx here: nothing for `make test-asan`'s preloaded sanitizer to watch
delete $ENV{LD_PRELOAD};
my $repo = abs_path('.');
my $tmp = tempdir(CLEANUP => 1);
my $dest = "$tmp/downloaded";
my $fix = "$repo/t/fixtures/hub";
my $ctx = "data/context";
my ($behaviour, $log) = ("$tmp/behaviour.json", "$tmp/requests.log");

sub behave { open my $f, '>', $behaviour or die; print $f $_[0]; close $f }
behave('{}');

my $server = fork // die;
if ($server == 0) {
    exec '/usr/bin/python3', "$repo/t/lib/hub_fixture.py", $fix, $port, $behaviour, $log;
    exit 127;
}
END { kill 'TERM', $server if $server }
for (1 .. 100) { last if IO::Socket::INET->new("127.0.0.1:$port"); sleep 0.05 }

my $nmanifest = 0;
sub manifest {
    my $m = "$tmp/manifest" . $nmanifest++;
    open my $f, '>', $m or die;
    print $f "# test\n$_[0]\n";
    close $f;
    return $m;
}

my $default = manifest("adyen/DABstep main $ctx/");

# (exit code, output) of one run
sub run {
    my ($manifest, %env) = @_;
    local $ENV{HF_ENDPOINT} = $env{endpoint} // "http://127.0.0.1:$port";
    unlink $log;
    my $out = `/usr/bin/python3 $repo/tools/datasets.py --manifest $manifest --dest $dest 2>&1`;
    return ($? >> 8, $out);
}

sub requests { open my $f, '<', $log or return (); map { chomp; $_ } <$f> }

sub same {
    my ($name) = @_;
    return compare("$dest/adyen/DABstep/$ctx/$name", "$fix/adyen/DABstep/$ctx/$name") == 0;
}

# {{{ full download, then a second run that fetches nothing

my ($rc, $out) = run($default);
is($rc, 0, 'full download succeeds') or diag($out);
like($out, qr/datasets: 3 downloaded, 0 already there/, 'three files');
ok(same('payments.csv') && same('fees.json') && same('manual.md'), 'byte for byte (LFS and plain files)');
ok(!-e "$dest/adyen/DABstep/other/ignored.txt", 'files outside the path prefix are not fetched');
is(scalar(grep { /\.part$/ } glob("$dest/adyen/DABstep/$ctx/*")), 0, 'no .part left');

($rc, $out) = run($default);
is($rc, 0, 'second run succeeds');
like($out, qr/datasets: 0 downloaded, 3 already there/, 'second run downloads nothing');
is(scalar(grep { m{/resolve/} } requests()), 0, '... not a byte: only the file list was asked for');

# }}}
# {{{ resume after a cut

unlink "$dest/adyen/DABstep/$ctx/payments.csv";
behave(qq({"cut": {"$ctx/payments.csv": 40000}}));
($rc, $out) = run($default);
is($rc, 1, 'a cut connection fails the run');
like($out, qr/connection cut while fetching \Q$ctx\E\/payments\.csv.*run again to resume/, '... saying to run again');
ok(!-e "$dest/adyen/DABstep/$ctx/payments.csv", 'no half-written file under the final name');
is(-s "$dest/adyen/DABstep/$ctx/payments.csv.part", 40000, 'the part so far is kept for the resume');

behave('{}');
($rc, $out) = run($default);
is($rc, 0, 'the next run completes it');
ok(scalar(grep { m{/resolve/main/\Q$ctx\E/payments\.csv bytes=40000-$} } requests()),
   '... asking only for the rest (Range: bytes=40000-)');
ok(same('payments.csv'), '... and the file is whole');
ok(!-e "$dest/adyen/DABstep/$ctx/payments.csv.part", '... and the .part is gone');

# }}}
# {{{ checksum mismatch, for an LFS file (sha256) and a plain one (git sha1)

for my $name ('payments.csv', 'manual.md') {
    unlink "$dest/adyen/DABstep/$ctx/$name";
    behave(qq({"corrupt": ["$ctx/$name"]}));
    ($rc, $out) = run($default);
    like("$rc $out", qr/^1 .*\Q$name\E: checksum mismatch \((sha256|git sha1) .*the download was removed/s,
         "a corrupted $name is refused");
    ok(!-e "$dest/adyen/DABstep/$ctx/$name" && !-e "$dest/adyen/DABstep/$ctx/$name.part",
       '... and nothing of it is left');
}
behave('{}');

# }}}
# {{{ 404s, no network, a full disk

($rc, $out) = run(manifest("nobody/nothing"));
like("$rc $out", qr{^1 datasets: error: not found \(404\): http://127\.0\.0\.1:\d+/api/datasets/nobody/nothing/tree/main}, 'an unknown dataset: 404 named');

behave(qq({"missing": ["$ctx/fees.json"]}));
unlink "$dest/adyen/DABstep/$ctx/fees.json";
($rc, $out) = run($default);
like("$rc $out", qr{^1 .*not found \(404\): \S+/resolve/main/\Q$ctx\E/fees\.json}s, 'a listed file that is missing: 404 named');
behave('{}');

($rc, $out) = run($default, endpoint => 'http://127.0.0.1:9');
like("$rc $out", qr/^1 datasets: error: cannot reach http:\/\/127\.0\.0\.1:9: .*refused/i, 'no network: said plainly');

# /dev/full stands in for a full disk
symlink '/dev/full', "$dest/adyen/DABstep/$ctx/fees.json.part";
($rc, $out) = run($default);
like("$rc $out", qr/^1 datasets: error: disk full writing \S+fees\.json\.part/, 'a full disk: said plainly');
ok(!-e "$dest/adyen/DABstep/$ctx/fees.json" && !-l "$dest/adyen/DABstep/$ctx/fees.json.part",
   '... and nothing half-written is left');

($rc, $out) = run($default);
is($rc, 0, 'afterwards a run completes');
ok(same('fees.json'), '... with the right bytes');

# }}}
