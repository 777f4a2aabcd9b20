package main

import (
	"context"
	"errors"

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

func (a *app) deliver(ctx context.Context) error { return nil }

func defaultEmails() map[string]reconcile.MailSpec { return nil }
