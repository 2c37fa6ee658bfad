# auth-host — the commands a newcomer needs. `make run` serves with the sample plugins;
# `make test` runs every test (it builds the plugins the tests load).

CARGO ?= cargo
# The sample plugins are built next to the binary, which is the default plugin directory.
SAMPLE_PLUGINS = ALLOWED_SERVICES="example:sample_permission_provider" \
                 INSTALLED_EXTENSIONS="sample_extension"
# `make run` serves on loopback with the development login, so that the whole login can be
# walked in a browser with no OAuth credentials, from the example client app too
# (`make client-app`, on CLIENT_APP).
CLIENT_APP = http://localhost:8080
DEV_SERVER = EXTERNAL_ADDRESS="http://127.0.0.1:8000" AUTH_LISTEN="127.0.0.1:8000" \
             AUTH_DEV_LOGIN=true AUTH_CORS_ORIGINS="$(CLIENT_APP)" \
             AUTH_ALLOWED_REDIRECTS="http://127.0.0.1:8000;$(CLIENT_APP)"

# PyJWT and Standard Webhooks' library, for the tests that verify permission tokens and
# webhook signatures as downstream services and receivers do.
VERIFIERS_VENV = target/verifiers-venv

.PHONY: deny deny-tools audit-tools image image-test image-tools build run client-app screenshots browser-tools test test-tools cluster-tools fuzz fuzz-tools lint fmt check-plugins clean verifiers bench bench-tools

# `make bench` (SQLite) or `make bench DB=postgres`; BENCH_DURATION=seconds per run.
DB ?= sqlite

build:
	$(CARGO) build --workspace

run: build
	$(SAMPLE_PLUGINS) $(DEV_SERVER) ./target/debug/auth-host serve

# The example client app (examples/client-app), served as static files beside `make run`.
client-app:
	@echo "Open $(CLIENT_APP)/?auth=http://127.0.0.1:8000 (auth-host from \`make run\`)"
	python3 -m http.server --bind 127.0.0.1 --directory examples/client-app 8080

# The README's pictures of the example app, taken by its browser test.
screenshots: build browser-tools
	AUTH_SCREENSHOT_DIR=$(CURDIR)/examples/client-app \
	  $(CARGO) test -p auth-host --test browser -- the_example_app_through_the_development_login

check-plugins: build
	$(SAMPLE_PLUGINS) ./target/debug/auth-host plugins check

test: build verifiers cluster-tools browser-tools test-tools
	$(CARGO) test --workspace

# openssl (keys as other tools write them), setpriv (a server as another user), faketime (a
# replica whose clock is off), ss (a socket's backlog) and promtool (the example alert rules)
# for the tests, from the system packages when missing.
test-tools:
	@command -v openssl >/dev/null && command -v setpriv >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq openssl util-linux >/dev/null; }
	@command -v faketime >/dev/null && command -v ss >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq faketime iproute2 >/dev/null; }
	@command -v promtool >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# HAProxy from the system packages, for the cluster test (three replicas behind it).
cluster-tools:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || \
	  { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }

# Headless Chromium and its WebDriver from the system packages, for the browser tests.
browser-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null; }

# 100,000 malformed requests against a running server (tools/fuzz.sh); CI runs it too.
fuzz: build fuzz-tools
	tools/fuzz.sh

# curl from the system packages, installed when missing.
fuzz-tools:
	@command -v curl >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

verifiers: $(VERIFIERS_VENV)/.installed

$(VERIFIERS_VENV)/.installed:
	python3 -m venv $(VERIFIERS_VENV)
	$(VERIFIERS_VENV)/bin/pip install --quiet --disable-pip-version-check \
		"pyjwt[crypto]>=2.8" "standardwebhooks>=1.0"
	touch $@

# cargo deny check (deny.toml) against the RustSec advisory snapshot, offline, and the proof
# that a new advisory fails it (tools/deny.sh); CI runs it.
deny: deny-tools
	tools/deny.sh

# cargo-deny and cargo-auditable from crates.io, installed when missing.
CARGO_DENY_VERSION = 0.20.2
CARGO_AUDITABLE_VERSION = 0.7.7
deny-tools:
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny@$(CARGO_DENY_VERSION)

audit-tools:
	@command -v cargo-auditable >/dev/null || \
	  $(CARGO) install --locked cargo-auditable@$(CARGO_AUDITABLE_VERSION)

# Release builds record their dependency tree in the binary (cargo auditable), which
# scanners (`cargo audit bin`, syft, trivy) read from it and from the image.
RELEASE_BUILD = $(CARGO) auditable build --release --workspace

# The OCI image auth-host:<version> (tools/image.sh: FROM scratch, podman import), and the
# test of it as an operator runs it (tools/image-test.sh); CI runs the test.
image: image-tools audit-tools
	$(RELEASE_BUILD)
	tools/image.sh

image-test: image verifiers
	tools/image-test.sh

# podman and runc from the system packages, installed when missing.
image-tools:
	@command -v podman >/dev/null && command -v runc >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq podman runc >/dev/null; }

bench: bench-tools audit-tools verifiers
	$(RELEASE_BUILD)
	DB=$(DB) tools/bench.sh

# wrk, openssl and GNU time from the system packages, installed when missing.
bench-tools:
	@command -v wrk >/dev/null && command -v openssl >/dev/null && [ -x /usr/bin/time ] || \
	  { apt-get update -qq && apt-get install -y -qq wrk openssl time >/dev/null; }

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p auth-host-plugin-api --features testing --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
