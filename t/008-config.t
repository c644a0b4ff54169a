# vim:set ft= ts=4 sw=4 et fdm=marker:
# Bad directive values make nginx refuse the configuration, clearly.

use Test::Nginx::Socket;

repeat_each(2);

plan tests => repeat_each() * (blocks() * 5);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

run_tests();

__DATA__

=== TEST 1: pyexec_session_max 0
--- main_config eval: $::MainConfig
--- http_config
    pyexec_session_max 0;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
"pyexec_session_max" directive must be positive
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: pyexec_timeout that is not a time
--- main_config eval: $::MainConfig
--- http_config
    pyexec_timeout soon;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
"pyexec_timeout" directive invalid value
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: pyexec_timeout above pyexec_timeout_max
--- main_config eval: $::MainConfig
--- http_config
    pyexec_timeout 2h;
    pyexec_timeout_max 1h;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
"pyexec_timeout" 7200000 exceeds "pyexec_timeout_max" 3600000
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: pyexec_execute takes no arguments
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute now; }
--- must_die
--- error_log
invalid number of arguments in "pyexec_execute" directive
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: two handlers in one location
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute; pyexec_health; }
--- must_die
--- error_log
"pyexec_health" directive is duplicate
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: pyexec_session_queue outside http
--- main_config eval: $::MainConfig
--- config
    location = /execute { pyexec_execute; pyexec_session_queue 4; }
--- must_die
--- error_log
"pyexec_session_queue" directive is not allowed here
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 7: pyexec_output_max that is not a size
--- main_config eval: $::MainConfig
--- http_config
    pyexec_output_max lots;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
"pyexec_output_max" directive invalid value
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 8: pyexec_upload_mode takes replace or keep
--- main_config eval: $::MainConfig
--- http_config
    pyexec_upload_mode merge;
--- config
    location = /upload { pyexec_upload; }
--- must_die
--- error_log
invalid value "merge" in
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 9: pyexec_sessions_gather wants URIs
--- main_config eval: $::MainConfig
--- config
    location = /all { pyexec_sessions_gather workers; }
--- must_die
--- error_log
"workers" is not a URI of a location
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 10: pyexec_memory_limit too small to start Python
--- main_config eval: $::MainConfig
--- http_config
    pyexec_memory_limit 10m;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
invalid value "10m": "off" or a size of at least 67108864
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 11: pyexec_session_registry that is not a size
--- main_config eval: $::MainConfig
--- http_config
    pyexec_session_registry lots;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
invalid value "lots": "off" or a size of at least
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 12: pyexec_python that is not there: nginx refuses to start
--- main_config eval: $::MainConfig
--- http_config
    pyexec_python /nonexistent/python3.11;
--- config
    location = /execute { pyexec_execute; }
--- must_die
--- error_log
pyexec: the Python interpreter "/nonexistent/python3.11" is missing or not executable
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
