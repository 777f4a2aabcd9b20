package policy_test

import (
	"os"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// TestMain lets this test binary be the answering process a Supervisor starts.
func TestMain(m *testing.M) {
	policytest.RunAnswererIfAsked()
	os.Exit(m.Run())
}
