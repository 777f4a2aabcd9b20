package policytest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/roster-dev/roster/reconcile/policy"
)

// RunAnswererIfAsked, called first in a TestMain, lets a test binary be the answering
// process a policy.Supervisor starts from its own executable: when started as
// `policy-answer` it runs policy.RunAnswerer and exits; otherwise it returns.
func RunAnswererIfAsked() {
	if len(os.Args) < 2 || os.Args[1] != policy.AnswererCommand {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	err := policy.RunAnswerer(ctx, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
