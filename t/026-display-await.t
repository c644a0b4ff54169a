# vim:set ft= ts=4 sw=4 et fdm=marker:
# display() and IPython's display objects as output bundles, top-level
# await, the last value's text under the output cap, a NUL in code
# (API.md 2.6).  Texts are compared with what /usr/bin/python3.11 makes
# of the same objects.
#
# Plain Test::More against the shipped nginx.conf.

use strict;
use warnings;

use Test::More;
use MIME::Base64 qw(decode_base64);
use JSON::PP;
use File::Temp ();
use lib 't/lib';
use Pyexec::Cells;

my $c = Pyexec::Cells->new(name => 'display', port_offset => 13);
END { $c->stop() if $c }
ok($c->start(), 'the shipped nginx.conf starts, both workers answer')
    or BAIL_OUT($c->ng->log_text());

my $sid = $c->id_on(0, 'disp');
sub cell { my ($r) = $c->cell($sid, @_); return $r }

# {{{ display()

my $df = "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\n";
my $r = cell($df . "display(df)\n'last'");
my $o = $r && $r->{outputs} && $r->{outputs}[0];
is($r && $r->{result}, 'last', 'display() leaves the seed contract\'s result alone');
is($o && $o->{mime}, 'text/html', 'display(df): the richest type is text/html');
is($o && $o->{bundle}{'text/plain'}, Pyexec::Cells::plain($df . "print(repr(df), end='')"),
   'display(df): text/plain is repr(df)');
is($o && $o->{data}, Pyexec::Cells::plain($df . "print(df._repr_html_(), end='')"),
   'display(df): text/html is df._repr_html_()');

$r = cell("from IPython.display import display as d, HTML, Markdown, JSON, Image\n"
          . "import base64\n"
          . "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')\n"
          . "d(HTML('<b>hi</b>'), Markdown('# T'))\nd(Image(data=png))\nd(JSON({'k': [1]}))\n"
          . "d({'text/plain': 'raw', 'text/html': '<i>raw</i>'}, raw=True)");
my @o = $r ? @{ $r->{outputs} } : ();
is_deeply([map { $_->{mime} } @o],
          ['text/html', 'text/markdown', 'image/png', 'application/json', 'text/html'],
          'IPython.display objects: one bundle each, richest type first');
is($o[0] && $o[0]{data}, '<b>hi</b>', 'HTML');
like($o[0] && $o[0]{bundle}{'text/plain'}, qr/^<IPython\.core\.display\.HTML object>$/,
     'HTML: text/plain as IPython gives it');
is($o[2] && substr(decode_base64($o[2]{data}), 0, 8), "\x89PNG\r\n\x1a\n", 'Image: a PNG');
is($o[3] && $o[3]{data}, '{"k": [1]}', 'JSON');
is($o[4] && $o[4]{bundle}{'text/plain'}, 'raw', 'raw=True bundles');

$r = cell("import matplotlib.pyplot as plt\nfrom PIL import Image as PI\n"
          . "fig, ax = plt.subplots()\nax.plot([1, 3])\ndisplay(fig)\nplt.close(fig)\n"
          . "display(PI.new('RGB', (3, 2)), 7)");
@o = $r ? @{ $r->{outputs} } : ();
is(scalar(@o), 3, 'a figure, a PIL image and an int: three bundles (the closed figure once)');
ok(@o == 3 && $o[0]{mime} eq 'image/png' && $o[1]{mime} eq 'image/png'
   && substr(decode_base64($o[0]{data}), 0, 4) eq "\x89PNG", 'figure and PIL image as PNG');
is($o[2] && $o[2]{data}, '7', 'display(7) is text/plain "7"');
like($o[0] && $o[0]{bundle}{'text/plain'}, qr/^<Figure size 640x480 with 1 Axes>$/,
     'the figure\'s text/plain');

$r = cell("class Bad:\n    def _repr_html_(self):\n        raise ValueError('no html')\n"
          . "    def __repr__(self):\n        return 'Bad()'\ndisplay(Bad())");
ok($r && $r->{success} && $r->{outputs}[0]{mime} eq 'text/plain'
   && $r->{stderr} =~ /_repr_html_\(\) failed: ValueError: no html/,
   'a failing _repr_html_: said on stderr, text/plain still shown');

