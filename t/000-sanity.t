# vim:set ft= ts=4 sw=4 et fdm=marker:
# The module loads into stock nginx and every directive parses.

use Test::Nginx::Socket;

repeat_each(2);

plan tests => repeat_each() * (blocks() * 5);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
_EOC_

run_tests();

__DATA__

=== TEST 1: the module loads and serves a location
--- main_config eval: $::MainConfig
--- config
    location = /health { pyexec_health; }
--- request
GET /health
--- response_body chomp
{"status":"healthy"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: every directive parses
--- main_config eval: $::MainConfig
--- http_config
    pyexec_thread_pool pyexec;
    pyexec_session_init "x = 1";
    pyexec_python /usr/bin/python3.11;
    pyexec_data_dir html/data;
    pyexec_session_max 100;
    pyexec_session_idle_timeout 1h;
    pyexec_session_queue 4;
    pyexec_output_max 64k;
    pyexec_timeout 30s;
    pyexec_timeout_max 1m;
    pyexec_kill_grace 2s;
    pyexec_json_max_depth 32;
    pyexec_memory_limit 2g;
    pyexec_session_registry 1m;
    pyexec_upload_mode keep;
    pyexec_io_thread_pool pyexec;
    pyexec_session_secret "sanity";
    pyexec_auth_token off;
--- config
    location = /health   { pyexec_health; }
    location = /status   { pyexec_status; }
    location = /execute  { pyexec_execute; }
    location /sessions   { pyexec_sessions; }
    location = /upload   { pyexec_upload; }
    location = /files    { pyexec_files; }
    location = /all      { pyexec_sessions_gather /sessions; }
--- request
POST /execute
{"code": "x + 1", "session_id": "sanity"}
--- response_body_like chomp
^\{"result":2,"session_id":"sanity","success":true,"error":null,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: a thread pool with another name
--- main_config
thread_pool py2 threads=1;
--- http_config
    pyexec_thread_pool py2;
--- config
    location = /execute { pyexec_execute; }
--- request
POST /execute
{"code": "6 * 7"}
--- response_body_like chomp
^\{"result":42,
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
