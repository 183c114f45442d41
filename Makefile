# Thin wrapper over meson. `make demo` and `make test` install what they
# need on a fresh Debian 12 machine, build, and run.

BUILD ?= build
BENCH_BUILD ?= build-bench
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: build tools and the libraries libdurin links.
DEB_PKGS = gcc make pkg-config meson ninja-build git clang-format libsqlite3-dev libuv1-dev \
	libjansson-dev libyajl-dev libcurl4-openssl-dev libsodium-dev libcmocka-dev libseccomp-dev libssl-dev \
	diffutils sqlite3 libpq-dev postgresql libmicrohttpd-dev libarchive-dev libzstd-dev \
	libgit2-dev libicu-dev curl jq openssl

# Debian packages only the tests need: the browser the dashboard's tests
# drive (tests/js/dashboard, through playwright-core).
TEST_DEB_PKGS = chromium

# npm packages of the e2e tests' third-party checkers (tests/js/package.json);
# node and npm come from Debian when the machine has no node at all.
NPM_DIR = tests/js
NPM_DEB_PKGS = nodejs npm

.PHONY: all deps test-deps npm-deps build demo test bench clean format check-format

all: build

# $(call apt_missing,PACKAGES): installs those of PACKAGES not installed.
apt_missing = @missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

deps:
	$(call apt_missing,$(DEB_PKGS))

test-deps:
	$(call apt_missing,$(TEST_DEB_PKGS))

# npm ci writes node_modules/.package-lock.json: older than the lockfile, or
# missing, means node_modules is stale.
npm-deps: $(NPM_DIR)/node_modules/.package-lock.json

$(NPM_DIR)/node_modules/.package-lock.json: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	@command -v node >/dev/null 2>&1 || { \
	  echo "installing: $(NPM_DEB_PKGS)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NPM_DEB_PKGS); }
	cd $(NPM_DIR) && npm ci
	@touch $@

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Db_sanitize=address,undefined

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	./examples/fix-failing-test/demo.sh $(BUILD)/durin

test: build test-deps npm-deps
	./tests/run-all.sh $(BUILD)

$(BENCH_BUILD)/build.ninja:
	meson setup $(BENCH_BUILD) --buildtype=release -Dtests=false

bench: deps $(BENCH_BUILD)/build.ninja
	ninja -C $(BENCH_BUILD)
	./bench/run.sh $(BENCH_BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BENCH_BUILD)
