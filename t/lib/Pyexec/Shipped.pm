package Pyexec::Shipped;

# The repo's nginx.conf made runnable under a test root, changed only where
# a test must: module path, daemon, logs, address and port, socket folder.
# What `make run` serves is what these tests exercise.

use strict;
use warnings;

use File::Path qw(make_path);
use Cwd qw(abs_path);

sub render {
    my (%o) = @_;    # root, addr, port, mod, http_extra
    my $file = abs_path('.') . '/nginx.conf';
    open my $in, '<', $file or die "$file: $!";
    local $/;
    my $c = <$in>;
    my $root = $o{root};

    for my $d ("$root/run", "$root/sock", "$root/data") {
        make_path($d);
        chmod 01777, $d;
    }

    $c =~ s/^load_module .*;$/load_module $o{mod};/m or die "no load_module";
    $c =~ s/^daemon off;$/daemon on;/m or die "no daemon";
    $c =~ s/^error_log .*;$/error_log $root\/logs\/error.log info;/m
        or die "no error_log";
    $c =~ s/^pid .*;$/pid logs\/nginx.pid;/m or die "no pid";
    $c =~ s/127\.0\.0\.1:8123/$o{addr}:$o{port}/g or die "no listen";
    $c =~ s{/run/pyexec/}{$root/sock/}g or die "no socket folder";
    my $repo = abs_path('.');
    $c =~ s{/opt/pyexec/}{$repo/}g;
    $c =~ s/^(\s*)access_log .*;$/$1access_log off;/m;
    $c =~ s/^http \{$/http {\n$o{http_extra}/m if $o{http_extra};

    return $c;
}

1;
