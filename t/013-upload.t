# vim:set ft= ts=4 sw=4 et fdm=marker:
# POST /upload (multipart, streamed to the data folder), GET /files (the
# listing) and GET /files/{path} (nginx's static serving, an alias), and
# code running in the data folder.

use Test::Nginx::Socket;
use Cwd qw(abs_path);

# the data folder, outside the servroot (both runners expand $TEST_NGINX_*
# from the environment)
$ENV{TEST_NGINX_PYEXEC_DATA} ||= abs_path('t') . '/servroot-upload-data';

repeat_each(2);

# 5 a response: status, body, one per no_error_log line; 24 more
# pipelined responses; TEST 9's error_log; TEST 11's three responses do
# not check [error] (nginx logs a missing file)
plan tests => repeat_each() * (5 * (blocks() + 24) - 2);

our $MainConfig = <<'_EOC_';
thread_pool pyexec threads=1;
thread_pool pyexec_io threads=1;
_EOC_

our $HttpConfig = <<'_EOC_';
    pyexec_data_dir $TEST_NGINX_PYEXEC_DATA;
    pyexec_io_thread_pool pyexec_io;
_EOC_

our $Config = <<'_EOC_';
    location = /upload { pyexec_upload; client_body_buffer_size 8k; }
    location = /execute { pyexec_execute; }
    location = /files { pyexec_files; }
    location /files/ {
        alias $TEST_NGINX_PYEXEC_DATA/;
        error_page 403 404 =404 @no_file;
        location ~ /\. { return 404; }
    }
    location @no_file {
        default_type application/json;
        return 404 '{"detail":"File not found"}';
    }
_EOC_

our $Wipe = 'POST /execute
{"code": "import os, shutil\nfor n in os.listdir(\".\"):\n    shutil.rmtree(n) if os.path.isdir(n) else os.remove(n)\nsorted(os.listdir(\".\"))"}';

sub part { my ($name, $filename, $data) = @_;
    "--XyZ\r\nContent-Disposition: form-data; name=\"$name\""
    . (defined $filename ? "; filename=\"$filename\"" : '')
    . "\r\nContent-Type: text/csv\r\n\r\n$data\r\n" }

sub upload { "POST /upload\n" . join('', map { part(@$_) } @_) . "--XyZ--\r\n" }

run_tests();

__DATA__

