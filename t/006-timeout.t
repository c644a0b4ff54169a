# vim:set ft= ts=4 sw=4 et fdm=marker:
# Time limits stop loops, sleeps, blocking I/O and regexes; the event loop
# keeps answering while a cell runs; per-session queue bound.

use Test::Nginx::Socket;

# no repeat: TEST 11 counts the worker's executions and timeouts from
# zero (and the timing blocks are slow enough once)
repeat_each(1);

# 5 a response: status, body, one per no_error_log line; TEST 1, 10 and
# 11 pipeline one more each; TEST 4 checks one error_log line
plan tests => repeat_each() * (5 * (blocks() + 3) + 1);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $HttpConfig = <<'_EOC_';
    pyexec_timeout 1s;
    pyexec_timeout_max 2s;
_EOC_

our $Config = <<'_EOC_';
    location = /execute { pyexec_execute; }
    location = /health { pyexec_health; }
    location = /status { pyexec_status; }
_EOC_

run_tests();

__DATA__

=== TEST 1: time.sleep is stopped at the limit; output so far kept; the session lives on
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"state = 'before'\\nprint('started')\\nimport time\\ntime.sleep(30)\\nstate = 'after'\", \"session_id\": \"z\"}",
"POST /execute\n{\"code\": \"state\", \"session_id\": \"z\"}",
]
--- response_body_like eval
[
qr/^\{"result":"started","session_id":"z","success":false,"error":"TimeoutError: execution exceeded the time limit of 1\.000 s","stdout":"started\\n",.*"error_name":"TimeoutError",.*"duration_ms":(99\d|1\d\d\d)\.\d+,/,
qr/^\{"result":"before",.*"success":true/,
]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: a pure-Python loop is stopped; the per-request timeout field
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- request
POST /execute
{"code": "n = 0\nwhile True:\n    n += 1", "timeout": 0.3}
--- response_body_like chomp
"success":false,"error":"TimeoutError: execution exceeded the time limit of 0\.300 s",.*"duration_ms":(29\d|3\d\d|4\d\d)\.\d+,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: the timeout field is capped by pyexec_timeout_max
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- request
POST /execute
{"code": "import time\ntime.sleep(60)", "timeout": 3600}
--- response_body_like chomp
"error":"TimeoutError: execution exceeded the time limit of 2\.000 s",.*"duration_ms":(19[89]\d|2\d\d\d)\.\d+,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: code that catches the exception is stopped by the ladder's trace stage
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- request
POST /execute
{"code": "caught = 0\nfor i in range(3):\n    try:\n        while True:\n            pass\n    except BaseException:\n        caught += 1\n        print('caught', caught)\nwhile True:\n    pass", "timeout": 0.5}
--- response_body_like chomp
^\{"result":"caught 1","session_id":"[^"]+","success":false,"error":"TimeoutError:.*"termination":\{"reason":"timeout","stage":"trace"\}
--- error_log
raising at every line
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: a blocking socket read is stopped
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- request
POST /execute
{"code": "import socket\na, b = socket.socketpair()\na.recv(1)", "timeout": 0.5}
--- response_body_like chomp
"success":false,"error":"TimeoutError: execution exceeded the time limit of 0\.500 s"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: select() is stopped
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- request
POST /execute
{"code": "import select\nselect.select([], [], [], 100)", "timeout": 0.5}
--- response_body_like chomp
"success":false,"error":"TimeoutError: execution exceeded the time limit of 0\.500 s"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 7: a runaway regex is stopped
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- request
POST /execute
{"code": "import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')", "timeout": 0.5}
--- response_body_like chomp
"success":false,"error":"TimeoutError: execution exceeded the time limit of 0\.500 s"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 8: /health answers in milliseconds while a cell runs on the same worker
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- request eval
"POST /execute\n{\"code\": \"import threading, time, urllib.request\\nstop = False\\ndef spin():\\n    x = 0\\n    while not stop:\\n        x += 1\\nt = threading.Thread(target=spin)\\nt.start()\\nworst = 0\\nfor i in range(20):\\n    t0 = time.perf_counter()\\n    body = urllib.request.urlopen('http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/health').read()\\n    worst = max(worst, time.perf_counter() - t0)\\nstop = True\\nt.join()\\nprint(body.decode(), worst < 0.1)\"}"
--- response_body_like chomp
^\{"result":"\{\\"status\\":\\"healthy\\"\} True",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 9: a full session queue answers 429
--- main_config eval: $::MainConfig
--- http_config
    pyexec_session_queue 1;
--- config eval: $::Config
--- timeout: 10
--- request eval
"POST /execute\n{\"code\": \"import json, urllib.request, urllib.error\\nbody = json.dumps({'code': '1', 'session_id': 'q'}).encode()\\nreq = urllib.request.Request('http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/execute', data=body)\\ntry:\\n    urllib.request.urlopen(req, timeout=5)\\nexcept urllib.error.HTTPError as e:\\n    print(e.code, e.read().decode())\", \"session_id\": \"q\"}"
--- response_body_like chomp
^\{"result":"429 \{\\"detail\\":\\"too many requests queued for this session\\"\}",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 10: another session on the same worker is served after, in order, unmixed
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"print('one')\\nimport time\\ntime.sleep(0.3)\\nprint('two')\", \"session_id\": \"p\"}",
"POST /execute\n{\"code\": \"print('three')\", \"session_id\": \"r\"}",
]
--- response_body_like eval
[
qr/^\{"result":"one\\ntwo","session_id":"p",.*"stdout":"one\\ntwo\\n","stderr":"",/,
qr/^\{"result":"three","session_id":"r",.*"stdout":"three\\n","stderr":"",/,
]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 11: /status counts timeouts
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- timeout: 10
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"while True:\\n    pass\", \"timeout\": 0.2}",
"GET /status",
]
--- response_body_like eval
[
qr/"error_name":"TimeoutError"/,
qr/"executions":1,"timeouts":1,/,
]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
