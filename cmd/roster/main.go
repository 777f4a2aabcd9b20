// Command roster keeps a conferencing platform's accounts — VMRs, device aliases, users,
// tracking codes, invitations — in step with a Git repository and an LDAP directory.
//
// main only wires the stages together: schema (load + validate) → reconcile (directory,
// render, diff, apply) → state (SQLite) → notify (outbox → email). Each subcommand lives in
// its own file as `func runX(ctx, *app, args) error`.
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

Every command takes --config FILE (default ./config.cue, or $ROSTER_CONFIG),
--log-level debug|info|warn|error and --log-format text|json.
`

// Run runs roster with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	a := &app{stdout: stdout, stderr: stderr}
	cmds := map[string]func(context.Context, *app, []string) error{
		"validate": runValidate,
		"plan":     runPlan,
		"apply":    runApply,
		"status":   runStatus,
		"export":   runExport,
		"remind":   runRemind,
		"notify":   runNotify,
		"invites":  runInvites,
		"serve":    runServe,
		"outbox":   runOutbox,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q; run `roster help` for the list", args[0])
	}
	return cmd(ctx, a, args[1:])
}
