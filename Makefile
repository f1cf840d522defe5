# Conveyor's everyday commands. `make help` lists them.
GO      ?= go
BIN     := bin/conveyor
# The Go release every target builds and tests with: the first without the standard-library
# vulnerabilities `make vulncheck` reports in go1.26.8 (the go command fetches it through the
# module proxy once). An environment variable, so it wins over GOTOOLCHAIN=local in go env.
export GOTOOLCHAIN := go1.26.10

# Tests need git, bash and bubblewrap; scripts/test-deps installs what is missing.
FUZZTIME ?= 10s

# `make vulncheck` runs govulncheck against a local copy of the Go vulnerability database:
# vuln.go.dev is out of reach here and in CI, but its source, the module golang.org/x/vulndb,
# comes through the module proxy, and scripts/vulndb turns it into the database layout.
# To bump either pin, take the version printed by
#   go list -m golang.org/x/vuln@latest      (GOVULNCHECK_VERSION)
#   go list -m golang.org/x/vulndb@latest    (VULNDB_VERSION, a pseudo-version: the data as of that commit)
# and paste it below; the next `make vulncheck` fetches it and rebuilds the cached database.
# After changing scripts/vulndb itself, rm -rf $(VULN_CACHE) to rebuild the database.
GOVULNCHECK_VERSION ?= v1.9.0
VULNDB_VERSION      ?= v0.0.0-20261105234957-e22db6528018
VULN_CACHE          ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/conveyor-vulndb
GOVULNCHECK         := $(abspath $(VULN_CACHE)/govulncheck@$(GOVULNCHECK_VERSION))/govulncheck
VULNDB              := $(abspath $(VULN_CACHE)/vulndb@$(VULNDB_VERSION))

.PHONY: help build run run-once test test-short fuzz bench bench-poll bench-scale vet vulncheck fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

build: ## build bin/conveyor
	$(GO) build -o $(BIN) ./cmd/conveyor

run: build ## start the server with the example pipeline applied and started (Ctrl-C stops it)
	$(BIN) server --data-dir .conveyor --apply examples/webapp/pipeline.yaml --start --sandbox-writable /tmp/conveyor-demo

run-once: build ## run the example pipeline once, in this process, with nothing else (conveyor run)
	$(BIN) run examples/webapp/pipeline.yaml --source Checkout=examples/webapp --approve all

test: ## install what the tests need, then vet, vulncheck, race-test everything and fuzz the parsers briefly
	./scripts/test-deps
	$(GO) vet ./...
	$(MAKE) vulncheck
	CONVEYOR_TEST_REQUIRE=all CONVEYOR_MINIO=$$(scripts/minio) $(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

test-short: ## the unit tests only, fast
	$(GO) test -short ./...

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	GO=$(GO) ./scripts/fuzz $(FUZZTIME) \
		./internal/pipeline:FuzzParse \
		./internal/jsonpath:FuzzJSONPath \
		./internal/artifact:FuzzUnpack \
		./internal/artifact:FuzzUnpackZip \
		./internal/secret:FuzzMasker \
		./internal/artifact:FuzzGlob \
		./internal/keyring:FuzzDecryptReader \
		./internal/webhook:FuzzParse \
		./internal/keyring:FuzzOpen \
		./internal/keyring:FuzzFromEnv \
		./internal/audit:FuzzParseKey \
		./internal/api:FuzzParsePHC \
		./internal/api:FuzzAPIAuthorization \
		./internal/api:FuzzAPIStart \
		./internal/api:FuzzAPIApproval \
		./internal/api:FuzzAPIPutPipeline \
		./internal/api:FuzzAPIRequest \
		./internal/report:FuzzParse \
		./internal/action/codebuild:FuzzParse \
		./internal/action/source/git:FuzzParseAdvertisement

bench: ## run the benchmarks B1-B6 and print their figures with their baselines
	$(GO) test -p 1 -run '^$$' -bench 'B1[A-Z]|B2|B3|B4|B5|B6' -benchtime 1x -count 5 -timeout 60m ./bench/ ./internal/artifact/

bench-poll: ## run B7 (500 Git sources polled every 10 s: CPU and git processes), about 2 minutes a run
	$(GO) test -p 1 -run '^$$' -bench 'B7' -benchtime 1x -count 3 -timeout 30m ./bench/

bench-scale: ## run the scale-out benchmarks B8-B10 (PostgreSQL: testenv starts one, or they skip)
	$(GO) test -p 1 -run '^$$' -bench 'B8|B9|B10' -benchtime 1x -count 3 -timeout 60m ./bench/

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'run: gofmt -w .'; exit 1; }

vulncheck: $(GOVULNCHECK) $(VULNDB)/index/db.json ## fail if the code calls anything with a known vulnerability (govulncheck, offline)
	@GOWORK=off $(GO) -C scripts/vulndb vet ./... && GOWORK=off $(GO) -C scripts/vulndb test ./...
	@echo "vulncheck: govulncheck $(GOVULNCHECK_VERSION), database golang.org/x/vulndb@$(VULNDB_VERSION)"
	@rc=0; $(GOVULNCHECK) -db file://$(VULNDB) ./... || rc=$$?; \
	if [ $$rc -eq 3 ]; then \
	  echo; \
	  echo "vulncheck: FAILED: Conveyor calls code that has the known vulnerabilities listed above."; \
	  echo "  A module: upgrade it to its 'Fixed in' version: go get MODULE@FIXED && go mod tidy, then make test."; \
	  echo "  The standard library (stdlib): build with a Go release at or past 'Fixed in': install it here and in CI"; \
	  echo "    (try it first with: GOTOOLCHAIN=go1.X.Y make vulncheck; go env sets GOTOOLCHAIN=local, so a toolchain line in go.mod alone does not switch)."; \
	  echo "  No fix yet: avoid the call shown in the trace, or remove the dependency."; \
	  echo "  Details: https://pkg.go.dev/vuln/ID. To see every trace: $(GOVULNCHECK) -db file://$(VULNDB) -show traces ./..."; \
	elif [ $$rc -ne 0 ]; then \
	  echo "vulncheck: govulncheck failed to run (exit status $$rc), see above; this is not a vulnerability finding."; \
	fi; exit $$rc

# govulncheck, at the pinned version, in its own directory (not whichever one is on PATH).
$(GOVULNCHECK):
	rm -rf $(VULN_CACHE)/govulncheck@*
	cd / && GOWORK=off GOBIN=$(@D) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

# The database, built once per VULNDB_VERSION; scripts/vulndb replaces the directory only when it is complete.
$(VULNDB)/index/db.json:
	@echo "vulncheck: building the vulnerability database golang.org/x/vulndb@$(VULNDB_VERSION) in $(VULNDB)"
	@mkdir -p $(VULN_CACHE) && rm -rf $(VULN_CACHE)/vulndb@*
	@json=$$(cd $(VULN_CACHE) && GOWORK=off $(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION)) || \
	  { echo "$$json"; echo "vulncheck: cannot download golang.org/x/vulndb@$(VULNDB_VERSION) from the module proxy ($$($(GO) env GOPROXY))"; exit 1; }; \
	dir=$$(printf '%s\n' "$$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$$/\1/p'); \
	test -n "$$dir" || { echo "$$json"; echo "vulncheck: go mod download printed no Dir"; exit 1; }; \
	GOWORK=off $(GO) -C scripts/vulndb run . -o $(VULNDB) "$$dir"

fmt: ## gofmt every file
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf bin
