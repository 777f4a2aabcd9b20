package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy"
)

// TestMain lets this test binary be the policy answering process that `roster serve`,
// run in process by the tests, starts from its own executable.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == policy.AnswererCommand {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(exitCode(err, os.Stderr))
	}
	os.Exit(m.Run())
}
