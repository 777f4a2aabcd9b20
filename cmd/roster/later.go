package main

import (
	"context"
	"errors"
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
