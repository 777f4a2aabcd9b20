// Command roster keeps a conferencing platform's accounts — VMRs, device aliases, users,
// tracking codes, invitations — in step with a Git repository and an LDAP directory.
//
// main parses flags, builds the configuration and hands over: every command that plans or
// changes the state runs reconcile/pipeline (source → plan → guard → apply → deliver), and
// `roster serve` runs reconcile/daemon. A subcommand is an entry of the commands table, its
// flags named there, its body `func runX(ctx, *app, rest) error`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/roster-dev/roster/reconcile/policy"
)

// gcPercent is the garbage collector's target unless GOGC says otherwise. roster's big
// heaps are packed desired objects in pointer-free chunks (reconcile/pack.go), which a
// collection does not trace: collecting at half the live heap again instead of all of
// it costs little CPU and keeps a first apply of 400,000 people under 512 MiB.
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile()
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// startProfile writes a CPU profile to $ROSTER_CPUPROFILE and a heap profile to
// $ROSTER_MEMPROFILE (for `go tool pprof`) when those are set.
func startProfile() (stop func()) {
	cpu, mem := os.Getenv("ROSTER_CPUPROFILE"), os.Getenv("ROSTER_MEMPROFILE")
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem != "" {
			if m, err := os.Create(mem); err == nil {
				pprof.WriteHeapProfile(m)
				m.Close()
			}
		}
	}
}

// exitError carries an exit code without an error message (plan --detailed-exitcode).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func exitCode(err error, stderr io.Writer) int {
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintln(stderr, "roster: "+err.Error())
	return 1
}

const usage = `roster keeps conferencing accounts in step with a Git repository and a directory.

Usage:
  roster validate [--repo DIR]
  roster plan     [--repo DIR] [--format text|json|markdown] [--out FILE] [--detailed-exitcode] [--show-secrets]
  roster apply    [--repo DIR] [--plan FILE] [--allow-deletions N] [--allow-emails N] [--no-send]
  roster serve
  roster remind   [--repo DIR] (--template NAME | --vmr NAME | --device ALIAS)...
  roster notify users [--repo DIR]
  roster invites accept EMAIL
  roster export users [--delimiter comma|tab] [--out FILE]
  roster status   [--format text|json]
  roster outbox   drop|retry ID
  roster platform check          (drift on Pexip: exit 0 none, 2 drift, repaired by the next apply)
  roster platform adopt [--repo DIR] [--apply]   (take over matching objects on Pexip; dry run without --apply)

Every command takes --config FILE (default ./config.cue, or $ROSTER_CONFIG),
--log-level debug|info|warn|error and --log-format text|json.
`

// command is a subcommand: what it runs, the flags it takes besides the common ones (their
// values land in app.opt) and how many positional arguments at most.
type command struct {
	run        func(ctx context.Context, a *app, rest []string) error
	flags      string
	positional int
}

var commands = map[string]command{
	"validate": {runValidate, "repo", 0},
	"plan":     {runPlan, "repo format out detailed-exitcode show-secrets", 0},
	"apply":    {runApply, "repo plan allow-deletions allow-emails no-send format show-secrets", 0},
	"status":   {runStatus, "format", 0},
	"export":   {runExport, "delimiter out", 1},
	"remind":   {runRemind, "repo template vmr device invite no-send allow-emails", 0},
	"notify":   {runNotify, "repo no-send allow-emails", 1},
	"invites":  {runInvites, "", 2},
	"serve":    {runServe, "once", 0},
	"outbox":   {runOutbox, "", 2},
	"platform": {runPlatform, "repo apply", 1},
}

// Run runs roster with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if args[0] == policy.AnswererCommand { // hidden: started by `roster serve` in policy mode
		return policy.RunAnswerer(ctx, stderr)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q; run `roster help` for the list", args[0])
	}
	a := &app{stdout: stdout, stderr: stderr}
	rest, err := a.parse(args[0], cmd, args[1:])
	if err != nil {
		return err
	}
	defer a.close()
	return cmd.run(ctx, a, rest)
}
