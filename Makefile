# pyexec -- `make run` and `make test` are the two commands.
#
#   make run     install missing Debian packages, build, serve on 127.0.0.1:$(PORT)
#   make test    same install and build, then the whole t/ suite with prove
#   make build   build/ngx_http_pyexec_module.so only (rebuilds what changed)
#   make bench   wrk benchmarks against plain nginx (see bench/)
#   make clean

PORT      ?= 8123
BUILD     := $(CURDIR)/build
DATA_DIR  ?= $(BUILD)/data
NGX_SRC   ?= /usr/share/nginx/src
NGINX     ?= /usr/sbin/nginx
MODULE    := $(BUILD)/ngx_http_pyexec_module.so
PROVE     ?= prove
TESTS     ?= t/

SRCS := ngx_http_pyexec_module.c $(wildcard src/*.c src/*.h)

.PHONY: all deps deps-test deps-bench build run test bench clean

all: build

deps:
	@tools/deps.sh build run

deps-test:
	@tools/deps.sh build run test

deps-bench:
	@tools/deps.sh build run test bench

build: deps $(MODULE)

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

# the repo's nginx.conf, with PORT and DATA_DIR put in
$(BUILD)/nginx.conf: nginx.conf FORCE
	@mkdir -p $(BUILD)/logs $(BUILD)/run $(DATA_DIR)
	@sed -e 's/127\.0\.0\.1:8123/127.0.0.1:$(PORT)/' \
	     -e 's#^\(    pyexec_data_dir\) .*;#\1 $(DATA_DIR);#' $< > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@
	@[ "$$(id -u)" != 0 ] || chown nobody:nogroup $(DATA_DIR) 2>/dev/null || true

FORCE:

run: build $(BUILD)/nginx.conf
	@echo "pyexec: serving on http://127.0.0.1:$(PORT) (data: $(DATA_DIR)); Ctrl-C stops"
	exec $(NGINX) -p $(BUILD)/ -c $(BUILD)/nginx.conf -e stderr

test: deps-test build
	TEST_NGINX_BINARY=$(NGINX) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	    $(PROVE) -I t/lib -r $(TESTS)

bench: deps-bench build
	bench/run.sh

clean:
	rm -rf $(BUILD) t/servroot*
