# vim:set ft= ts=4 sw=4 et fdm=marker:
# The routing pieces one by one: $pyexec_session_id (body, then
# X-Session-Id, then /sessions/{id}, else minted), $pyexec_session_new,
# $pyexec_worker, the X-Session-Id a worker reads, GET /sessions gathered
# from several locations, and a pyexec_worker_socket that names nothing.

use Test::Nginx::Socket;

repeat_each(2);

# 5 a response (status, body, one per no_error_log line; TEST 17 dies:
# its error_log instead); 7 more pipelined responses; TEST 14 does not
# check [error] in its two responses (it logs one on purpose)
plan tests => repeat_each() * (5 * (blocks() + 7) - 2);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

# a front that shows what it would send a worker
our $Front = <<"_EOC_";
    location = /echo {
        return 200 "\$http_x_session_id|\$http_x_pyexec_new_session\\n";
    }
    location ~ ^/(execute|sessions|upload) {
        rewrite ^ /echo break;
        proxy_set_header X-Session-Id \$pyexec_session_id;
        proxy_set_header X-Pyexec-New-Session \$pyexec_session_new;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: the body's session_id is routed on
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
Content-Type: application/json
--- request
POST /execute
{"code": "1", "session_id": "from-body"}
--- response_body
from-body|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: the body wins over the header
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
Content-Type: application/json
X-Session-Id: from-header
--- request
POST /execute
{"session_id": "from-body", "code": "1"}
--- response_body
from-body|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: no id in the body: the X-Session-Id header
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
Content-Type: application/json
X-Session-Id: from-header
--- request
POST /execute
{"code": "1", "session_id": null}
--- response_body
from-header|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: an empty session_id counts as none
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
X-Session-Id: from-header
--- request
POST /execute
{"code": "1", "session_id": ""}
--- response_body
from-header|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: the {id} of /sessions/{id}, unescaped as the worker reads it
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- request
GET /sessions/a%2Fb%20c?x=1
--- response_body
a/b c|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: nothing to route on: the front mints an id and says it is new
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
Content-Type: application/json
--- request
POST /execute
{"code": "1"}
--- response_body_like chomp
^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\|1$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 7: a body that is not JSON is not parsed: minted
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
Content-Type: multipart/form-data; boundary=x
--- request
POST /upload
{"session_id": "not-json-really"}
--- response_body_like chomp
^[0-9a-f-]{36}\|1$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 8: invalid JSON is routed by the other rules (the worker says 422)
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
X-Session-Id: from-header
--- request
POST /execute
{"session_id": "cut
--- response_body
from-header|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 9: a front behind a front keeps the "new" mark
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
X-Session-Id: minted-upstream
X-Pyexec-New-Session: 1
--- request
POST /execute
{"code": "1"}
--- response_body
minted-upstream|1
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 10: a worker runs the session named by X-Session-Id
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute; }
--- more_headers
X-Session-Id: hdr-session
--- pipelined_requests eval
['POST /execute
{"code": "v = 7"}', 'POST /execute
{"code": "v * 6", "session_id": "hdr-session"}']
--- response_body_like eval
['"session_id":"hdr-session"', '^\{"result":42,"session_id":"hdr-session"']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 11: an X-Session-Id over 256 bytes is a 422 on the worker
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute; }
--- more_headers eval
"X-Session-Id: " . ("s" x 257)
--- request
POST /execute
{"code": "1"}
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["header","x-session-id"],"msg":"ensure this value has at most 256 characters","type":"value_error.any_str.max_length"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 12: POST /sessions creates the session X-Session-Id names
--- main_config eval: $::MainConfig
--- config
    location = /sessions { pyexec_sessions; }
    location /sessions/ { pyexec_sessions; }
--- more_headers
X-Session-Id: chosen
--- pipelined_requests eval
["POST /sessions", "GET /sessions/chosen"]
--- response_body_like eval
['^\{"session_id":"chosen"\}$', '^\{"session_id":"chosen","variables":\[\],']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 13: $pyexec_worker is the worker number and pid
--- main_config eval: $::MainConfig
--- config
    location = /w { return 200 "$pyexec_worker\n"; }
--- request
GET /w
--- response_body_like chomp
^0/\d+$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 14: GET /sessions gathered; a part that fails is left out and said
the left-out part is logged as an [error] (TEST 15 checks the line)
--- main_config eval: $::MainConfig
--- config
    location = /sessions { pyexec_sessions; }
    location = /_a { pyexec_sessions; }
    location = /_broken { return 500; }
    location = /all { pyexec_sessions_gather /_a /_broken /_a; }
--- more_headers
X-Session-Id: gathered
--- pipelined_requests eval
["POST /sessions", "GET /all"]
--- response_body_like eval
['"gathered"', '^\{"sessions":\[\{"session_id":"gathered",[^\]]*\},\{"session_id":"gathered",[^\]]*\}\],"partial":true\}$']
--- no_error_log
[alert]
ERROR: AddressSanitizer



=== TEST 15: a part that fails is logged
an [error] is expected: the left-out part
--- main_config eval: $::MainConfig
--- config
    location = /_broken { return 500; }
    location = /all { pyexec_sessions_gather /_broken; }
--- request
GET /all
--- response_body chomp
{"sessions":[],"partial":true}
--- error_log
sessions of "/_broken" left out: status 500
--- no_error_log
[alert]
ERROR: AddressSanitizer



=== TEST 16: gathering only answers GET
--- main_config eval: $::MainConfig
--- config
    location = /all { pyexec_sessions_gather /_a; }
--- request
POST /all
--- error_code: 405
--- response_body chomp
{"detail":"Method Not Allowed"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 17: pyexec_worker_socket naming no listen stops nginx
--- main_config eval: $::MainConfig
--- http_config
    pyexec_worker_socket unix:/tmp/pyexec-nowhere.sock;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
"pyexec_worker_socket unix:/tmp/pyexec-nowhere.sock" names no "listen" of any server
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 18: an X-Session-Id that is not UTF-8 is a 422 on the worker, never broken JSON
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute; }
    location = /sessions { pyexec_sessions; }
--- more_headers eval
"X-Session-Id: ab\xffcd"
--- pipelined_requests eval
["POST /execute\n{\"code\": \"1\"}", "POST /sessions", "GET /sessions"]
--- error_code eval
[422, 422, 200]
--- response_body eval
['{"detail":[{"loc":["header","x-session-id"],"msg":"must be valid UTF-8 without control characters","type":"value_error.str.encoding"}]}',
 '{"detail":[{"loc":["header","x-session-id"],"msg":"must be valid UTF-8 without control characters","type":"value_error.str.encoding"}]}',
 '{"sessions":[]}']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 19: an X-Session-Id with a control character is a 422 on the worker
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute; }
--- more_headers eval
"X-Session-Id: ab\x01cd"
--- request
POST /execute
{"code": "1"}
--- error_code: 422
--- response_body_like: "msg":"must be valid UTF-8 without control characters"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 20: /sessions/{id} with an id that is not UTF-8: 404, and UTF-8 ids still work
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute; }
    location /sessions/ { pyexec_sessions; }
