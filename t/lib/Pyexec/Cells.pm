package Pyexec::Cells;

# Cells against the shipped nginx.conf (front + two workers), for the
# plain Test::More files that compare pyexec with plain Python: run code in
# a session that the front pins to a chosen worker, decode the reply, run
# the same code with /usr/bin/python3.11 as a script, and time a
# neighbour session on the same worker.

use strict;
use warnings;

use JSON::PP;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Cwd qw(abs_path);
use Pyexec::Instance;
use Pyexec::Shipped;

our $PYTHON = '/usr/bin/python3.11';

my $json = JSON::PP->new->utf8->canonical;

# Pyexec::Cells->new(name => 'parallel', port_offset => 11,
#                    [allow_alerts => [qr/.../]], [http_extra => '...'],
#                    [main_extra => '...'])
sub new {
    my ($class, %o) = @_;
    $ENV{TEST_NGINX_LOAD_MODULES} or die "TEST_NGINX_LOAD_MODULES not set\n";
    my $port = ($ENV{TEST_NGINX_PORT} || 1984) + $o{port_offset};
    my $root = abs_path('.') . "/t/servroot-$o{name}";
    my $ng = Pyexec::Shipped::instance(root => $root, port => $port,
                                       allow_alerts => $o{allow_alerts},
                                       http_extra => $o{http_extra},
                                       main_extra => $o{main_extra},
                                       set => $o{set},
                                       access_log => $o{access_log});
    return bless { ng => $ng, root => $root }, $class;
}

sub ng { $_[0]{ng} }

sub start {
    my ($self) = @_;
    return $self->{ng}->start();
}

# the error log since both workers answered
sub log_after_start { $_[0]{ng}->log_since_start() }

sub stop {
    my ($self) = @_;
    $self->{ng}->stop() if $self->{ng};
}

sub worker_of {
    my ($h) = @_;
    return ($h->{'x-pyexec-worker'} // '') =~ m{^(\d+)/(\d+)$} ? ($1, $2) : ();
}

# a fresh client-named session id that the front of Pyexec::Instance $ng
# routes to worker $w (also for files that use an instance directly)
my $probe = 0;
sub id_on_worker {
    my ($ng, $w, $tag) = @_;
    my $deadline = time + 60;      # a worker warming up answers after it
    while (time < $deadline) {
        my $id = "$tag-" . $probe++;
        my (undef, undef, $h) = $ng->http('GET', "/sessions/$id");
        my ($got) = worker_of($h);
        return $id if defined $got && $got == $w;
        sleep 0.05 unless defined $got;     # the front's 503: a restart
    }
    die "worker $w never answered\n";
}

sub id_on {
    my ($self, $w, $tag) = @_;
    return id_on_worker($self->{ng}, $w, $tag);
}

# run a cell: (decoded reply or undef, status, seconds, worker pid);
# $o{timeout} is the cell's time limit, the wait for the answer is longer
sub cell {
    my ($self, $sid, $code, %o) = @_;
    my %req = (code => $code, session_id => $sid);
    $req{timeout} = $o{timeout} if $o{timeout};
    my $t0 = time;
    my $s = $self->{ng}->send_req('POST', '/execute', $json->encode(\%req),
                                  { 'Content-Type' => 'application/json' })
        or return (undef, 0, 0, 0);
    my ($st, $body, $h) =
        Pyexec::Instance::read_resp($s, ($o{timeout} // 60) + 15);
    my $secs = time - $t0;
    my (undef, $pid) = worker_of($h);
    my $reply = eval { $json->decode($body) };
    return ($reply, $st, $secs, $pid // 0);
}

# the reply's stdout, or a line that says why there is none
sub stdout_of {
    my ($self, $sid, $code, %o) = @_;
    my ($r, $st) = $self->cell($sid, $code, %o);
    return "<status $st>" unless $r;
    return $r->{stdout} . ($r->{success} ? '' : "<error $r->{error}>");
}

# what /usr/bin/python3.11 prints for the same code run as a script
sub plain {
    my ($code) = @_;
    my $dir = tempdir(CLEANUP => 1);
    open my $out, '>', "$dir/cell.py" or die $!;
    print $out $code;
    close $out;
    local $ENV{LD_PRELOAD};
    delete $ENV{LD_PRELOAD};
    return scalar `cd $dir && $PYTHON cell.py 2>&1`;
}

# seconds until a trivial cell of another session on worker $w answers
# (undef: it did not answer right)
sub neighbour {
    my ($self, $w) = @_;
    my $sid = $self->id_on($w, 'neighbour');
    my ($r, $st, $secs) = $self->cell($sid, "6 * 7", timeout => 5);
    return undef unless $r && $st == 200 && defined $r->{result}
                        && $r->{result} eq '42';
    return $secs;
}

1;
