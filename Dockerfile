# pyexec in a container: the same scripts as `make run`, nothing else.
#
#   docker build -t pyexec .
#   docker run --rm -p 127.0.0.1:8123:8123 -v "$PWD/data:/app/custom_data" pyexec
#
# nginx listens on 0.0.0.0 inside the container (a published port reaches
# the container's address, not its loopback); publish it on 127.0.0.1 only,
# as docker-compose.yml does.  The master starts as root and the workers,
# which run the Python code, as nobody.

FROM debian:bookworm-slim

# make and the repo; tools/deps.sh (run by make) installs the rest
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pyexec
COPY . .

# installs the build and run packages, builds the module (as `make run` does)
RUN make build && rm -rf /var/lib/apt/lists/*

# the reference data (datasets.manifest: DABstep's context files) from the
# Hugging Face hub, with the network of whoever builds the image;
# --build-arg SKIP_DATA=1 builds without it
ARG SKIP_DATA=
RUN if [ -z "$SKIP_DATA" ]; then make data DOWNLOAD_DIR=/app/downloaded_data; fi

ENV BUILD=/opt/pyexec/build \
    PORT=8123 \
    LISTEN=0.0.0.0 \
    DATA_DIR=/app/custom_data \
    STATE_DIR=/app/state \
    SOCK_DIR=/run/pyexec

RUN mkdir -p /app/custom_data /run/pyexec

EXPOSE 8123
STOPSIGNAL SIGQUIT

HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD python3 -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8123/health', timeout=4).read() != b'{\"status\":\"healthy\"}')"

# what `make run` does: render nginx.conf (PORT, LISTEN, DATA_DIR and
# SOCK_DIR from the environment above), then nginx in the foreground as
# PID 1's exec
CMD ["sh", "-c", "make --no-print-directory conf && exec tools/serve.sh \"$BUILD\""]
