package state

// Announcements sent (SPEC §9): the record that makes each id go out once, and what
// `roster status` shows of their delivery.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Announced is an announcement that was applied: its emails are in the outbox.
type Announced struct {
	ID         string            `json:"id"`
	Subject    string            `json:"subject"`
	Digests    map[string]string `json:"-"` // field → SHA-256 of what it said (schema.Announcement.FieldDigests)
	Recipients int               `json:"recipients"`
	Commit     string            `json:"commit"`
	Actor      string            `json:"actor"`
	AppliedAt  time.Time         `json:"applied_at"`
}

// AnnouncementSent records announcement a as applied, in the writer's transaction.
func (w *Writer) AnnouncementSent(a Announced) error {
	if err := w.sync(); err != nil {
		return err
	}
	digests, err := json.Marshal(a.Digests)
	if err != nil {
		return fmt.Errorf("record announcement %s: %w", a.ID, err)
	}
	_, err = w.tx.ExecContext(w.ctx, `INSERT INTO announcements(id, subject, digests, recipients, commit_id, actor, applied_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Subject, string(digests), a.Recipients, a.Commit, a.Actor, w.now)
	if err != nil {
		return fmt.Errorf("record announcement %s: %w", a.ID, err)
	}
	return nil
}

// Tx is the writer's transaction, for writes that go beside its own (the outbox).
// Everything the writer queued is written first.
func (w *Writer) Tx() (*sqlx.Tx, error) {
	return w.tx, w.sync()
}

func loadAnnounced(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, subject, digests, recipients, commit_id, actor, applied_at FROM announcements`)
	if err != nil {
		return err
	}
	defer rows.Close()
	a.Announced = map[string]*Announced{}
	for rows.Next() {
		var an Announced
		var digests, at string
		if err := rows.Scan(&an.ID, &an.Subject, &digests, &an.Recipients, &an.Commit, &an.Actor, &at); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(digests), &an.Digests); err != nil {
			return fmt.Errorf("announcement %s: %w", an.ID, err)
		}
		an.AppliedAt = ParseTime(at)
		a.Announced[an.ID] = &an
	}
	return rows.Err()
}

// AnnouncementStatus is an applied announcement and how far its delivery got.
type AnnouncementStatus struct {
	Announced
	Outbox map[string]int `json:"outbox"` // its emails by outbox status
}

// Announcements lists the applied announcements, newest first, with their emails counted
// by outbox status.
func (db *DB) Announcements(ctx context.Context, limit int) ([]AnnouncementStatus, error) {
	var out []AnnouncementStatus
	err := db.InTx(ctx, func(tx *sqlx.Tx) error {
		a := &Actual{}
		if err := loadAnnounced(ctx, tx, a); err != nil {
			return err
		}
		for _, an := range a.Announced {
			out = append(out, AnnouncementStatus{Announced: *an, Outbox: map[string]int{}})
		}
		sortAnnouncements(out)
		if len(out) > limit {
			out = out[:limit]
		}
		for i := range out {
			rows, err := tx.QueryContext(ctx, `SELECT status, COUNT(*) FROM outbox WHERE kind = 'announcement' AND object_key = ?
				GROUP BY status`, out[i].ID)
			if err != nil {
				return err
			}
			for rows.Next() {
				var s string
				var n int
				if err := rows.Scan(&s, &n); err != nil {
					rows.Close()
					return err
				}
				out[i].Outbox[s] = n
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read announcements: %w", err)
	}
	return out, nil
}

// sortAnnouncements orders by applied time, newest first, then id.
func sortAnnouncements(xs []AnnouncementStatus) {
	slices.SortFunc(xs, func(a, b AnnouncementStatus) int {
		if c := b.AppliedAt.Compare(a.AppliedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
