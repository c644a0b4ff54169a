# vim:set ft= ts=4 sw=4 et fdm=marker:
# Sessions: the /sessions API, state between calls, session_init, limits,
# expiry.  Memory given back by 10 000 sessions is t/031-session-memory.t
# (20 002 requests: a Test::More file, since Test::Nginx spends ~50 ms on
# each response's log checks).

use Test::Nginx::Socket;

# no repeat: sessions made by the first round (listings, execution_count,
# eviction order) would still be there in the second
repeat_each(1);

# 5 a response: status, body, one per no_error_log line (TEST 7: one more);
# 5 one-request blocks, then the pipelined ones
plan tests => repeat_each() * (5 * 5 + 1 + 5 * (6 + 6 + 6 + 5));

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $Config = <<'_EOC_';
    location = /execute { pyexec_execute; }
    location = /sessions { pyexec_sessions; }
    location /sessions/ { pyexec_sessions; }
_EOC_

run_tests();

__DATA__

=== TEST 1: POST /sessions makes a new empty session
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /sessions
--- response_body_like chomp
^\{"session_id":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"\}$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: GET /sessions/{unknown} is 404
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
GET /sessions/nope
--- error_code: 404
--- response_body chomp
{"detail":"Session not found"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: DELETE /sessions/{unknown} is 404
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
DELETE /sessions/nope
--- error_code: 404
--- response_body chomp
{"detail":"Session not found"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: PUT /sessions is 405
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
PUT /sessions
--- error_code: 405
--- response_body chomp
{"detail":"Method Not Allowed"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: state persists; info, listing, delete, and a fresh start after delete
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"a = 1\\ndef f():\\n    return a\\nimport json\", \"session_id\": \"s/1 é\"}",
"GET /sessions/s%2F1%20%C3%A9",
"GET /sessions",
"DELETE /sessions/s%2F1%20%C3%A9",
"GET /sessions/s%2F1%20%C3%A9",
"POST /execute\n{\"code\": \"a\", \"session_id\": \"s/1 é\"}",
]
--- response_body_like eval
[
qr/"session_id":"s\/1 é","success":true/,
qr/^\{"session_id":"s\/1 é","variables":\["a","f","json"\],"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","last_execution_id":"[0-9a-f]{16}\.s\/1 é"\}$/,
qr/^\{"sessions":\[\{"session_id":"s\/1 é","created_at":"[-0-9T:]+Z","last_used":"[-0-9T:]+Z","execution_count":1\}\]\}$/,
qr/^\{"message":"Session deleted"\}$/,
qr/^\{"detail":"Session not found"\}$/,
qr/"success":false,"error":"NameError: name 'a' is not defined".*"execution_count":1,/,
]
--- error_code eval
[200, 200, 200, 200, 404, 200]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: session_init runs once per new session and is never re-injected
--- main_config eval: $::MainConfig
--- http_config
    pyexec_session_init "import math\ninjected = 5";
--- config eval: $::Config
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"math.floor(2.5) + injected\", \"session_id\": \"i\"}",
"GET /sessions/i",
"POST /execute\n{\"code\": \"injected = 'mine'\\nmine = 1\", \"session_id\": \"i\"}",
"POST /execute\n{\"code\": \"injected\", \"session_id\": \"i\"}",
"GET /sessions/i",
"POST /execute\n{\"code\": \"injected\", \"session_id\": \"other\"}",
]
--- response_body_like eval
[
qr/^\{"result":7,/,
qr/"variables":\[\],/,
qr/"success":true/,
qr/^\{"result":"mine",/,
qr/"variables":\["injected","mine"\],/,
qr/^\{"result":5,/,
]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 7: the shipped nginx.conf's session_init_file predefines pd, np, plt (Agg) and sklearn
--- main_config eval: $::MainConfig
--- http_config eval
use Cwd qw(abs_path);
open my $f, '<', 'nginx.conf' or die "nginx.conf: $!";
my ($line) = grep { /^\s*pyexec_session_init(_file)?\s/ } <$f>;
my $repo = abs_path('.');
$line =~ s{/opt/pyexec/}{$repo/}g;
$line
--- config eval: $::Config
--- timeout: 30
--- request
POST /execute
{"code": "[pd.__name__, np.__name__, plt.__name__, sklearn.__name__, plt.get_backend()]"}
--- response_body_like chomp
^\{"result":\["pandas","numpy","matplotlib.pyplot","sklearn","agg"\],
--- no_error_log
[error]
[warn]
[alert]
ERROR: AddressSanitizer



=== TEST 8: pyexec_session_max evicts the least recently used idle session
--- main_config eval: $::MainConfig
--- http_config
    pyexec_session_max 2;
--- config eval: $::Config
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"1\", \"session_id\": \"A\"}",
"POST /execute\n{\"code\": \"1\", \"session_id\": \"B\"}",
"POST /execute\n{\"code\": \"1\", \"session_id\": \"A\"}",
"POST /execute\n{\"code\": \"1\", \"session_id\": \"C\"}",
"GET /sessions/B",
"GET /sessions/A",
]
--- response_body_like eval
[
qr/"success":true/,
qr/"success":true/,
qr/"success":true/,
qr/"success":true/,
qr/^\{"detail":"Session not found"\}$/,
qr/^\{"session_id":"A",/,
]
--- error_code eval
[200, 200, 200, 200, 404, 200]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 9: idle sessions expire on a timer
--- main_config eval: $::MainConfig
--- http_config
    pyexec_session_idle_timeout 1s;
--- config eval: $::Config
--- timeout: 10
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"v = 1\", \"session_id\": \"idle\"}",
"POST /execute\n{\"code\": \"import time\\ntime.sleep(2.5)\", \"session_id\": \"busy\"}",
"GET /sessions/idle",
"GET /sessions/busy",
"GET /sessions",
]
--- response_body_like eval
[
qr/"success":true/,
qr/"success":true/,
qr/^\{"detail":"Session not found"\}$/,
qr/^\{"session_id":"busy","variables":\["time"\]/,
qr/^\{"sessions":\[\{"session_id":"busy",[^\]]+\]\}$/,
]
--- error_code eval
[200, 200, 404, 200, 200]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
