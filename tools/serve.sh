#!/bin/sh
# serve.sh BUILD_DIR -- nginx in the foreground with the configuration
# `make conf` rendered into BUILD_DIR.  `make run` and the container both
# end here; exec, so signals (Ctrl-C, docker stop) reach nginx itself.
set -eu
build=${1:?usage: serve.sh BUILD_DIR}
bin=${NGINX:-/usr/sbin/nginx}
# nginx itself reads $NGINX: the listening sockets of a binary upgrade
unset NGINX
exec "$bin" -p "$build/" -c "$build/nginx.conf" -e stderr
