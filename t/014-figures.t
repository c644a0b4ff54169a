# vim:set ft= ts=4 sw=4 et fdm=marker:
# Figures: matplotlib draws off-screen (Agg); the figures a cell leaves
# open come back as PNGs in "outputs" and are closed; with one, "result" is
# {"text/plain", "image/png"}, the shape the existing client shows.

use Test::Nginx::Socket;

repeat_each(2);

# 5 a response: status, body, one per no_error_log line; TEST 2
# pipelines one more
plan tests => repeat_each() * 5 * (blocks() + 1);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $Config = <<'_EOC_';
    location = /execute { pyexec_execute; }
_EOC_

run_tests();

__DATA__

=== TEST 1: plt.show() neither blocks nor warns; the figure is the result
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "import matplotlib.pyplot as plt\nplt.hist([1, 2, 2, 3, 3, 3])\nplt.show()\nprint('drawn')"}
--- response_body_like chomp
^\{"result":\{"text/plain":"drawn","image/png":"iVBORw0KGgo[A-Za-z0-9+/=]+"\},"session_id":"[^"]+","success":true,"error":null,"stdout":"drawn\\n","stderr":"","value":null,"outputs":\[\{"mime":"image/png","data":"iVBORw0KGgo[A-Za-z0-9+/=]+"\}\],
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: two figures, both in outputs, the first is the result; then closed
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- pipelined_requests eval
['POST /execute
{"code": "import matplotlib.pyplot as plt\nplt.figure(); plt.plot([1, 2])\nplt.figure(); plt.plot([2, 1])\n41 + 1", "session_id": "f"}', 'POST /execute
{"code": "plt.get_fignums()", "session_id": "f"}']
--- response_body_like eval
['^\{"result":\{"text/plain":"42","image/png":"(iVBORw0KGgo[^"]+)"\},.*"outputs":\[\{"mime":"image/png","data":"\1"\},\{"mime":"image/png","data":"iVBORw0KGgo[^"]+"\}\],', '^\{"result":\[\],.*"outputs":\[\],']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: a figure made before an exception is still returned
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n1 / 0"}
--- response_body_like chomp
^\{"result":\{"text/plain":"","image/png":"iVBORw0KGgo[^"]+"\},"session_id":"[^"]+","success":false,"error":"ZeroDivisionError: division by zero",.*"outputs":\[\{"mime":"image/png",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: no figure, no change: result as before, outputs empty
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "import matplotlib\nmatplotlib.get_backend()"}
--- response_body_like chomp
^\{"result":"agg",.*"outputs":\[\],
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: a DataFrame plot (pandas on matplotlib)
--- timeout: 30
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "import pandas as pd\nax = pd.DataFrame({'x': [1, 2, 3]}).plot()\nlen(ax.lines)"}
--- response_body_like chomp
^\{"result":\{"text/plain":"1","image/png":"iVBORw0KGgo[^"]+"\},.*"success":true,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
