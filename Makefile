# The README's two commands: `go run ./cmd/roomcast` serves, `make test` tests.
GO ?= go

.PHONY: test deps vet unit fuzz fault build bench-micro bench-short bench vulncheck generate-check ts-client js-client spec-tools mutation

# test installs what the tests need, then runs every test with the race
# detector, the spec checks, short fuzz runs, and the load generator's
# short mode.
test: deps vet unit fuzz bench-micro bench-short vulncheck generate-check ts-client js-client spec-tools

# deps: Go modules (the server's, and those of tools/ogen: the ogen
# generator and the packages its code imports), Debian's chromium for the
# browser tests of web/ (cmd/roomcast/web_test.go fails, not skips, without
# it), curl for the README's curl session (cmd/roomcast/readme_test.go
# runs it) and iproute2's ip for the fault suite's network partitions
# (internal/fault/netns.go; skipped, saying so, without root or ip). The
# fault suite builds nats-server from the module cache that go mod
# download fills. CI runs as root.
deps:
	command -v chromium >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium curl iproute2)
	$(GO) mod download
	cd tools/ogen && $(GO) mod download

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# fault runs the long scenarios of the fault suite (internal/fault: kill -9
# loop, disk full, slow bodies; the cluster's partitions (as root), SIGSTOP,
# kill -9 of a node, a first start with two nodes of three, an external
# nats-server stopped; about 30 minutes, the disk-full and partition ones
# as root) and prints their figures, which README.md's Reliability and
# Cluster sections report. FAULT_RUN narrows it (a -run pattern, e.g.
# 'TestFault(Cluster|External)'); FAULT_HISTORY_DIR keeps each run's
# history (JSON) and server logs there. Their short versions run in unit
# (about three minutes).
FAULT_RUN ?= ^TestFault
fault:
	$(GO) test -count=1 -timeout 60m -v -run '$(FAULT_RUN)' ./internal/fault -fault.long

