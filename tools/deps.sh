#!/bin/sh
# deps.sh GROUP... -- install the Debian packages a group needs, only those
# missing, and say which.  Groups: build run test testnginx bench data docs
# fuzz.  Idempotent.
set -eu

build="gcc make pkgconf nginx nginx-dev libyajl-dev python3-dev"
# run: what the replaced service's image had, and what notebook code
# expects next to it (joblib, scipy, statsmodels, seaborn, tqdm, tabulate,
# IPython's display objects, PIL)
run="nginx libpython3.11 libyajl2 python3.11 python3-numpy python3-pandas python3-matplotlib python3-sklearn python3-joblib python3-scipy python3-statsmodels python3-seaborn python3-tqdm python3-tabulate python3-ipython python3-pil python3-cloudpickle python3-dill"
# test: the Jupyter kernel that "works as in Jupyter" is checked against
test="curl file libtest-base-perl libtext-diff-perl libhttp-message-perl liburi-perl python3-yaml python3-jsonschema chromium python3-ipykernel python3-jupyter-client python3-prometheus-client"
# testnginx: what openresty's Test::Nginx (not packaged; make test-real)
# needs from Debian
testnginx="libtest-base-perl libtest-longstring-perl liblist-moreutils-perl libtext-diff-perl libwww-perl liburi-perl"
bench="wrk python3-fastapi python3-uvicorn python3-psutil"
data="ca-certificates python3"
fuzz="clang libclang-rt-14-dev"
docs="nodejs npm"

want=""
for g in "$@"; do
    eval "want=\"\$want \$$g\""
done

missing=""
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac
    # node and npm may come from elsewhere (nodesource bundles npm)
    case $p in
        nodejs) command -v node >/dev/null && continue ;;
        npm) command -v npm >/dev/null && continue ;;
    esac
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case $st in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    echo "deps: all Debian packages present ($*)"
    exit 0
fi

echo "deps: installing missing Debian packages:$missing"
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "deps: not root and no sudo; install:$missing" >&2; exit 1; }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# a fresh machine (or container) may have empty package lists
$sudo apt-get update -q || { echo "deps: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
