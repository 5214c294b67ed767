GO       ?= go
# The toolchain go.mod names (Go 1.27: encoding/json runs on json/v2; fetched through the Go module
# proxy when the machine's Go is older). GOTOOLCHAIN in the environment wins.
export GOTOOLCHAIN ?= go1.27.3
BIN      ?= bin/switchboard
DATA_DIR ?= .switchboard
PKGS     ?= ./...
# staticcheck, pinned; `go run` fetches it through the Go module proxy (checksummed) and caches the build.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# VERSION is what `switchboard --version` prints (default: git describe).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)

.PHONY: build run test bench bench-e2e soak lint clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/switchboard

## run: all-in-one broker (embedded NATS, gateway on :8080, workers, ingester);
## demo providers when no API keys are set, local ClickHouse when installed.
run: build
	$(BIN) up --data-dir $(DATA_DIR) $(ARGS)

## test: the full suite against real in-process NATS and a throwaway ClickHouse;
## ends with a summary of skipped tests and why (CI=true makes a missing
## dependency fail instead of skip).
test:
	$(GO) test -count=1 -timeout 20m -json $(PKGS) | $(GO) run ./internal/testsummary

## bench: latency and throughput benchmarks (ratios measured side by side).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m $(PKGS)

## bench-e2e: the README's end-to-end figures as a user would measure them (`up` + `mock`,
## loaded by `submit` and `bench`); BINS="old new" alternates builds round by round.
bench-e2e: build
	.ci/bench-e2e $(or $(BINS),$(BIN))

## soak: BenchmarkSoak alone (60k jobs, ~10 min): RSS and stream/KV counts per 10k jobs.
soak:
	$(GO) test -run '^$$' -bench Soak -benchtime 1x -timeout 30m ./broker/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

clean:
	rm -rf bin $(DATA_DIR)
