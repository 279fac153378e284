# airmesh front door. `make run` and `make test` are the two commands a newcomer needs.
# Everything builds with Bazel (offline); this file only orders the steps.
BAZEL ?= bazel
BINS  := airmeshd airmesh-runner airmeshctl
DATA  ?= ./var/airmesh

.PHONY: all deps ui test-clients agents build run test bench clean help image

all: build

help:
	@echo "make run    install missing packages, build, start airmeshd on https://127.0.0.1:8443"
	@echo "make test   install missing packages, run every test (unit, integration, browser)"
	@echo "make build  build everything and link the binaries into ./bin/"
	@echo "make bench  run the benchmarks (ratios against a baseline measured in the same run)"
	@echo "make image  build the flashable appliance disk image bin/airmesh-<version>-amd64.img (root)"

deps:
	@scripts/deps.sh

# The console (ui/): TypeScript + xterm.js bundled by esbuild into ui/dist/. npm ci runs only
# when node_modules is older than the lock file (npm keeps its own copy of the lock there).
ui: deps ui/node_modules/.package-lock.json
	@cd ui && npm run build --silent

ui/node_modules/.package-lock.json: ui/package-lock.json ui/package.json
	@cd ui && npm ci --no-audit --no-fund
	@touch $@

# The official OpenAI/Anthropic npm clients that tests/model_server's test drives against the
# scripted test model server (test-only; same npm ci rule as ui/).
test-clients: deps tests/model_server/node_modules/.package-lock.json

tests/model_server/node_modules/.package-lock.json: tests/model_server/package-lock.json \
		tests/model_server/package.json
	@cd tests/model_server && npm ci --no-audit --no-fund
	@touch $@

# Real agent CLIs for tests/integration/agent_test.py (tests/agents/package-lock.json), installed
# once into a cache dir outside the repo keyed by the lock file (~390 MB): scripts/agents.sh.
agents: deps
	@scripts/agents.sh >/dev/null

build: deps ui
	@$(BAZEL) build -c opt //...
	@mkdir -p bin
	@install -m 0755 bazel-bin/appliance/airmeshd bazel-bin/appliance/airmeshctl bin/
	@install -m 0755 bazel-bin/runner/airmesh-runner bazel-bin/runner/airmesh-notify bin/
	@install -m 0755 bazel-bin/runner/airmesh-mcp bin/
	@echo "built: bin/airmeshd bin/airmesh-runner bin/airmesh-notify bin/airmesh-mcp bin/airmeshctl"

run: build
	@scripts/run.sh $(DATA)

test: deps ui test-clients agents
	@scripts/test.sh

bench: build
	@scripts/bench.sh

# The appliance disk image (image/README.md): release binaries from Bazel (//image:bins), the
# disk from image/build.sh, reused from /var/cache/airmesh-image when the inputs are unchanged.
image: deps ui
	@$(BAZEL) build //image:bins
	@d=$$(image/cache.sh --bins bazel-bin/image/bins --ui ui/dist) && mkdir -p bin && \
	  for f in "$$d"/airmesh-*; do cp --sparse=always "$$f" bin/; done && \
	  echo "built: $$(ls bin/airmesh-*.img) (+ .manifest.json); from $$d"

clean:
	-$(BAZEL) clean
	rm -rf bin ui/dist
