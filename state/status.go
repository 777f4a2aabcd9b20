package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ObjectKinds name the counts of ObjectCounts, in the order status shows them.
var ObjectKinds = []string{"vmrs", "aliases", "devices", "users_active", "users_deactivated", "invites_pending"}

// ObjectCounts counts the objects of the state by kind (the keys are ObjectKinds), for
// `roster status`, the status page and the roster_objects metric.
func (db *DB) ObjectCounts(ctx context.Context) (map[string]int, error) {
	var c struct {
		VMRs, Aliases, Devices, Active, Deactivated, Pending int
	}
	err := db.QueryRowxContext(ctx, `SELECT
		(SELECT COUNT(*) FROM vmrs), (SELECT COUNT(*) FROM vmr_aliases), (SELECT COUNT(*) FROM devices),
		(SELECT COUNT(*) FROM users WHERE active = 1), (SELECT COUNT(*) FROM users WHERE active = 0),
		(SELECT COUNT(*) FROM invites WHERE status = 'pending')`).
		Scan(&c.VMRs, &c.Aliases, &c.Devices, &c.Active, &c.Deactivated, &c.Pending)
	if err != nil {
		return nil, fmt.Errorf("count objects: %w", err)
	}
	return map[string]int{"vmrs": c.VMRs, "aliases": c.Aliases, "devices": c.Devices,
		"users_active": c.Active, "users_deactivated": c.Deactivated, "invites_pending": c.Pending}, nil
}

// PendingInvite is an invitation not yet accepted, with its expiry.
type PendingInvite struct {
	Email     string
	ExpiresAt time.Time
}

// PendingInvites lists up to limit pending invitations, the soonest to expire first.
func (db *DB) PendingInvites(ctx context.Context, limit int) ([]PendingInvite, error) {
	var rows []struct {
		Email   string `db:"email"`
		Expires string `db:"expires_at"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT email, expires_at FROM invites WHERE status = 'pending' ORDER BY expires_at LIMIT ?`, limit); err != nil {
		return nil, fmt.Errorf("list pending invitations: %w", err)
	}
	out := make([]PendingInvite, len(rows))
	for i, r := range rows {
		out[i] = PendingInvite{Email: r.Email, ExpiresAt: ParseTime(r.Expires)}
	}
	return out, nil
}

// EnqueueEmails puts emails in the outbox in a transaction of their own (the daemon's
// admin emails, outside any apply).
func (db *DB) EnqueueEmails(ctx context.Context, now time.Time, emails []Email) error {
	return db.InTx(ctx, func(tx *sqlx.Tx) error { return Enqueue(ctx, tx, now, emails) })
}
