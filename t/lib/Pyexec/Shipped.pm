package Pyexec::Shipped;

# The repo's nginx.conf made runnable under a test root, changed only where
# a test must: module path, daemon, logs, address and port, socket folder.
# What `make run` serves is what these tests exercise.

use strict;
use warnings;

use File::Path qw(make_path);
use Cwd qw(abs_path);
use Digest::MD5 ();

# a Pyexec::Instance of the shipped configuration, written, not started
# (its start() returns once every worker answers, not only the front);
# mod defaults to TEST_NGINX_LOAD_MODULES, addr to 127.0.0.1; name and
# allow_alerts go to Pyexec::Instance->new
sub instance {
    my (%o) = @_;
    $o{addr} //= '127.0.0.1';
    $o{mod} //= $ENV{TEST_NGINX_LOAD_MODULES}
        or die "TEST_NGINX_LOAD_MODULES not set\n";
    require Pyexec::Instance;
    my $ng = Pyexec::Instance->new(root => $o{root}, addr => $o{addr},
                                   port => $o{port}, name => $o{name},
                                   allow_alerts => $o{allow_alerts},
                                   ready => \&wait_workers);
    $ng->write_conf(render(%o));
    return $ng;
}

# until every worker answers: /health is the front's, a worker binds its
# socket a moment later (a request before that gets the front's 503)
sub wait_workers {
    my ($ng) = @_;
    for (1 .. 200) {
        my ($code, $body) = $ng->http('GET', '/sessions');
        return 1 if $code == 200 && $body =~ /"partial":false/;
        select(undef, undef, undef, 0.05);
    }
    return 0;
}

# the checkpoint file of session $sid in the instance's state folder
sub checkpoint_path {
    my ($ng, $sid) = @_;
    return $ng->root . '/state/' . Digest::MD5::md5_hex($sid) . '.ckpt';
}

# nginx -s reload: HUP, then until the two workers are new ones and
# answer; what the signal returned
sub reload {
    my ($ng) = @_;
    my @before = $ng->children();
    my $ok = $ng->signal('HUP');
    for (1 .. 200) {
        my @now = $ng->children();
        last if @now == 2 && !grep { my $o = $_; grep { $_ == $o } @before } @now;
        select(undef, undef, undef, 0.05);
    }
    wait_workers($ng);
    return $ok;
}

# until every worker is warm (pyexec_session_init's imports done, "warm"
# in its /status, asked through the front with an id hashed to it), so
# that the front places new sessions on all of them; 0 if one never is
sub wait_warm {
    my ($ng, $workers) = @_;
    require Pyexec::Cells;
    for my $w (0 .. ($workers // 2) - 1) {
        my $id = Pyexec::Cells::id_on_worker($ng, $w, "warm");
        my $warm = 0;
        for (1 .. 600) {
            my (undef, $body) = $ng->http('GET', '/status', undef,
                                          { 'X-Session-Id' => $id });
            if ($body =~ /"warm":true/) { $warm = 1; last }
            select(undef, undef, undef, 0.05);
        }
        return 0 unless $warm;
    }
    return 1;
}

sub render {
    my (%o) = @_;    # root, addr, port, mod, http_extra, main_extra, state, set,
                     # access_log
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
    # the front's access log only when a test reads it: access_log => 1
    $c =~ s/^(\s*)access_log .*;$/$1access_log off;/m unless $o{access_log};
    # directives of the shipped conf set to other values: set => {name => v}
    for my $k (sort keys %{ $o{set} // {} }) {
        $c =~ s/^(\s*\Q$k\E) .*;$/$1 $o{set}{$k};/m or die "no $k";
    }
    # a state folder shared by several instances (hosts on shared storage)
    $c =~ s/^(\s*pyexec_state_dir) .*;$/$1 $o{state};/m or die "no state_dir"
        if $o{state};
    $c =~ s/^http \{$/http {\n$o{http_extra}/m if $o{http_extra};
    $c =~ s/^http \{$/$o{main_extra}\nhttp {/m if $o{main_extra};

    return $c;
}

1;
