package main

import (
	"context"
	"errors"
	"time"
)

// runServe: `roster serve` — the daemon (SPEC §6).
func runServe(ctx context.Context, a *app, args []string) error {
	return errors.New("serve: not yet")
}

// DaemonStatus is the daemon's own state, shown by serve.
type DaemonStatus struct {
	State      string    `json:"state"`
	GoodCommit string    `json:"good_commit"`
	LastRun    time.Time `json:"last_run"`
	LastError  string    `json:"last_error,omitempty"`
}
