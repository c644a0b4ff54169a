# vim:set ft= ts=4 sw=4 et fdm=marker:
# The source layout keeps its layers (STYLE.md): each src/*.c has its own
# header declaring only what that .c defines; <Python.h> is included by the
# interpreter file alone; the reply layer (reply.c) calls nothing else of
# the module; content handlers come from cmd->post, not a dispatch switch;
# no file outside json.c and reply.c calls yajl_gen_* directly (every other
# write goes through the checked writer).

use strict;
use warnings;

use Test::More;

sub slurp {
    my ($f) = @_;
    open my $in, '<', $f or die "$f: $!";
    local $/;
    return <$in>;
}

# non-static functions a .c defines: "type\nname(" at the start of a line
sub defined_in {
    my ($text) = @_;
    my %def;
    while ($text =~ /^(?!static)[a-z][\w \*]*\n(ngx_http_pyexec_\w+)\(/mg) {
        $def{$1} = 1;
    }
    return \%def;
}

my @c = sort glob "src/ngx_http_pyexec_*.c";
ok(@c > 10, "found the sources");

my %defs;
for my $c (@c) {
    my $text = slurp($c);
    $defs{$c} = defined_in($text);
}

for my $c (@c) {
    (my $h = $c) =~ s/\.c$/.h/;
    ok(-f $h, "$c has its own header");
    next unless -f $h;

    my $text = slurp($h);
    my @decl = $text =~ /^(?:[\w ]+[\s\*]+)?(ngx_http_pyexec_\w+)\(/mg;
    my @foreign = grep { !$defs{$c}{$_} } @decl;
    is("@foreign", '', "$h declares only what $c defines");

    (my $base = $h) =~ s{^src/}{};
    like(slurp($c), qr/^#include "\Q$base\E"/m, "$c includes $base");
}

my @python = grep { slurp($_) =~ /#include <Python\.h>/ }
             (glob("src/*.[ch]"), 'ngx_http_pyexec_module.c');
is("@python", 'src/ngx_http_pyexec_interp.c',
   "<Python.h> is included by the interpreter file alone");

my $reply = slurp('src/ngx_http_pyexec_reply.c');
my %own = %{ $defs{'src/ngx_http_pyexec_reply.c'} };
my %called = map { $_ => 1 } $reply =~ /\b(ngx_http_pyexec_\w+)\(/g;
my @out = grep { !$own{$_} && !/^ngx_http_pyexec_(module|proc)$/ } sort keys %called;
is("@out", '', "reply.c calls nothing else of the module");

my $module = slurp('ngx_http_pyexec_module.c');
unlike($module . slurp('src/ngx_http_pyexec_handler.c'),
       qr/switch \(plcf->/, "no dispatch switch on the location's kind");
like($module, qr/clcf->handler = plcf->handler;/,
     "the location's handler is the directive's cmd->post");

my @direct = grep {
    !/_(json|reply)\.c$/ && slurp($_) =~ /\byajl_gen_(?!status|alloc)\w+\(/
} (@c, 'ngx_http_pyexec_module.c');
is("@direct", '', "only json.c and reply.c call yajl_gen_* themselves");

done_testing();
