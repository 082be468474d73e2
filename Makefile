# hwfido — hardware-backed FIDO server. `make` lists the targets.
SHELL        := /bin/bash
GO           ?= go
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# cgo is required: miekg/pkcs11 dlopens the PKCS#11 module and go-sqlite3 is a cgo package.
export CGO_ENABLED := 1
BIN          := bin
LDFLAGS      := -X main.Version=$(VERSION)
# Debian packages the tests and the demo need; installed only when missing.
DEBS         := softhsm2 opensc swtpm swtpm-tools chromium chromium-driver
FUZZTIME     ?= 30s
BENCHCOUNT   ?= 6

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the Debian packages the tests and demo need (idempotent)
	@./scripts/install-deps.sh $(DEBS)

.PHONY: build
build: ## build every binary into ./bin
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: test
test: deps ## run every test: unit, fuzz seeds, SoftHSM, swtpm, end-to-end (what CI runs)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m ./...

.PHONY: test-short
test-short: deps ## the quick subset (no end-to-end processes)
	$(GO) test -short -count=1 ./...

.PHONY: bench
bench: deps ## run the benchmarks (medians over BENCHCOUNT runs) — see BENCHMARKS.md
	./scripts/bench.sh $(BENCHCOUNT)

.PHONY: fuzz
fuzz: ## run every Fuzz target for FUZZTIME each
	./scripts/fuzz.sh $(FUZZTIME)

.PHONY: demo
demo: deps build ## from nothing to a working result: token, keys, server, flows
	./scripts/demo.sh

.PHONY: run
run: deps build ## start the server with the local development config (var/)
	./scripts/run.sh

.PHONY: tidy-check
tidy-check: ## fail if go mod tidy would change go.mod/go.sum
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

.PHONY: clean
clean: ## remove build output and the local state folder
	rm -rf $(BIN) var
