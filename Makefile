# roster — make test runs every test (installing slapd, ldap-utils, chromium if missing);
# make bench runs the benchmarks and writes bench-results/.
GO ?= go

.PHONY: test deps vet bench run

test: deps vet
	$(GO) test -count=1 -timeout 14m ./...

deps:
	@./.ci/install-deps

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

run:
	$(GO) run ./cmd/roster apply

bench: deps
	@mkdir -p bench-results
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 60m ./... | tee bench-results/bench.txt
