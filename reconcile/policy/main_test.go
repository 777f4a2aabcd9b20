package policy_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy"
)

// TestMain lets this test binary be the answering process a Supervisor starts (it runs
// its own executable with policy.AnswererCommand).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == policy.AnswererCommand {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := policy.RunAnswerer(ctx, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