=== TEST 1: two files, one in a sub-folder; listed; downloaded by nginx
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
[$::Wipe, ::upload(['files', 'a.csv', "x,y\n1,2\n"], ['files', 'sub/b.csv', "p\r\n--XyX\r\n-"]), "GET /files", "GET /files/sub/b.csv", "GET /files/a.csv"]
--- response_body_like eval
['^\{"result":\[\],', '^\{"success":true,"uploaded_files":\["a.csv","sub/b.csv"\],"error":null\}$', '^\{"files":\[(\{"name":"a.csv","size":8,"mtime":"[^"]+"\},?|\{"name":"sub/b.csv","size":11,"mtime":"[^"]+"\},?){2}\],"truncated":false\}$', "^p\r\n--XyX\r\n-\$", "^x,y\n1,2\n\$"]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 2: code runs in the data folder: reads an upload, writes a download
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
[::upload(['files', 'nums.csv', "n\n1\n2\n3\n"]), 'POST /execute
{"code": "import pandas as pd\ndf = pd.read_csv(\"nums.csv\")\nint(df.n.sum())", "session_id": "t2"}', 'POST /execute
{"code": "df.assign(m=df.n * 2).to_csv(\"out.csv\", index=False)", "session_id": "t2"}', "GET /files/out.csv"]
--- response_body_like eval
['"success":true', '^\{"result":6,', '"success":true', "^n,m\n1,2\n2,4\n3,6\n\$"]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 3: replace mode (the default): an upload first empties the folder
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
[::upload(['files', 'old/one.csv', "1"]), ::upload(['files', 'two.csv', "2"]), "GET /files"]
--- response_body_like eval
['"success":true', '"success":true', '^\{"files":\[\{"name":"two.csv",[^\]]*\}\],"truncated":false\}$']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 4: keep mode adds to what is there
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig . "    pyexec_upload_mode keep;\n"
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
[$::Wipe, ::upload(['files', 'one.csv', "1"]), ::upload(['files', 'one.csv', "11"], ['files', 'two.csv', "2"]), 'POST /execute
{"code": "sorted((n, open(n).read()) for n in [\"one.csv\", \"two.csv\"])"}']
--- response_body_like eval
['"success":true', '"success":true', '"success":true', '^\{"result":\[\["one.csv","11"\],\["two.csv","2"\]\],']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 5: names that would leave the folder are refused; nothing changes
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
[::upload(['files', 'keep.csv', "k"]),
 ::upload(['files', 'new.csv', "n"], ['files', '../evil.csv', "e"]),
 ::upload(['files', '/tmp/pyexec-evil.csv', "e"]),
 ::upload(['files', 'a/../../evil.csv', "e"]),
 ::upload(['files', '', "e"]),
 ::upload(['files', "a\0b", "e"]),
 ::upload(['files', undef, "e"]),
 'POST /execute
{"code": "import os\n(sorted(os.listdir(\".\")), os.path.exists(\"../evil.csv\"), os.path.exists(\"/tmp/pyexec-evil.csv\"))"}']
--- response_body_like eval
['"success":true',
 '^\{"success":false,"uploaded_files":\[\],"error":"invalid filename \\\\"../evil.csv\\\\": \\\\"..\\\\" is not allowed"\}$',
 '^\{"success":false,"uploaded_files":\[\],"error":"invalid filename \\\\"/tmp/pyexec-evil.csv\\\\": absolute paths are not allowed"\}$',
 '"success":false,.*is not allowed',
 '"success":false,.*: empty"',
 '"success":false,.*contains a NUL byte',
 '"success":false,.*a \\\\"files\\\\" part without a filename',
 '^\{"result":\[\["keep.csv"\],false,false\],']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 6: no "files" part: 422, as FastAPI answered
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- request eval
::upload(['other', undef, "x"])
--- error_code: 422
--- response_body chomp
{"detail":[{"loc":["body","files"],"msg":"field required","type":"value_error.missing"}]}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 7: not multipart at all: 422
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: application/json
--- request
POST /upload
{"files": []}
--- error_code: 422
--- response_body_like chomp
"loc":\["body","files"\]
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 8: a truncated multipart body: 400, nothing written
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
[$::Wipe, "POST /upload\n" . ::part('files', 'cut.csv', "abc"), "GET /files"]
--- error_code eval
[200, 400, 200]
--- response_body_like eval
['"result":\[\]', '^\{"detail":"malformed multipart body: it ends early"\}$', '^\{"files":\[\],"truncated":false\}$']
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 9: multipart without a boundary: 400
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data
--- request
POST /upload
x
--- error_code: 400
--- response_body chomp
{"detail":"multipart body without a boundary"}
--- error_log
upload refused: multipart body without a boundary
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 10: a 3 MB file goes through the temp file, byte for byte
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
[::upload(['files', 'big.bin', CORE::join('', map { chr($_ % 251) } 1 .. 3_000_000)]), 'POST /execute
{"code": "import hashlib\nd = open(\"big.bin\", \"rb\").read()\n(len(d), d == bytes(i % 251 for i in range(1, 3000001)))"}']
--- response_body_like eval
['"success":true', '^\{"result":\[3000000,true\],']
--- timeout: 20
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer



=== TEST 11: downloads: missing file, hidden file, traversal
an [error] is expected: nginx logs the open() of a missing file (as with the shipped nginx.conf)
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- pipelined_requests eval
["GET /files/missing.csv", "GET /files/.pyexec-upload-1/x", "GET /files/%2e%2e/conf/nginx.conf"]
--- error_code eval
[404, 404, 404]
--- response_body_like eval
['^\{"detail":"File not found"\}$', '^\{"detail":"File not found"\}$', '^(?!.*pyexec_data_dir)']
--- no_error_log
[alert]
ERROR: AddressSanitizer



=== TEST 12: /upload takes POST only
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /upload
--- error_code: 405
--- response_body chomp
{"detail":"Method Not Allowed"}
--- no_error_log
[error]
[alert]
ERROR: AddressSanitizer
