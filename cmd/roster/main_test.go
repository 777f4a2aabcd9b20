package main

import (
	"os"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// TestMain lets this test binary be the policy answering process that `roster serve`,
// run in process by the tests, starts from its own executable.
func TestMain(m *testing.M) {
	policytest.RunAnswererIfAsked()
	os.Exit(m.Run())
}
