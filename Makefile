# pyexec -- `make run` and `make test` are the two commands.
#
#   make run     install missing Debian packages, build, serve on 127.0.0.1:$(PORT)
#   make test    same install and build, then the whole t/ suite with prove
#   make test-real  the suite under openresty's Test::Nginx (TEST_NGINX_LIB)
#   make build   build/ngx_http_pyexec_module.so only (rebuilds what changed)
#   make bench   wrk benchmarks against plain nginx (see bench/)
#   make data    download the datasets of datasets.manifest (DOWNLOAD_DIR)
#   make fuzz    libFuzzer on the request-JSON and multipart parsers (fuzz/)
#   make soak    1 000 000 mixed requests: every answer checked, RSS < +5%
#   make clean

PORT      ?= 8123
LISTEN    ?= 127.0.0.1
BUILD     ?= $(CURDIR)/build
DATA_DIR  ?= $(BUILD)/data
STATE_DIR ?= $(BUILD)/state
SOCK_DIR  ?= $(BUILD)/run/sock
WORKERS   ?= $(shell tools/workers.sh)
DOWNLOAD_DIR ?= $(BUILD)/downloaded_data
DATASETS  ?=
NGX_SRC   ?= /usr/share/nginx/src
NGINX     ?= /usr/sbin/nginx
MODULE    := $(BUILD)/ngx_http_pyexec_module.so
PROVE     ?= prove
TESTS     ?= t/

