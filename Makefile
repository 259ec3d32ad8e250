# Wharf: one static binary (cgo for libcontainer's nsenter), version stamped.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILDTIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.gitCommit=$(COMMIT) -X main.buildTime=$(BUILDTIME) \
             -linkmode external -extldflags "-static"
TAGS      := netgo osusergo
# The same tags for builds and tests, so both share one build cache.
export GOFLAGS := -buildvcs=false -tags=netgo,osusergo
# Tests that need the e2e daemon read this.
export WHARF_BIN := $(CURDIR)/bin/wharf

.PHONY: build test test-short bench images clean

# The small re-exec target for containers and the monitor it becomes once the container runs (pure Go,
# no cgo: it stays for the container's lifetime) are built first and embedded (internal/runtime/shimbin).
SHIM    := internal/runtime/shimbin/payload/wharf-shim
MONITOR := internal/runtime/shimbin/payload/wharf-monitor

build:
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o $(SHIM) ./internal/runtime/cmd/wharf-shim
	CGO_ENABLED=0 $(GO) build -ldflags '-s -w' -o $(MONITOR) ./internal/runtime/cmd/wharf-monitor
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o bin/wharf ./cmd/wharf

# The whole suite: unit tests, then e2e tests against a daemon the tests start (needs root).
test: build
	$(GO) test -count=1 -timeout 40m -p 1 ./...

test-short:
	$(GO) test -short -count=1 ./...

bench: build
	bash bench/run.sh

images:
	bash scripts/base-images.sh

clean:
	rm -rf bin $(SHIM) $(MONITOR)
