# procwatch — see README.md. `make run` builds and starts the agent on
# 127.0.0.1:8754; `make test` is what CI runs.

# Recipes run under bash with pipefail, so `cmd | tee file` fails when cmd does.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -ec

GO        ?= go
BIN       := bin/procwatch
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
ARGS      ?=
FUZZTIME  ?= 30s
SEEDTIME  ?= 3s

PREFIX    ?= /usr/local
UNITDIR   ?= /etc/systemd/system

.PHONY: all build run install test vet fuzz-seeds fuzz soak bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/procwatch

run: build
	./$(BIN) $(ARGS)

# The binary and the hardened systemd unit (deploy/procwatch.service).
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/procwatch
	install -D -m 0644 deploy/procwatch.service $(DESTDIR)$(UNITDIR)/procwatch.service

# vet, the whole suite under the race detector (unit tests on testdata/
# fixtures and integration tests against processes the tests spawn), then a
# short fuzzing run of every fuzz target from its seed corpus.
test: vet
	$(GO) test -race -count=1 -timeout 8m ./...
	$(MAKE) fuzz-seeds FUZZTIME=$(SEEDTIME)

vet:
	$(GO) vet ./...

# Each fuzz target for FUZZTIME; crashers land in the package's
# testdata/fuzz/<Target>/ and become seeds.
fuzz-seeds fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Every benchmark side by side with its peers; bench/results/ keeps the raw
# output (benchstat-friendly), and the table is printed at the end. Spawns up
# to 5,000 idle processes (killed by PID) and runs the agent for two minutes.
BENCHCOUNT ?= 3
# The long versions of the reliability suites (minutes): a 60 s fork storm,
# 30 s of 64 clients against 5,000 extra processes, SIGTERM after 20 s of load.
# One package at a time (-p 1), so one suite's processes do not skew another's figures.
soak:
	PROCWATCH_SOAK=1 $(GO) test -p 1 -count=1 -v -timeout 30m -run 'TestLoad|ForkStorm|SIGTERMUnderLoad|SlowAndVanishing' ./api/ ./cmd/procwatch/

bench:
	mkdir -p bench/results
	$(GO) test -run '^$$' -bench 'BenchmarkSample$$' -benchmem -benchtime 200x -count $(BENCHCOUNT) ./sampler/ | tee bench/results/sampler.txt
	$(GO) test -run '^$$' -bench . -benchmem ./history/ | tee bench/results/history.txt
	cd bench && $(GO) test -run '^$$' -bench FullSample -benchmem -benchtime 10x -count $(BENCHCOUNT) -timeout 30m . | tee results/full.txt
	cd bench && $(GO) test -run '^$$' -bench API -benchtime 3s -count $(BENCHCOUNT) . | tee results/api.txt
	cd bench && $(GO) test -run '^$$' -bench AgentOverhead -benchtime 1x -timeout 30m . | tee results/overhead.txt
	cd bench && cat results/*.txt | $(GO) run ./cmd/benchtable

clean:
	rm -rf bin
