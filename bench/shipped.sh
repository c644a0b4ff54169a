# bench/shipped.sh -- sourced by bench/*.sh: the repo's nginx.conf, as
# `make run` renders it, under DIR on PORT (logs to DIR/logs, sockets in
# DIR/sock, access log off), plus any extra sed expressions; written to
# DIR/nginx.conf.  Sets ROOT, NGINX and MODULE when they are unset.
#   shipped_conf DIR PORT [SED_EXPR...]
#   shipped_bench NAME PORT: OUT=build/bench/NAME afresh, conf, started
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_pyexec_module.so}

shipped_conf() {
    local dir=$1 port=$2 e extra=()
    shift 2
    for e in "$@"; do extra+=(-e "$e"); done
    mkdir -p "$dir/logs" "$dir/run" "$dir/data" "$dir/sock"
    [ "$(id -u)" != 0 ] || chown nobody:nogroup "$dir/data" "$dir/sock" "$dir/run"
    sed -e "s/127\.0\.0\.1:8123/127.0.0.1:$port/" \
        -e "s#/run/pyexec/#$dir/sock/#g" \
        -e "s#/opt/pyexec/#$ROOT/#g" \
        -e "s#^load_module .*;#load_module $MODULE;#" \
        -e "s#^error_log .*;#error_log $dir/logs/error.log warn;#" \
        -e "s#^\(    access_log\) .*;#\1 off;#" \
        "${extra[@]}" "$ROOT/nginx.conf" > "$dir/nginx.conf"
}

# shipped_start DIR PORT: nginx on DIR/nginx.conf in the background, its
# pid in $master, stopped when the script exits; returns once /health
# answers
shipped_start() {
    local dir=$1 port=$2
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
    master=$!
    trap 'kill -QUIT $master 2>/dev/null || true; wait 2>/dev/null || true' EXIT
    for _ in $(seq 200); do
        curl -s -o /dev/null "http://127.0.0.1:$port/health" && return 0
        sleep 0.05
    done
    echo "nginx on port $port did not answer /health" >&2
    return 1
}

# shipped_bench NAME PORT: the shipped conf under $ROOT/build/bench/NAME
# ($OUT, emptied first), started
shipped_bench() {
    OUT=$ROOT/build/bench/$1
    rm -rf "$OUT"
    shipped_conf "$OUT" "$2"
    shipped_start "$OUT" "$2"
}
