# vim:set ft= ts=4 sw=4 et fdm=marker:
# POST /execute: the values the existing client relies on, notebook
# semantics, captured output, errors as data.

use Test::Nginx::Socket;

# no repeat: TEST 1, 24 and 25 check execution_count, which counts on
# in a session the second round reuses (the real Test::Nginx sends the
# repetition to the same nginx)
repeat_each(1);

# 5 a response: status, body, one per no_error_log line; TEST 24 and 25
# pipeline 7 more responses
plan tests => repeat_each() * (blocks() + 7) * 5;

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $Config = <<'_EOC_';
    location = /execute { pyexec_execute; }
_EOC_

run_tests();

__DATA__

=== TEST 1: 2 + 2 gives the JSON number 4
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "2 + 2", "session_id": "t1"}
--- response_body_like chomp
^\{"result":4,"session_id":"t1","success":true,"error":null,"stdout":"","stderr":"","value":"4","outputs":\[\],"error_name":null,"traceback":null,"execution_count":1,"duration_ms":\d+\.\d{3},"truncated":false,"termination":\{"reason":"ok","stage":null\},"usage":\{"wall_ms":\d+\.\d{3},"cpu_ms":\d+\.\d{3},"rss_delta_kib":-?\d+,"stdout_bytes":0,"stderr_bytes":0\},"execution_id":"[0-9a-f]{16}\.t1"\}$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: print('hello world') gives "hello world"
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "print('hello world')"}
--- response_body_like chomp
^\{"result":"hello world","session_id":"[^"]+","success":true,"error":null,"stdout":"hello world\\n",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: 'hello'.upper() gives "HELLO"
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "'hello'.upper()"}
--- response_body_like chomp
^\{"result":"HELLO",.*"success":true,"error":null,.*"value":"'HELLO'"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: a NameError is HTTP 200, success false, "not defined"
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "undefined_variable_xyz"}
--- response_body_like chomp
"success":false,"error":"NameError: name 'undefined_variable_xyz' is not defined",.*"error_name":"NameError","traceback":\["Traceback \(most recent call last\):","  File \\"<cell-[0-9a-f]{8}>\\", line 1, in <module>",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: try/except Exception works inside a cell
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "try:\n    1 / 0\nexcept Exception as e:\n    print('caught', type(e).__name__)"}
--- response_body_like chomp
^\{"result":"caught ZeroDivisionError",.*"success":true,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: a warning goes to stderr and does not fail the run
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "import warnings\nwarnings.warn('careful')\n'done'"}
--- response_body_like chomp
^\{"result":"done",.*"success":true,"error":null,"stdout":"","stderr":"<cell-[0-9a-f]+>:2: UserWarning: careful\\n
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 7: a DataFrame as the last expression gives its text
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- timeout: 20
--- request
POST /execute
{"code": "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})"}
--- response_body_like chomp
^\{"result":"   a  b\\n0  1  3\\n1  2  4",.*"success":true
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 8: printed output keeps its leading whitespace, trailing trimmed
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "print('  x\\n  y\\n')"}
--- response_body_like chomp
^\{"result":"  x\\n  y","session_id":"[^"]+","success":true,"error":null,"stdout":"  x\\n  y\\n\\n",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 9: notebook semantics: the last expression after statements
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "x = 20\ny = x + 1\ny * 2"}
--- response_body_like chomp
^\{"result":42,.*"value":"42"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 10: printed output wins over the value, the value is still given
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "print('printed')\n5"}
--- response_body_like chomp
^\{"result":"printed",.*"value":"5",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 11: the code is compiled once and never run twice
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "calls = [0]\ndef f():\n    calls[0] += 1\n    return calls[0]\nf()"}
--- response_body_like chomp
^\{"result":1,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 12: output printed before an exception is kept, traceback is cell-relative
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "print('before')\n\n1 / 0"}
--- response_body_like chomp
^\{"result":"before",.*"success":false,"error":"ZeroDivisionError: division by zero","stdout":"before\\n",.*line 3, in <module>
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 13: stdout and stderr are captured separately
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "import sys\nprint('out')\nprint('err', file=sys.stderr)"}
--- response_body_like chomp
"success":true,"error":null,"stdout":"out\\n","stderr":"err\\n",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 14: a value that is not JSON goes out as its repr()
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "{1: 'a', 2: {3}}"}
--- response_body_like chomp
^\{"result":"\{1: 'a', 2: \{3\}\}",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 15: nested JSON values, floats in shortest round-trip form
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "{'a': [1, 0.1 + 0.2, None, True, 'x'], 'b': (1e300, -0.0, 10**30)}"}
--- response_body_like chomp
^\{"result":\{"a":\[1,0\.30000000000000004,null,true,"x"\],"b":\[1e\+300,-0\.0,1000000000000000000000000000000\]\},
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 16: NaN and infinity never break the JSON
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "[float('nan'), float('inf')]"}
--- response_body_like chomp
^\{"result":"\[nan, inf\]",.*"success":true
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 17: a lone surrogate never breaks the JSON
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "print('a\\ud800b')\n'\\udfff'"}
--- response_body_like chomp
^\{"result":"a\\\\ud800b",.*"stdout":"a\\\\ud800b\\n","stderr":"","value":"'\\\\udfff'",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 18: a syntax error is an error result
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "def f(:\n  pass"}
--- response_body_like chomp
"success":false,"error":"SyntaxError: [^"]+",.*"error_name":"SyntaxError"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 19: full builtins, imports of C extensions
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "import _json, _decimal, _ctypes, _sqlite3, numpy\n[callable(open), callable(__import__), callable(compile), len(dir(__builtins__)) > 150]"}
--- response_body_like chomp
^\{"result":\[true,true,true,true\],
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 20: no session_id gives a new UUID4
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "1", "session_id": null}
--- response_body_like chomp
"session_id":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 21: an empty session_id gives a new UUID4 too
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "1", "session_id": ""}
--- response_body_like chomp
"session_id":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 22: the session id is echoed byte for byte
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "1", "session_id": "s\u00e9/ß \"q\" \ud83d\udca1 ../x"}
--- response_body_like chomp
"session_id":"sé/ß \\"q\\" 💡 \.\./x"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 23: the output cap truncates and says so; usage counts every byte written
--- main_config eval: $::MainConfig
--- http_config
    pyexec_output_max 1k;
