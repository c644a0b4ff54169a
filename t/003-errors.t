# vim:set ft= ts=4 sw=4 et fdm=marker:
# Bad requests: FastAPI's statuses and 422 "detail" shapes, never a crash.

use Test::Nginx::Socket;

repeat_each(2);

plan tests => repeat_each() * (blocks() * 5);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $Config = <<'_EOC_';
    location = /execute { pyexec_execute; }
_EOC_

run_tests();

__DATA__

=== TEST 1: malformed JSON is 422 value_error.jsondecode with the offset
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{bad
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body",2],"msg":"lexical error: invalid char in json text.","type":"value_error.jsondecode"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: truncated JSON
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"1 +"
--- error_code: 422
--- response_body_like chomp
^\{"detail":\[\{"loc":\["body",\d+\],"msg":"[^"]+","type":"value_error.jsondecode"\}\]\}$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: an empty body: field required
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n"
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body"],"msg":"field required","type":"value_error.missing"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: an array is not an object
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
[{"code": "1"}]
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body"],"msg":"value is not a valid dict","type":"type_error.dict"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: no code
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"session_id": "x"}
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body","code"],"msg":"field required","type":"value_error.missing"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: code of the wrong types, and session_id too: both reported
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": ["print(1)"], "session_id": 5}
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body","code"],"msg":"str type expected","type":"type_error.str"},{"loc":["body","session_id"],"msg":"str type expected","type":"type_error.str"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 7: code null is not a string
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": null}
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body","code"],"msg":"str type expected","type":"type_error.str"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 8: a timeout that is not a positive number
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "1", "timeout": "soon"}
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body","timeout"],"msg":"value is not a valid float","type":"type_error.float"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 9: a negative timeout
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "1", "timeout": -1}
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body","timeout"],"msg":"ensure this value is greater than 0","type":"value_error.number.not_gt"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 10: \u0000 in code: what compile() says, nothing of it runs
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
{"code": "print('a')\u0000import os; os._exit(1)", "session_id": "nul"}
--- error_code: 200
--- response_body_like chomp
^\{"result":null,"session_id":"nul","success":false,"error":"ValueError: source code string cannot contain null bytes","stdout":"","stderr":"",.*"error_name":"ValueError",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 11: invalid UTF-8 in a string
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"'\xff\xfe'\"}"
--- error_code: 422
--- response_body_like chomp
^\{"detail":\[\{"loc":\["body",\d+\],"msg":"lexical error: invalid bytes in UTF8 string.","type":"value_error.jsondecode"\}\]\}$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 12: nesting beyond the depth limit
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"1\", \"x\": " . ("[" x 65) . ("]" x 65) . "}"
--- error_code: 422
--- response_body_like chomp
^\{"detail":\[\{"loc":\["body",\d+\],"msg":"JSON nested too deeply","type":"value_error.jsondecode"\}\]\}$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 13: nesting within the limit is fine, unknown fields ignored
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"1\", \"x\": " . ("[" x 63) . ("]" x 63) . ", \"y\": {\"code\": 5}}"
--- response_body_like chomp
^\{"result":1,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 14: a million-deep array (yajl_tree would crash freeing it)
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n" . ("[" x 1000000) . ("]" x 1000000)
--- error_code: 422
--- response_body_like chomp
"msg":"JSON nested too deeply"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 15: a session_id of 257 bytes
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"1\", \"session_id\": \"" . ("s" x 257) . "\"}"
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body","session_id"],"msg":"ensure this value has at most 256 characters","type":"value_error.any_str.max_length"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 16: a session_id of 256 bytes is fine
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"1\", \"session_id\": \"" . ("s" x 256) . "\"}"
--- response_body_like eval
qr/^\{"result":1,"session_id":"s{256}",/
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 17: GET /execute is 405
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
GET /execute
--- error_code: 405
--- response_body chomp
{"detail":"Method Not Allowed"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 18: a form-encoded body is still parsed as JSON, or refused as such
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /execute
code=1
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 422
--- response_body_like chomp
"type":"value_error.jsondecode"
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
