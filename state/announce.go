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

// outboxBatch is how many outbox rows one INSERT of EnqueueBatched writes (12 parameters
// each, well under SQLite's 32,766).
const outboxBatch = 200

// EnqueueBatched is Enqueue for many emails at once (an announcement's 50,000): the rows
// are written outboxBatch per statement, which divides the per-statement cost (a cgo call,
// binding through database/sql) that dominates one row at a time.
func EnqueueBatched(ctx context.Context, tx *sqlx.Tx, now time.Time, emails []Email) error {
	const cols = `INSERT INTO outbox(created_at, commit_id, kind, action, object_key, template, to_addr, smtp_server,
		email_template, vars, status, attempts, next_attempt_at) VALUES `
	const row = `(?,?,?,?,?,?,?,?,?,?,'pending',0,?)`
	full := cols + strings.TrimSuffix(strings.Repeat(row+",", outboxBatch), ",")
	stmt, err := tx.PrepareContext(ctx, full)
	if err != nil {
		return fmt.Errorf("enqueue emails: %w", err)
	}
	defer stmt.Close()
	at := FormatTime(now)
	var ts emailTemplates // an announcement has one
	var vars []byte
	args := make([]any, 0, 11*outboxBatch)
	for start := 0; start < len(emails); start += outboxBatch {
		batch := emails[start:min(start+outboxBatch, len(emails))]
		args = args[:0]
		for i := range batch {
			e := &batch[i]
			hash, added := ts.hash(e)
			if added {
				if _, err := tx.ExecContext(ctx, insertTemplateSQL, hash, e.Subject, e.Body, e.BodyPath, e.HTML); err != nil {
					return fmt.Errorf("enqueue emails: template of %s %s: %w", e.Kind, e.ObjectKey, err)
				}
			}
			if vars, err = appendVars(vars[:0], e); err != nil {
				return fmt.Errorf("enqueue emails: variables of %s %s: %w", e.Kind, e.ObjectKey, err)
			}
			args = append(args, at, e.Commit, e.Kind, e.Action, e.ObjectKey, e.Template, e.To, e.SMTPServer, hash, string(vars), at)
		}
		if len(batch) == outboxBatch {
			_, err = stmt.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, cols+strings.TrimSuffix(strings.Repeat(row+",", len(batch)), ","), args...)
		}
		if err != nil {
			return fmt.Errorf("enqueue emails: %w", err)
		}
	}
	return nil
}