# Short fuzz runs of the encoders and request parsers (their seed corpora
# also run in unit). Each target has an execution budget (about ten seconds
# of this machine each), not a duration: a duration -fuzztime races the Go
# fuzz coordinator's shutdown and can fail with a bare "context deadline
# exceeded" under load (golang/go#75804, fixed in Go 1.27); a count cannot.
# FUZZSCALE multiplies every budget; -fuzzminimizetime caps the minimization
# of each new input, which otherwise can eat a whole run.
FUZZSCALE ?= 1
FUZZ_TARGETS = \
	./internal/hub:FuzzEncodeBody:300000 \
	./internal/hub:FuzzParseResume:300000 \
	./internal/hub:FuzzValidNames:300000 \
	./internal/hub:FuzzWellFormedAckID:100000 \
	./api:FuzzPublishBody:15000 \
	./api:FuzzBatchBody:15000 \
	./api:FuzzRequestBodies:30000 \
	./internal/auth:FuzzVerify:200000 \
	./internal/auth:FuzzMatch:300000 \
	./internal/webhook:FuzzVerify:60000 \
	./sse:FuzzSSEFrame:60000

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$$(( $${rest##*:} * $(FUZZSCALE) )); \
	  echo "fuzz $$name in $$pkg for $$n executions"; \
	  $(GO) test -run '^$$$$' -fuzz "^$$name\$$$$" -fuzztime $${n}x -fuzzminimizetime 2s $$pkg; \
	done

# vulncheck: govulncheck against the Go vulnerability database, fetched as a
# module from the Go module proxy (no other network is needed).
vulncheck:
	./.ci/vulncheck.sh

build:
	$(GO) build -o bin/roomcast ./cmd/roomcast

# bench-micro runs every testing.B benchmark once (-benchtime 1x), so that
# none can rot between the runs of BENCHMARKS.md: a benchmark that fails
# (b.Fatal) fails the build; their figures here are not measurements. About
# 35 s, most of it the 3-node cluster of BenchmarkPublishToDeliver.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./...

# bench-short runs every roomcast-bench scenario small (a few seconds each,
# well under a minute in all) against roomcast and the reference server, so
# that the bench cannot rot: it fails when a scenario does not complete or
# loses, duplicates or reorders a message, and asserts nothing about speed.
# The summary goes to stderr; the JSON lines are dropped.
bench-short:
	$(GO) build -o bin/roomcast ./cmd/roomcast
	$(GO) build -o bin/roomcast-bench ./cmd/roomcast-bench
	./bin/roomcast-bench --short >/dev/null

# bench runs the targets of BENCHMARKS.md (minutes; best on a quiet machine)
# and keeps the JSON lines and CPU profiles in bin/bench-out/.
BENCHFLAGS ?= --repeat 3
bench:
	$(GO) build -o bin/roomcast ./cmd/roomcast
	$(GO) build -o bin/roomcast-bench ./cmd/roomcast-bench
	mkdir -p bin/bench-out
	./bin/roomcast-bench $(BENCHFLAGS) --profile-dir bin/bench-out --out bin/bench-out/results.jsonl

# generate-check fails when a generated client is stale. It runs
# api/client's go:generate directive (the pinned oapi-codegen) on copies of
# the package's doc.go and cfg.yaml and of openapi.yaml in a temp module, and
# diffs the result with the committed client.gen.go. Fix: go generate ./api/client
generate-check:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir -p "$$tmp/api/client"; \
	cp openapi.yaml "$$tmp/"; cp api/client/doc.go api/client/cfg.yaml "$$tmp/api/client/"; \
	printf 'module generatecheck\n\ngo 1.26\n' > "$$tmp/go.mod"; \
	(cd "$$tmp" && $(GO) generate ./api/client); \
	if ! diff -u api/client/client.gen.go "$$tmp/api/client/client.gen.go"; then \
	  echo "api/client/client.gen.go is stale: run go generate ./api/client and commit it"; exit 1; \
	fi; \
	echo "generate-check: api/client/client.gen.go is up to date"

# ts-client: the TypeScript client (clients/ts) against the real server.
# npm ci installs the locked tools; redocly lints openapi.yaml (rules in
# redocly.yaml); openapi-typescript generates src/schema.d.ts from it; tsc
# type-checks and builds the program; with-server.sh starts bin/roomcast on a
# free loopback port with a temp data dir, runs the program (publish, join,
# history, at most 60 s) and stops the server.
ts-client:
	cd clients/ts && npm ci --no-audit --no-fund --loglevel=error
	cd clients/ts && npm run --silent lint
	cd clients/ts && npm run --silent generate && npm run --silent typecheck && npm run --silent build
	$(GO) build -o bin/roomcast ./cmd/roomcast
	./clients/ts/with-server.sh bin/roomcast node clients/ts/dist/main.js

# js-client: the browser SDK's package (clients/js). npm ci installs the
# locked TypeScript; tsc checks roomcast.d.ts against test/usage.ts (the whole
# API, and misuses that must not compile); test/exports.mjs checks that
# roomcast.js exports what the declarations declare; test/pack.mjs what npm
# pack would publish. The SDK's browser tests run in unit
# (cmd/roomcast/sdk_web_test.go).
js-client:
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error
	cd clients/js && npm run --silent check

# spec-tools: openapi.yaml, unmodified, against OpenAPI tools the project does
# not otherwise use, so that it stays readable by every tool:
# - Spectral (spectral:oas ruleset; tools/spec/.spectral.yaml) with 0 errors;
# - ogen, a second Go generator (pinned in tools/ogen/go.mod): it generates a
#   client and a server into a temp copy of tools/ogen (never committed),
#   which must compile, and tools/ogen/main.go uses that client against a
#   live server;
# - Prism's validating proxy: tools/spec/prism-check.mjs sends about 60 real
#   requests (every operation, success and error answers) through it to a
#   live server and fails on any violation of an answer, on a valid request
#   flagged, or on a spec-breaking request not flagged.
# npm ci installs the locked tools (tools/spec/package-lock.json); the live
# servers are bin/roomcast on free loopback ports (clients/ts/with-server.sh).
spec-tools:
	cd tools/spec && npm ci --no-audit --no-fund --loglevel=error
	cd tools/spec && npm run --silent lint
	$(GO) build -o bin/roomcast ./cmd/roomcast
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp tools/ogen/go.mod tools/ogen/go.sum tools/ogen/main.go "$$tmp/"; \
	(cd "$$tmp" && $(GO) tool ogen --target api --package api --clean "$(CURDIR)/openapi.yaml" >ogen.log 2>&1) || \
	  { cat "$$tmp/ogen.log"; echo "ogen refuses openapi.yaml"; exit 1; }; \
	(cd "$$tmp" && $(GO) vet ./... && $(GO) build -o ogencheck .); \
	echo "spec-tools: ogen generated a client and a server that compile"; \
	./clients/ts/with-server.sh bin/roomcast "$$tmp/ogencheck"
	WITH_SERVER_TIMEOUT=180 ./clients/ts/with-server.sh bin/roomcast node tools/spec/prism-check.mjs

# mutation: mutation testing with gremlins, run from the Go module proxy
# (GREMLINS, pinned). Not part of test: it takes minutes per package. Each
# package of PKGS (make mutation PKGS=./internal/auth) is mutated and run
# against its own tests only, one test run at a time, and stopped after
# MUTATION_TIMEOUT. It prints every mutant that survived (LIVED) or that no
# test executes (NOT COVERED), then per package the efficacy (killed of
# executed mutants) and the mutants executed (executed of all found), and
# the time taken. Full listings: bin/mutation/<package>.txt and .json.
# Files in subdirectories are left out (--exclude-files /): they are other
# packages (api/client, generated, would add a thousand unexecuted mutants).
# Gremlins times each mutant's test run out at 2 s plus
# MUTATION_TIMEOUT_COEFFICIENT times its first (coverage) run, which
# GOFLAGS=-count=1 keeps out of Go's test cache. That first run reuses a
# cached build (0.3 s for internal/hub) while each mutant's recompiles and
# links: with gremlins' 3, or 5, or 10, 17 to 73 mutants timed out per
# package on this shared 2-core machine under load, hence 30.
# It fails when gremlins fails or runs out of time.
GREMLINS ?= github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
PKGS ?= ./internal/hub ./internal/auth ./api
MUTATION_TIMEOUT ?= 30m
MUTATION_WORKERS ?= 1
MUTATION_TIMEOUT_COEFFICIENT ?= 30
mutation:
	@mkdir -p bin/mutation; status=0; summary=""; \
	for p in $(PKGS); do \
	  out=bin/mutation/$$(echo "$$p" | sed 's|^\./||; s|/|-|g'); start=$$(date +%s); \
	  echo "mutation $$p (at most $(MUTATION_TIMEOUT); listing in $$out.txt)"; \
	  GOFLAGS="$$GOFLAGS -count=1" timeout $(MUTATION_TIMEOUT) $(GO) run $(GREMLINS) unleash --workers $(MUTATION_WORKERS) --timeout-coefficient $(MUTATION_TIMEOUT_COEFFICIENT) --exclude-files / -o $$out.json $$p >$$out.txt 2>&1; rc=$$?; \
	  secs=$$(( $$(date +%s) - start )); \
	  grep -E '^ *(LIVED|NOT COVERED|TIMED OUT) ' $$out.txt | sed "s|^ *|  $$p: |"; \
	  counts=$$(sed -n 's/^Killed: \([0-9]*\), Lived: \([0-9]*\), Not covered: \([0-9]*\).*/\1 \2 \3/p' $$out.txt); \
	  if [ $$rc -ne 0 ] || [ -z "$$counts" ]; then \
	    line="$$p: gremlins failed (exit $$rc; 124 is MUTATION_TIMEOUT) after $${secs} s, see $$out.txt"; status=1; \
	  else \
	    set -- $$counts; \
	    eff=$$(sed -n 's/^Test efficacy: //p' $$out.txt); cov=$$(sed -n 's/^Mutator coverage: //p' $$out.txt); \
	    tmo=$$(sed -n 's/^Timed out: \([0-9]*\),.*/\1/p' $$out.txt); \
	    line="$$p: efficacy $$eff ($$1 killed, $$2 lived), mutants executed $$cov ($$(( $$1 + $$2 )) of $$(( $$1 + $$2 + $$3 )); $$tmo timed out, counted in neither), $${secs} s"; \
	  fi; \
	  echo "$$line"; summary="$$summary$$line\n"; \
	done; \
	printf '\nmutation summary:\n%b' "$$summary"; exit $$status
