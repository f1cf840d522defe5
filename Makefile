# Conveyor's everyday commands. `make help` lists them.
GO      ?= go
BIN     := bin/conveyor
# Tests need only git and a POSIX shell for now; scripts/test-deps installs what is missing.
FUZZTIME ?= 10s

.PHONY: help build run run-once test test-short fuzz bench vet fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

build: ## build bin/conveyor
	$(GO) build -o $(BIN) ./cmd/conveyor

run: build ## start the server with the example pipeline applied and started (Ctrl-C stops it)
	$(BIN) server --data-dir .conveyor --apply examples/webapp/pipeline.yaml --start

run-once: build ## run the example pipeline once, in this process, with nothing else (conveyor run)
	$(BIN) run examples/webapp/pipeline.yaml --source Checkout=examples/webapp --approve all

test: ## install what the tests need, then vet, race-test everything and fuzz the parsers briefly
	./scripts/test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

test-short: ## the unit tests only, fast
	$(GO) test -short ./...

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/pipeline/
	$(GO) test -run '^$$' -fuzz '^FuzzUnpack$$' -fuzztime $(FUZZTIME) ./internal/artifact/
	$(GO) test -run '^$$' -fuzz '^FuzzMasker$$' -fuzztime $(FUZZTIME) ./internal/secret/

bench: ## run the benchmarks B1-B5 and print their figures with their baselines
	$(GO) test -p 1 -run '^$$' -bench 'B1|B2|B3|B4|B5' -benchtime 1x -count 5 -timeout 60m ./bench/ ./internal/artifact/

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'run: gofmt -w .'; exit 1; }

fmt: ## gofmt every file
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf bin
