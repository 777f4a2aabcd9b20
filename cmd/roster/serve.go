package main

import (
	"context"

	"github.com/roster-dev/roster/reconcile/daemon"
)

// serveListening, when set (tests), is told the address the HTTP server listens on.
var serveListening func(configPath, addr string)

// runServe: `roster serve` — the daemon (SPEC §6, reconcile/daemon).
func runServe(ctx context.Context, a *app, _ []string) error {
	p, err := a.pipeline(true)
	if err != nil {
		return err
	}
	p.Out, p.Progress = nil, nil // the daemon prints nothing but its log
	return daemon.Serve(ctx, daemon.Config{Pipeline: p, DSN: a.resolve(a.cfg.State.DSN), Once: a.opt.once, Logger: a.logger,
		Listening: func(addr string) {
			if serveListening != nil {
				serveListening(a.configPath, addr)
			}
		}})
}
