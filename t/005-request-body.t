# vim:set ft= ts=4 sw=4 et fdm=marker:
# The body is read the nginx way: temp files, chunked, size limits.

use Test::Nginx::Socket;

repeat_each(2);

plan tests => repeat_each() * (blocks() * 5);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

our $Config = <<'_EOC_';
    client_body_buffer_size 1k;
    location = /execute {
        client_max_body_size 64k;
        pyexec_execute;
    }
    error_page 413 @too_large;
    location @too_large {
        default_type application/json;
        return 413 '{"detail":"Request body too large"}';
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: a body bigger than the buffer goes through a temp file
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"s = '" . ("ab" x 5000) . "'\\nlen(s)\"}"
--- response_body_like chomp
^\{"result":10000,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: a chunked body
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- more_headers
Transfer-Encoding: chunked
--- request eval
my $b = "{\"code\": \"print(40 + 2)\", \"session_id\": \"chunky\"}";
"POST /execute\n" . CORE::join("", map { sprintf("%x\r\n%s\r\n", length $_, $_) } unpack("(a7)*", $b)) . "0\r\n\r\n"
--- response_body_like chomp
^\{"result":"42","session_id":"chunky",
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: a chunked body spilling to a temp file
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- more_headers
Transfer-Encoding: chunked
--- request eval
my $b = "{\"code\": \"len('" . ("x" x 3000) . "')\"}";
"POST /execute\n" . CORE::join("", map { sprintf("%x\r\n%s\r\n", length $_, $_) } unpack("(a700)*", $b)) . "0\r\n\r\n"
--- response_body_like chomp
^\{"result":3000,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: over client_max_body_size: 413 JSON
nginx logs the refusal as an [error]: expected here
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- request eval
"POST /execute\n{\"code\": \"'" . ("x" x 70000) . "'\"}"
--- error_code: 413
--- response_body chomp
{"detail":"Request body too large"}
--- error_log
client intended to send too large
--- no_error_log
[alert]
ERROR: AddressSanitizer



=== TEST 5: over client_max_body_size, chunked: 413 JSON
nginx logs the refusal as an [error]: expected here
--- main_config eval: $::MainConfig
--- config eval: $::Config
--- more_headers
Transfer-Encoding: chunked
--- request eval
my $b = "{\"code\": \"'" . ("x" x 70000) . "'\"}";
"POST /execute\n" . CORE::join("", map { sprintf("%x\r\n%s\r\n", length $_, $_) } unpack("(a4000)*", $b)) . "0\r\n\r\n"
--- error_code: 413
--- response_body chomp
{"detail":"Request body too large"}
--- error_log
client intended to send too large
--- no_error_log
[alert]
ERROR: AddressSanitizer