--- pipelined_requests eval
["POST /execute\n{\"code\": \"v = 1\", \"session_id\": \"caf\\u00e9\"}", "GET /sessions/ab%FFcd", "GET /sessions/caf%C3%A9"]
--- error_code eval
[200, 404, 200]
--- response_body_like eval
['"success":true', '^\{"detail":"Session not found"\}$', '^\{"session_id":"caf\xc3\xa9","variables":\["v"\]']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 21: the last session_id of the body is routed on, as the worker takes it
--- main_config eval: $::MainConfig
--- config eval: $::Front
--- more_headers
Content-Type: application/json
--- request
POST /execute
{"session_id": "first", "code": "1", "session_id": "last"}
--- response_body
last|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 22: a session_id after 300 KB of code, the body kept in memory
--- main_config eval: $::MainConfig
--- config eval: "client_body_buffer_size 1m;\n" . $::Front
--- more_headers
Content-Type: application/json
--- request eval
"POST /execute\n" . '{"code": "' . ('x = \"\\u00e9\"\n' x 20000) . '", "session_id": "after-code"}'
--- response_body
after-code|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 23: a body nginx wrote to a temp file is read whole for its session_id
--- main_config eval: $::MainConfig
--- config eval: "client_body_buffer_size 1k;\n" . $::Front
--- more_headers
Content-Type: application/json
--- request eval
"POST /execute\n" . '{"code": "' . ('y' x 5000) . '", "session_id": "in-file"}'
--- response_body
in-file|
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