--- config eval: $::Config
--- request
POST /execute
{"code": "import sys\nfor i in range(100000):\n    print('x' * 50)\nprint('e' * 5000, file=sys.stderr)"}
--- response_body_like chomp
"stdout":"(x{50}\\n){20}x{4}","stderr":"e{1024}",.*"truncated":true,"termination":\{"reason":"ok","stage":null\},"usage":\{[^}]*"stdout_bytes":5100000,"stderr_bytes":5001\},"execution_id":"[0-9a-f]{16}\.[^"]+"\}$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 24: exit(), quit(), sys.exit(), SystemExit, KeyboardInterrupt, input(): error results, the session lives on
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"kept = 7\\nexit()\", \"session_id\": \"ex\"}",
"POST /execute\n{\"code\": \"quit(3)\", \"session_id\": \"ex\"}",
"POST /execute\n{\"code\": \"import sys\\nsys.exit(2)\", \"session_id\": \"ex\"}",
"POST /execute\n{\"code\": \"raise KeyboardInterrupt\", \"session_id\": \"ex\"}",
"POST /execute\n{\"code\": \"input('name? ')\", \"session_id\": \"ex\"}",
"POST /execute\n{\"code\": \"kept * 6\", \"session_id\": \"ex\"}",
]
--- response_body_like eval
[
qr/"success":false,"error":"SystemExit: None"/,
qr/"success":false,"error":"SystemExit: 3"/,
qr/"success":false,"error":"SystemExit: 2"/,
qr/"success":false,"error":"KeyboardInterrupt",.*"error_name":"KeyboardInterrupt"/,
qr/"success":false,"error":"EOFError: input\(\) is not available: pyexec has no stdin"/,
qr/^\{"result":42,.*"success":true,.*"execution_count":6,/,
]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 25: sessions never see each other's names; counts are per session
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- pipelined_requests eval
[
"POST /execute\n{\"code\": \"secret = 'a'\", \"session_id\": \"A\"}",
"POST /execute\n{\"code\": \"secret\", \"session_id\": \"B\"}",
"POST /execute\n{\"code\": \"secret\", \"session_id\": \"A\"}",
]
--- response_body_like eval
[
qr/"session_id":"A","success":true,.*"execution_count":1,/,
qr/"session_id":"B","success":false,"error":"NameError: name 'secret' is not defined".*"execution_count":1,/,
qr/^\{"result":"a","session_id":"A","success":true,.*"execution_count":2,/,
]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
