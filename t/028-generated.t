# vim:set ft= ts=4 sw=4 et fdm=marker:
# Generated files in the repo are what their generators make now: the
# bootstrap header is the embedded copy of src/ngx_http_pyexec_bootstrap.py
# that the module runs, so a .py edited without `make` would be tested
# against old code.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
is(system('tools/py2c.sh', 'src/ngx_http_pyexec_bootstrap.py', "$dir/b.h",
          'ngx_http_pyexec_bootstrap'), 0, 'tools/py2c.sh runs');
my $read = sub { open my $in, '<', $_[0] or return ''; local $/; <$in> };
ok($read->("$dir/b.h") eq $read->('src/ngx_http_pyexec_bootstrap.h'),
   'src/ngx_http_pyexec_bootstrap.h is what tools/py2c.sh makes of the .py');

done_testing();
