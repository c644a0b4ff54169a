# vim:set ft= ts=4 sw=4 et fdm=marker:
# The container files, validated without a Docker engine: docker-compose.yml
# parses and says what the README promises, and the Dockerfile's own CMD,
# run here with the container's environment, serves the API with the data
# folder at a fixed path, workers not as root, a read-only folder refusing
# uploads clearly.

use strict;
use warnings;

use Test::More tests => 17;
use Time::HiRes qw(sleep);
use File::Path qw(make_path remove_tree);
use Cwd qw(abs_path);
use lib 't/lib';
use Pyexec::Instance;

my $mod = $ENV{TEST_NGINX_LOAD_MODULES} or BAIL_OUT("TEST_NGINX_LOAD_MODULES not set");
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 4;
my $root = abs_path('.') . "/t/servroot-deploy";

# {{{ docker-compose.yml

my $json = `/usr/bin/python3 -c 'import json, yaml; print(json.dumps(yaml.safe_load(open("docker-compose.yml"))))'`;
ok($? == 0 && $json =~ /^\{/, 'docker-compose.yml parses');
my ($svc) = $json =~ /"services": \{"pyexec": (\{.*\})\}(?:, "volumes": \{.*\})?\}$/;
like($svc // '', qr/"ports": \["127\.0\.0\.1:8123:8123"\]/, 'published on 127.0.0.1:8123 only');
like($svc // '', qr/"volumes": \["[^"]+:\/app\/custom_data:ro"/, 'the data folder is mounted read-only by default');
like($svc // '', qr/"pyexec-state:\/app\/state"/, 'the state folder is a volume: checkpoints outlive the container');
like($svc // '', qr/"healthcheck": \{"test": \[[^\]]*\/health/, 'healthcheck on /health');
like($svc // '', qr/"restart": "unless-stopped"/, 'restart policy');

# }}}
# {{{ Dockerfile

open my $df, '<', 'Dockerfile' or die $!;
my $dockerfile = do { local $/; <$df> };
like($dockerfile, qr/^FROM debian:bookworm-slim$/m, 'debian:bookworm-slim');
like($dockerfile, qr/^RUN make build\b/m, 'installs and builds with make, as make run does');
like($dockerfile, qr/DATA_DIR=\/app\/custom_data/, 'the data folder is /app/custom_data');
like($dockerfile, qr/STATE_DIR=\/app\/state/, 'the state folder is /app/state');
like($dockerfile, qr/^RUN .*make data DOWNLOAD_DIR=\/app\/downloaded_data/m, 'the build downloads the datasets (make data)');
my ($cmd) = $dockerfile =~ /^CMD \["sh", "-c", "(.*)"\]$/m;
ok($cmd, 'CMD found');
$cmd =~ s/\\"/"/g if $cmd;

# }}}
# {{{ the CMD with the container's environment (paths under the test root)

remove_tree($root);
make_path("$root/logs", "$root/data", "$root/sock");
symlink $mod, "$root/ngx_http_pyexec_module.so";
chmod 01777, "$root/data", "$root/sock";

my $pid = fork // die;
if ($pid == 0) {
    # a clean environment for make: no variables from a make above us
    delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES)};
    $ENV{BUILD} = $root;
    $ENV{PORT} = $port;
    $ENV{LISTEN} = '127.0.0.1';
    $ENV{DATA_DIR} = "$root/data";
    $ENV{STATE_DIR} = "$root/state";
    $ENV{SOCK_DIR} = "$root/sock";
    open STDERR, '>', "$root/logs/stderr.log";
    open STDOUT, '>', "$root/logs/stdout.log";
    exec 'sh', '-c', $cmd;
    exit 127;
}

my $ng = Pyexec::Instance->new(root => "$root/unused", port => $port);
my ($code, $body) = (0, '');
for (1 .. 200) { ($code, $body) = $ng->http('GET', '/health'); last if $code == 200; sleep 0.05 }
is("$code $body", '200 {"status":"healthy"}', 'the CMD serves /health, exactly');

my $mp = "--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.csv\"\r\n\r\nn\n5\n\r\n--b--\r\n";
($code, $body) = $ng->http('POST', '/upload', $mp, { 'Content-Type' => 'multipart/form-data; boundary=b' });
like($body, qr/"success":true/, 'upload into the data folder');
($code, $body) = $ng->execute("import pandas as pd, os\n(os.getcwd(), int(pd.read_csv('x.csv').n.sum()))");
like($body, qr/^\{"result":\["\Q$root\E\/data",5\]/, 'code runs in the data folder and reads the upload');

SKIP: {
    skip 'workers keep our user when not root', 2 if $> != 0;
    my @uids = map { open my $s, '<', "/proc/$_/status"; local $/; (<$s> =~ /^Uid:\s+(\d+)/m)[0] }
               grep { open my $c, '<', "/proc/$_/cmdline"; (<$c> // '') =~ /^nginx: worker/ }
               map { m{/proc/(\d+)/} ? $1 : () } glob '/proc/[0-9]*/cmdline';
    ok(@uids && !grep({ $_ == 0 } @uids), 'workers do not run as root');

    # a data folder the workers cannot write: the container's :ro mount
    chmod 0755, "$root/data";
    chown 0, 0, "$root/data";
    ($code, $body) = $ng->http('POST', '/upload', $mp, { 'Content-Type' => 'multipart/form-data; boundary=b' });
    like($body, qr/^\{"success":false,"uploaded_files":\[\],"error":"cannot write to the data folder"\}$/,
         'a read-only data folder refuses uploads clearly');
}

kill 'QUIT', $pid;
waitpid $pid, 0;

# }}}
