# procwatch — see README.md. `make run` builds and starts the agent on
# 127.0.0.1:8754; `make test` is what CI runs.

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

.PHONY: all build run install test vet fuzz-seeds fuzz bench clean

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200x ./sampler/

clean:
	rm -rf bin