$r = cell("import threading\nt = threading.Thread(target=display, args=('from a thread',))\nt.start()\nt.join()");
is($r && $r->{outputs}[0]{data}, "'from a thread'", 'display() from a thread the cell started');

# the same display() calls in a real Jupyter kernel (Debian's ipykernel)
my $cells = "import pandas as pd\nfrom IPython.display import HTML, Markdown, JSON\n"
          . "df = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\nprint('out')\n"
          . "display(df)\ndisplay(HTML('<b>hi</b>'), Markdown('# T'))\n"
          . "display(7, 'text', [1, 2], {'k': None})\ndisplay(JSON({'k': [1]}))";
my $jupyter = do {
    local $ENV{LD_PRELOAD};
    delete $ENV{LD_PRELOAD};
    local $ENV{JUPYTER_RUNTIME_DIR} = File::Temp::tempdir(CLEANUP => 1);
    open my $k, '|-', "t/lib/jupyter_run.py > $ENV{JUPYTER_RUNTIME_DIR}/out.json 2>/dev/null"
        or die $!;
    print $k $cells;
    close $k;
    open my $in, '<', "$ENV{JUPYTER_RUNTIME_DIR}/out.json" or die $!;
    local $/;
    JSON::PP->new->decode(<$in> // 'null');
};
ok($jupyter && @{ $jupyter->{outputs} } == 8, 'a Jupyter kernel ran the cell: eight display_data bundles');
$r = cell($cells);
my @ours = map {
    my %b = %{ $_->{bundle} };
    $b{'application/json'} = JSON::PP->new->decode($b{'application/json'})
        if exists $b{'application/json'};
    \%b;
} @{ $r ? $r->{outputs} : [] };
is_deeply(\@ours, $jupyter && $jupyter->{outputs},
          'display() bundles: the same types and data as the Jupyter kernel\'s display_data');
is($r && $r->{stdout}, $jupyter && $jupyter->{stdout}, '... and the same stdout');

# }}}
# {{{ top-level await

my $await = "import asyncio\nasync def twice(x):\n    await asyncio.sleep(0.01)\n    return 2 * x\n";
my $body = "r = await asyncio.gather(twice(1), twice(2))\nprint(r, await twice(5))\n";
my ($got) = $c->stdout_of($sid, $await . $body);
my $plain = $body; $plain =~ s/^/    /mg;
is($got, Pyexec::Cells::plain($await . "async def main():\n$plain" . "asyncio.run(main())\n"),
   'top-level await: as asyncio.run() of the same body prints');
$r = cell("await twice(21)");
is($r && $r->{result}, 42, 'an awaited last expression is the value');
$r = cell("asyncio.run(twice(4))");
is($r && $r->{result}, 8, 'asyncio.run() still works in a cell');
($r) = $c->cell($sid, "await asyncio.sleep(100)", timeout => 1);
is($r && $r->{error_name}, 'TimeoutError', 'an await past the time limit: TimeoutError');
$r = cell("await twice(1)");
is($r && $r->{result}, 2, 'the session awaits again after that');

# }}}
# {{{ the last value is capped like stdout; a NUL in code

$r = cell("'x' * (3 * 2**20)");
ok($r && $r->{truncated} && length($r->{value}) == 2**20 && length($r->{result}) == 2**20,
   'a 3 MiB repr: value and result capped at pyexec_output_max, truncated');
$r = cell("list(range(10**6))");
ok($r && $r->{truncated} && !ref($r->{result}) && length($r->{result}) == 2**20,
   'a list whose JSON is over the cap: its capped repr instead');
$r = cell("[1, 2]");
ok($r && !$r->{truncated} && ref($r->{result}) eq 'ARRAY', 'a small list is still JSON');

my $nul = "print('a')\0print('b')";
$r = cell($nul);
my $want = Pyexec::Cells::plain("try:\n    compile('print(1)\\0', '<cell>', 'exec')\n"
                                . "except BaseException as e:\n    print(type(e).__name__ + ': ' + str(e), end='')\n");
ok($r && !$r->{success} && $r->{stdout} eq '', 'a NUL in code: 200, success false, nothing ran');
is($r && $r->{error}, $want, 'a NUL in code: the error compile() gives');

# }}}

unlike($c->log_after_start(), qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');
$c->stop();
done_testing();
