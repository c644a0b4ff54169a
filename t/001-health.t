# vim:set ft= ts=4 sw=4 et fdm=marker:
# /health is exactly {"status":"healthy"}; /status tells the worker's state.

use Test::Nginx::Socket;

repeat_each(2);

# 5 a block: status, body, one per no_error_log line; TEST 1's two
# response_headers
plan tests => repeat_each() * (blocks() * 5 + 2);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $Config = <<'_EOC_';
    location = /health { pyexec_health; }
    location = /status { pyexec_status; }
_EOC_

run_tests();

__DATA__

=== TEST 1: GET /health, exactly the body the existing client compares
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
GET /health
--- response_headers
Content-Type: application/json
Content-Length: 20
--- response_body chomp
{"status":"healthy"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: HEAD /health has the headers and no body
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
HEAD /health
--- response_body chomp
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: POST /health is 405 with FastAPI's body
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
POST /health
{}
--- error_code: 405
--- response_body chomp
{"detail":"Method Not Allowed"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: DELETE /status is 405
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
DELETE /status
--- error_code: 405
--- response_body chomp
{"detail":"Method Not Allowed"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: GET /status
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request
GET /status
--- response_body_like chomp
^\{"status":"healthy","worker":0,"pid":\d+,"python":"3\.11\.\d+","sessions":0,"uptime_s":\d+,"executions":0,"timeouts":0,"interpreter_ready":(true|false),"warm":(true|false),"cells_in_flight":0,"rss_bytes":\d+,"journal":\{"executions":0,"bytes":0,"max_bytes":\d+\},"running":null,"busiest":\[\]\}$
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