SRCS := ngx_http_pyexec_module.c $(wildcard src/*.c src/*.h)
DOCS_UI := node_modules/swagger-ui-dist/index.html

.PHONY: all deps deps-test deps-bench build conf run data test test-only test-real test-asan bench clean \
        fuzz fuzz-build fuzz-merge fuzz-replay soak

all: build

deps:
	@tools/deps.sh build run

deps-test:
	@tools/deps.sh build run test

deps-bench:
	@tools/deps.sh build run test bench

build: deps $(MODULE) $(DOCS_UI)

src/ngx_http_pyexec_bootstrap.h: src/ngx_http_pyexec_bootstrap.py tools/py2c.sh
	tools/py2c.sh $< $@ ngx_http_pyexec_bootstrap

# nginx-dev's configure with Debian's own flags (conf_flags), so that
# /usr/sbin/nginx accepts the module ("binary compatible"); rerun only
# when the module's config changes.
$(BUILD)/Makefile: config
	@mkdir -p $(BUILD)
	cd $(NGX_SRC) && bash -c '. ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS) $(EXTRA_CFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC $(EXTRA_LDFLAGS)" \
	    "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(CURDIR) \
	    --builddir=$(BUILD)' > $(BUILD)/configure.log 2>&1 \
	    || { tail -5 $(BUILD)/configure.log; exit 1; }
	@grep -h 'error:' $(BUILD)/configure.log || true

$(MODULE): $(BUILD)/Makefile src/ngx_http_pyexec_bootstrap.h $(SRCS)
	$(MAKE) -s -f $(BUILD)/Makefile -C $(NGX_SRC) modules
	@touch $@

# the repo's nginx.conf, with PORT, DATA_DIR, SOCK_DIR and WORKERS put in; the
# workers (nobody, when started as root) bind their sockets in SOCK_DIR
$(BUILD)/nginx.conf: nginx.conf FORCE
	@mkdir -p $(BUILD)/logs $(BUILD)/run $(DATA_DIR) $(SOCK_DIR)
	@sed -e 's/127\.0\.0\.1:8123/$(LISTEN):$(PORT)/' \
	     -e 's/^worker_processes .*;/worker_processes $(WORKERS);/' \
	     -e 's#/run/pyexec/#$(SOCK_DIR)/#g' \
	     -e 's#/opt/pyexec/#$(CURDIR)/#g' \
	     -e 's#^\(    pyexec_data_dir\) .*;#\1 $(DATA_DIR);#' \
	     -e 's#^\(    pyexec_state_dir\) .*;#\1 $(STATE_DIR);#' \
	     -e 's#^\(            alias\) data/;#\1 $(DATA_DIR)/;#' $< > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@
	@[ "$$(id -u)" != 0 ] || chown nobody:nogroup $(DATA_DIR) $(SOCK_DIR) 2>/dev/null || true

FORCE:

# Swagger UI for /docs, exactly as package-lock.json pins it (no install
# scripts: swagger-ui-dist's only dependency is a telemetry hook)
$(DOCS_UI): package.json package-lock.json
	@tools/deps.sh docs
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

conf: $(BUILD)/nginx.conf

run: build conf
	@echo "pyexec: serving on http://$(LISTEN):$(PORT) (data: $(DATA_DIR)); Ctrl-C stops"
	@NGINX=$(NGINX) exec tools/serve.sh $(BUILD)

test: deps-test build test-only

test-only:
	TEST_NGINX_BINARY=$(NGINX) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	    $(PROVE) -I t/lib -r $(TESTS)

# The same files under openresty's Test::Nginx (not in Debian: a checkout
# of github.com/openresty/test-nginx you provide), whose lib/ comes first
# so its Test::Nginx::Socket is the one loaded:
#   make test-real TEST_NGINX_LIB=/path/to/test-nginx/lib [TESTS=t/002-execute.t]
test-real: deps-test build
	@tools/deps.sh testnginx
	@[ -f "$(TEST_NGINX_LIB)/Test/Nginx/Socket.pm" ] || \
	    { echo "test-real: set TEST_NGINX_LIB to test-nginx's lib/"; exit 1; }
	TEST_NGINX_BINARY=$(NGINX) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	    $(PROVE) -I $(TEST_NGINX_LIB) -I t/lib -r $(TESTS)

# The whole suite with the module built under AddressSanitizer (stock nginx
# and Python are not instrumented; libasan is preloaded).  Leak checking is
# off: CPython keeps its allocations until exit by design.  ASan's own
# allocator keeps ~25 MB of size-class caches, so the RSS test of
# t/004-session.t allows 64 MB instead of 8 there.  Any report
# lands in build-asan/asan.* and fails the target.
ASAN_BUILD := $(CURDIR)/build-asan

# t/031's slack under ASan: its allocator's caches and redzones (64 MB),
# and what they add to the journal's 1 MB of entries kept there (16 MB:
# with pyexec_journal_max 0 the same run stays under 64 MB)

test-asan: deps-test $(DOCS_UI)
	$(MAKE) BUILD=$(ASAN_BUILD) \
	    EXTRA_CFLAGS="-fsanitize=address -fno-omit-frame-pointer -O1" \
	    EXTRA_LDFLAGS="-fsanitize=address" $(ASAN_BUILD)/ngx_http_pyexec_module.so
	rm -f $(ASAN_BUILD)/asan.*
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) \
	ASAN_OPTIONS=detect_leaks=0:log_path=$(ASAN_BUILD)/asan:handle_segv=0:quarantine_size_mb=0:release_to_os_interval_ms=0 \
	PYEXEC_TEST_RSS_SLACK_MB=80 \
	    $(MAKE) BUILD=$(ASAN_BUILD) test-only
	@if ls $(ASAN_BUILD)/asan.* >/dev/null 2>&1; then \
	    echo "AddressSanitizer reports:"; cat $(ASAN_BUILD)/asan.*; exit 1; \
	 else echo "test-asan: no AddressSanitizer report"; fi

bench: deps-bench build
	bench/run.sh
	bench/upload.sh
	bench/parallel.sh
	bench/checkpoint.sh
	bench/runaway.sh
	bench/cpu.sh
	bench/fleet.sh
	bench/stream.sh

# SOAK_REQUESTS mixed requests through the shipped nginx.conf (bench/soak.sh)
soak: deps-bench build
	bench/soak.sh

# the datasets of datasets.manifest (or only DATASETS) into DOWNLOAD_DIR
data:
	@tools/deps.sh data
	/usr/bin/python3 tools/datasets.py --dest $(DOWNLOAD_DIR) $(DATASETS)

# libFuzzer (clang) over the two parsers that read network bytes; each
# harness runs FUZZ_RUNS inputs from the corpus kept in fuzz/corpus/ and
# writes what it finds new to $(BUILD)/fuzz/new-*, which `make fuzz-merge`
# minimises into the repo's corpus.  fuzz-replay (part of `make test`)
# runs the kept corpus through the same harnesses built with gcc + ASan.
FUZZ_RUNS   ?= 10000000
FUZZ_FLAGS  ?=
FUZZ_TARGETS := json multipart
FUZZ_INCS = -I$(BUILD) $(patsubst %,-I$(NGX_SRC)/src/%,core event event/modules \
            os/unix http http/modules http/v2) -Isrc -Ifuzz
FUZZ_SRCS = fuzz/fuzz_$(1).c fuzz/ngx_fuzz_stubs.c src/ngx_http_pyexec_$(1).c
FUZZ_DEPS := fuzz/ngx_fuzz.h fuzz/ngx_fuzz_stubs.c $(wildcard src/*.h) \
             src/ngx_http_pyexec_multipart.h

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c src/ngx_http_pyexec_%.c $(FUZZ_DEPS) $(BUILD)/Makefile
	@mkdir -p $(@D)
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined $(FUZZ_INCS) \
	    $(call FUZZ_SRCS,$*) -lyajl -o $@

$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c src/ngx_http_pyexec_%.c fuzz/fuzz_replay.c $(FUZZ_DEPS) $(BUILD)/Makefile
	@mkdir -p $(@D)
	gcc -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    $(FUZZ_INCS) $(call FUZZ_SRCS,$*) fuzz/fuzz_replay.c -lyajl -o $@

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

fuzz: deps
	@tools/deps.sh fuzz
	$(MAKE) fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz/new-$$t; \
	    echo "fuzz: $$t, $(FUZZ_RUNS) runs"; \
	    $(BUILD)/fuzz/fuzz_$$t -runs=$(FUZZ_RUNS) -print_final_stats=1 \
	        -artifact_prefix=$(BUILD)/fuzz/crash-$$t- $(FUZZ_FLAGS) \
	        $(BUILD)/fuzz/new-$$t fuzz/corpus/$$t > $(BUILD)/fuzz/$$t.log 2>&1; \
	    rc=$$?; \
	    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' \
	        $(BUILD)/fuzz/$$t.log; \
	    [ $$rc = 0 ] || { tail -n 40 $(BUILD)/fuzz/$$t.log; exit 1; }; \
	done

fuzz-merge: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    $(BUILD)/fuzz/fuzz_$$t -merge=1 fuzz/corpus/$$t $(BUILD)/fuzz/new-$$t; \
	done

fuzz-replay: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)
	@for t in $(FUZZ_TARGETS); do \
	    printf 'fuzz-replay %s: ' $$t; \
	    $(BUILD)/fuzz/replay_$$t fuzz/corpus/$$t/* || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) t/servroot*
