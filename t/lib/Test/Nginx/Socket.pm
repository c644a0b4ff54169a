package Test::Nginx::Socket;

# pyexec's own, small stand-in for openresty's Test::Nginx::Socket, built
# only on Debian's libtest-base-perl.  It runs the subset of the block
# format that t/*.t use; the same files run unchanged under the real
# Test::Nginx::Socket (put its lib/ first on @INC).  See t/README.md.

use Test::Base -Base;
use Test::Nginx::Runner ();

our @EXPORT = qw(
    run_tests repeat_each master_on master_off workers log_level
    no_shuffle no_long_string no_root_location env_to_nginx
    server_port server_root html_dir
);

sub repeat_each (@) { Test::Nginx::Runner::repeat_each(@_) }
sub master_on () { Test::Nginx::Runner::set(master => 'on') }
sub master_off () { Test::Nginx::Runner::set(master => 'off') }
sub workers ($) { Test::Nginx::Runner::set(workers => $_[0]) }
sub log_level ($) { Test::Nginx::Runner::set(log_level => $_[0]) }
sub no_shuffle () { }
sub no_long_string () { }
sub no_root_location () { Test::Nginx::Runner::set(no_root_location => 1) }
sub env_to_nginx (@) { Test::Nginx::Runner::env_to_nginx(@_) }
sub server_port () { Test::Nginx::Runner::server_port() }
sub server_root () { Test::Nginx::Runner::server_root() }
sub html_dir () { Test::Nginx::Runner::server_root() . '/html' }

sub run_tests () {
    Test::Nginx::Runner::run_blocks([ blocks() ]);
}

1;
