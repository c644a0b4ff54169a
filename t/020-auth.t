# vim:set ft= ts=4 sw=4 et fdm=marker:
# pyexec_auth_token: a bearer token for anything but loopback use; 401 in
# JSON without it or with a wrong one, in every location it covers (static
# ones too); "off" opens a location.

use Test::Nginx::Socket;

repeat_each(2);

# 5 a response (status, body, one per no_error_log line; TEST 6 dies:
# its error_log instead); TEST 4 pipelines one more; TEST 1, 2 and 2b's
# error_log, TEST 1's two response_headers
plan tests => repeat_each() * (5 * (blocks() + 1) + 5);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $HttpConfig = <<'_EOC_';
    pyexec_auth_token "s3cret-token-0123456789";
_EOC_

our $Config = <<'_EOC_';
    location = /health { pyexec_health; pyexec_auth_token off; }
    location = /status { pyexec_status; }
    location = /execute { pyexec_execute; }
    location /static/ { root html; }
_EOC_

run_tests();

__DATA__

=== TEST 1: no token: 401, JSON, WWW-Authenticate
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /status
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
Content-Type: application/json
--- response_body chomp
{"detail":"Not authenticated"}
--- error_log
pyexec: no bearer token
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: a wrong token
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Authorization: Bearer s3cret-token-0123456780
--- request
GET /status
--- error_code: 401
--- response_body chomp
{"detail":"Not authenticated"}
--- error_log
pyexec: wrong bearer token
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2b: a prefix of the right token
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Authorization: Bearer s3cret-token-012345678
--- request
GET /status
--- error_code: 401
--- response_body chomp
{"detail":"Not authenticated"}
--- error_log
pyexec: wrong bearer token
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: the right token passes, POST bodies included
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Authorization: Bearer s3cret-token-0123456789
--- request
POST /execute
{"code": "6 * 7"}
--- error_code: 200
--- response_body_like chomp
^\{"result":42,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: a refused POST has its body discarded; the connection goes on
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- pipelined_requests eval
["POST /execute\n{\"code\": \"1\"}", "GET /health"]
--- error_code eval
[401, 200]
--- response_body eval
['{"detail":"Not authenticated"}', '{"status":"healthy"}']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: static locations are covered too
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- user_files
>>> static/secret.txt
top secret
--- request
GET /static/secret.txt
--- error_code: 401
--- response_body chomp
{"detail":"Not authenticated"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: a token shorter than 16 characters is refused at start
--- main_config eval: $::MainConfig
--- http_config
    pyexec_auth_token short;
--- config eval: $::Config
--- must_die
--- error_log
"pyexec_auth_token" directive must be at least 16 characters
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
