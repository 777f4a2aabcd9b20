package main

import (
	"context"
	"errors"
	"time"

	"github.com/roster-dev/roster/reconcile"
)

func runRemind(ctx context.Context, a *app, args []string) error {
	return errors.New("remind: not yet")
}

func runNotify(ctx context.Context, a *app, args []string) error {
	return errors.New("notify: not yet")
}

func runInvites(ctx context.Context, a *app, args []string) error {
	return errors.New("invites: not yet")
}

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

func (a *app) deliver(ctx context.Context) error { return nil }

func defaultEmails() map[string]reconcile.MailSpec { return nil }
