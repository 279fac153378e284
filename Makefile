# airmesh front door. `make run` and `make test` are the two commands a newcomer needs.
# Everything builds with Bazel (offline); this file only orders the steps.
BAZEL ?= bazel
BINS  := airmeshd airmesh-runner airmeshctl
DATA  ?= ./var/airmesh

.PHONY: all deps build run test bench clean help

all: build

help:
	@echo "make run    install missing packages, build, start airmeshd on https://127.0.0.1:8443"
	@echo "make test   install missing packages, run every test (unit, integration, browser)"
	@echo "make build  build everything and link the binaries into ./bin/"
	@echo "make bench  run the benchmarks (ratios against a baseline measured in the same run)"

deps:
	@scripts/deps.sh

build: deps
	@$(BAZEL) build -c opt //...
	@mkdir -p bin
	@install -m 0755 bazel-bin/appliance/airmeshd bazel-bin/appliance/airmeshctl bin/
	@install -m 0755 bazel-bin/runner/airmesh-runner bin/
	@echo "built: bin/airmeshd bin/airmesh-runner bin/airmeshctl"

run: build
	@scripts/run.sh $(DATA)

test: deps
	@scripts/test.sh

bench: build
	@scripts/bench.sh

clean:
	-$(BAZEL) clean
	rm -rf bin
