SHELL := /bin/bash

# ngx_safedelete_module: build, test, demo and benchmark.
#
#   make                build build/ngx_http_safedelete_module.so
#   make test           install what is missing, build, run t/*.t
#   make test-valgrind  the same suite with nginx under valgrind
#   make demo           nginx + Redis + json-server demo on :8080
#   make bench          wrk: plain nginx against the module
#   make bench-instructions  callgrind: what a GET costs with the module on

NGINX_SRC   ?= /usr/share/nginx/src
BUILD       := $(CURDIR)/build
NGX_BUILD   := $(BUILD)/nginx
MODULE      := $(BUILD)/ngx_http_safedelete_module.so
SOURCES     := config $(wildcard ngx_safedelete_module/*.c ngx_safedelete_module/*.h)
CFLAGS_EXTRA ?= -Wall -Wextra -Werror -Wno-unused-parameter

DEB_PACKAGES := nginx nginx-dev libhiredis-dev libcurl4-openssl-dev \
                libjansson-dev libssl-dev libpcre3-dev zlib1g-dev \
                redis-server redis-tools libtest-base-perl wrk valgrind \
                curl ca-certificates openssl

.PHONY: all deps backend test test-valgrind demo bench bench-instructions clean

all: $(MODULE)

deps:
	@sh t/tools/install-deps.sh $(DEB_PACKAGES)
	@command -v npm >/dev/null 2>&1 || sh t/tools/install-deps.sh nodejs npm

$(NGX_BUILD)/objs/Makefile: config | deps
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -a $(NGINX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$(CFLAGS_EXTRA)" \
	        --add-dynamic-module=$(CURDIR) >$(BUILD)/configure.log 2>&1 \
	    || (tail -30 $(BUILD)/configure.log; exit 1)

$(MODULE): $(NGX_BUILD)/objs/Makefile $(SOURCES)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	@# a new file, not the old one rewritten: running workers map it
	cp $(NGX_BUILD)/objs/ngx_http_safedelete_module.so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)

backend: | deps
	@cd t/backend && if [ ! -d node_modules/json-server ] || \
	    [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	    npm ci --no-audit --no-fund --loglevel=error; fi

test: $(MODULE) backend
	prove -I t/lib t/*.t

test-valgrind: $(MODULE) backend
	TEST_NGINX_USE_VALGRIND=1 prove -I t/lib t/*.t

demo: $(MODULE) backend
	sh t/tools/demo.sh

bench: $(MODULE) backend
	sh bench/run.sh

bench-instructions: $(MODULE)
	sh bench/get-instructions.sh

clean:
	rm -rf $(BUILD)
