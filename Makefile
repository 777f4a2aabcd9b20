# roster — make test runs every test (installing slapd, ldap-utils, chromium if missing);
# make bench runs the benchmarks and writes bench-results/.
GO ?= go

.PHONY: test deps vet bench bench-policy run

test: deps vet
	$(GO) test -count=1 -timeout 14m ./...

deps:
	@./.ci/install-deps

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

run:
	$(GO) run ./cmd/roster apply

# bench: Go benchmarks of every package (400k-entry sizes included), then the end-to-end
# run for N = 50,000 and 400,000 with both profiles: the simple one (beside ldapsearch on a
# test slapd, the same people from an LDIF file, and a mixed run of 200,000 LDIF people +
# 200,000 CSV users) and the realistic one (a Pexip-style template with emails on, CSV
# users and invitations, beside ldapsearch). Sizes: ROSTER_BENCH_SIZES, ROSTER_BENCH_MIXED
# (0 skips); ROSTER_BENCH_PROFILES=simple or realistic runs one; ROSTER_BENCH_PROFILE_DIR
# receives CPU profiles of the realistic apply and plan. Results land in bench-results/
# (bench.txt, e2e.txt, e2e.json with the realistic rows under "realistic"). Then serve on
# 50,000 people over slapd with syncprov: ldapmodify of one sn → the VMR's email at the SMTP
# server within 2 s (sync-e2e.txt); then bench-policy. Takes 30-35 min.
bench: deps
	@mkdir -p bench-results
	ROSTER_BENCH_N=400000 ROSTER_BENCH_LDAP=1 $(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 60m ./... | tee bench-results/bench.txt
	ROSTER_BENCH=1 ROSTER_BENCH_PROFILES=$${ROSTER_BENCH_PROFILES:-simple,realistic} ROSTER_BENCH_OUT=$(CURDIR)/bench-results/e2e.json $(GO) test -run TestEndToEndBench -v -timeout 60m ./cmd/roster | tee bench-results/e2e.txt
	ROSTER_BENCH=1 $(GO) test -count=1 -run 'TestServeLDAPChangeEmailedInSeconds|TestPropertyIncrementalEqualsFullSlapd' -v -timeout 20m ./cmd/roster ./reconcile | tee bench-results/sync-e2e.txt
	$(MAKE) bench-policy

# bench-policy: the policy load benchmark alone (issue 19): `roster serve` with 400,000
# rooms answers a fake conferencing node sending 2,000 requests/s on loopback (open loop)
# while a full apply changing every room runs; prints p50/p99/p99.9/max, errors, mixed
# answers, the server-side histogram and a per-second timeline. Sizes:
# ROSTER_BENCH_POLICY_ROOMS, _RATE, _SECONDS; ROSTER_BENCH_POLICY_PROFILE=FILE writes the
# daemon's CPU profile. Results: bench-results/policy.txt, policy.json, policy-serve.log.
bench-policy:
	@mkdir -p bench-results
	ROSTER_BENCH_POLICY=1 ROSTER_BENCH_POLICY_OUT=$(CURDIR)/bench-results/policy.json $(GO) test -count=1 -run '^TestPolicyApplyLoad$$' -v -timeout 60m ./cmd/roster | tee bench-results/policy.txt
