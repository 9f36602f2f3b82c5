# The README's two commands: `go run ./cmd/roomcast` serves, `make test` tests.
GO ?= go

.PHONY: test deps vet unit fuzz build vulncheck

# test installs what the tests need, then runs every test with the race
# detector, the spec checks, and short fuzz runs.
test: deps vet unit fuzz vulncheck

# deps: Go modules, and Debian's chromium for the browser tests of web/
# (cmd/roomcast/web_test.go fails, not skips, without it). CI runs as root.
deps:
	command -v chromium >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	$(GO) mod download

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# Short fuzz runs of the encoders and request parsers (their seed corpora
# also run in unit). FUZZTIME bounds each target; -fuzzminimizetime caps the
# minimization of each new input, which otherwise can eat a whole run.
FUZZTIME ?= 10s
FUZZ_TARGETS = \
	./internal/hub:FuzzEncodeBody \
	./internal/hub:FuzzParseResume \
	./internal/hub:FuzzValidNames \
	./api:FuzzPublishBody \
	./api:FuzzRequestBodies \
	./internal/auth:FuzzVerify \
	./sse:FuzzSSEFrame

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; \
	done

# vulncheck: govulncheck against the Go vulnerability database, fetched as a
# module from the Go module proxy (no other network is needed).
vulncheck:
	./.ci/vulncheck.sh

build:
	$(GO) build -o bin/roomcast ./cmd/roomcast
