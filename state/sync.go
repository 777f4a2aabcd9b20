package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
)

// SyncCookie is where one directory search's incremental reads stand (SPEC §7).
type SyncCookie struct {
	Req        string    `json:"req"`
	Directory  string    `json:"directory"`
	Template   string    `json:"template"`
	Mode       string    `json:"mode"`
	Cookie     []byte    `json:"-"`
	Commit     string    `json:"commit"`
	FullReadAt time.Time `json:"full_read_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// SyncEntry is one entry of a search by its stable id: the key its objects are owned
// by, and whether it is pending (see the 005 migration).
type SyncEntry struct {
	UUID    string
	Key     string
	Email   string // the user account the entry renders, lower case ("" if none)
	Pending bool
	Gone    bool // deleted, or out of the search: its row goes
}

// SyncWrite is what one applied cycle records for one search, in the apply's transaction.
type SyncWrite struct {
	Cookie SyncCookie
	// Full replaces every entry of the search with Entries (a full read); otherwise
	// Entries are upserted, or deleted when Gone.
	Full    bool
	Entries []SyncEntry
	// Token is the sync token to record when entries are written ("": a fresh one), and
	// Seen the token the plan read them at: when the stored token is no longer Seen,
	// another writer came between, and a fresh token is recorded instead of Token, so that
	// a cache expecting Token (the engine's, updated in place) reads the entries again.
	Token, Seen string
}

// SyncCookies reads every search's cookie row.
func (db *DB) SyncCookies(ctx context.Context) (map[string]SyncCookie, error) {
	rows, err := db.QueryContext(ctx, `SELECT req, directory, template, mode, cookie, commit_id, full_read_at, updated_at FROM sync_cookies`)
	if err != nil {
		return nil, fmt.Errorf("read sync cookies: %w", err)
	}
	defer rows.Close()
	out := map[string]SyncCookie{}
	for rows.Next() {
		var c SyncCookie
		var full, upd string
		if err := rows.Scan(&c.Req, &c.Directory, &c.Template, &c.Mode, &c.Cookie, &c.Commit, &full, &upd); err != nil {
			return nil, fmt.Errorf("read sync cookies: %w", err)
		}
		c.FullReadAt, c.UpdatedAt = ParseTime(full), ParseTime(upd)
		out[c.Req] = c
	}
	return out, rows.Err()
}

// SyncEntries returns the entries of the search with the given ids (absent ones are new
// to it), with their key, user email and pending flag.
func (db *DB) SyncEntries(ctx context.Context, req string, uuids []string) (map[string]SyncEntry, error) {
	out := make(map[string]SyncEntry, len(uuids))
	for i := 0; i < len(uuids); i += selectionBatch {
		batch := uuids[i:min(i+selectionBatch, len(uuids))]
		args := make([]any, 0, len(batch)+1)
		args = append(args, req)
		for _, u := range batch {
			args = append(args, u)
		}
		rows, err := db.QueryContext(ctx, `SELECT uuid, entry_key, email, pending FROM sync_entries WHERE req=? AND uuid IN (?`+strings.Repeat(",?", len(batch)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read sync entries: %w", err)
		}
		for rows.Next() {
			var e SyncEntry
			if err := rows.Scan(&e.UUID, &e.Key, &e.Email, &e.Pending); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read sync entries: %w", err)
			}
			out[e.UUID] = e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read sync entries: %w", err)
		}
	}
	return out, nil
}

// EachSyncEntry calls fn with the id, key, user email and pending flag of every entry of
// the search, in id order; the byte slices are valid during the call only.
func (db *DB) EachSyncEntry(ctx context.Context, req string, fn func(uuid, key, email []byte, pending bool)) error {
	rows, err := db.QueryContext(ctx, `SELECT uuid, entry_key, email, pending FROM sync_entries WHERE req=? ORDER BY uuid`, req)
	if err != nil {
		return fmt.Errorf("read sync entries: %w", err)
	}
	defer rows.Close()
	var u, k, e sql.RawBytes
	var pending bool
	for rows.Next() {
		if err := rows.Scan(&u, &k, &e, &pending); err != nil {
			return fmt.Errorf("read sync entries: %w", err)
		}
		fn(u, k, e, pending)
	}
	return rows.Err()
}

// KnownSyncIDs is the ids of every entry of the search, read when first iterated (the
// directory asks for them only when syncprov answers with a present phase, where every
// known id it does not list is a deletion). The ids are loaded in one query before the
// first is yielded, so no connection is held while the caller works. A read error ends
// the sequence early and is left in *errp: the caller must check it and fail the cycle,
// since a short list would lose deletions.
func (db *DB) KnownSyncIDs(ctx context.Context, req string, errp *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		var ids []string
		if err := db.SelectContext(ctx, &ids, `SELECT uuid FROM sync_entries WHERE req=?`, req); err != nil {
			*errp = fmt.Errorf("read known entries: %w", err)
			return
		}
		for _, u := range ids {
			if !yield(u) {
				return
			}
		}
	}
}

// SyncPending returns the ids of the pending entries of the search.
func (db *DB) SyncPending(ctx context.Context, req string) ([]string, error) {
	var out []string
	if err := db.SelectContext(ctx, &out, `SELECT uuid FROM sync_entries WHERE req=? AND pending=1 ORDER BY uuid`, req); err != nil {
		return nil, fmt.Errorf("read pending entries: %w", err)
	}
	return out, nil
}

// PutSync records one search's cycle inside an apply's transaction.
func PutSync(ctx context.Context, tx *sqlx.Tx, now time.Time, s SyncWrite) error {
	c := s.Cookie
	if c.Cookie == nil {
		return errors.New("put sync cookie: no cookie")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sync_cookies(req, directory, template, mode, cookie, commit_id, full_read_at, updated_at)
		VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(req) DO UPDATE SET directory=excluded.directory, template=excluded.template,
		mode=excluded.mode, cookie=excluded.cookie, commit_id=excluded.commit_id, full_read_at=excluded.full_read_at, updated_at=excluded.updated_at`,
		c.Req, c.Directory, c.Template, c.Mode, c.Cookie, c.Commit, FormatTime(c.FullReadAt), FormatTime(now)); err != nil {
		return fmt.Errorf("put sync cookie: %w", err)
	}
	if s.Full || len(s.Entries) > 0 {
		// Readers that cache the entries (the daemon's engine) see they changed.
		token := s.Token
		if !s.Full && token != "" {
			var stored string
			if err := tx.GetContext(ctx, &stored, `SELECT COALESCE((SELECT value FROM meta WHERE key=?), '')`, "sync_token:"+c.Req); err != nil {
				return fmt.Errorf("read sync token: %w", err)
			}
			if stored != s.Seen {
				token = ""
			}
		}
		if token == "" {
			token = NewSyncToken(len(s.Entries))
		}
		if err := SetMeta(ctx, tx, "sync_token:"+c.Req, token); err != nil {
			return err
		}
	}
	if s.Full {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sync_entries WHERE req=?`, c.Req); err != nil {
			return fmt.Errorf("put sync entries: %w", err)
		}
	}
	put, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO sync_entries(req, uuid, entry_key, email, pending) VALUES (?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("put sync entries: %w", err)
	}
	defer put.Close()
	del, err := tx.PrepareContext(ctx, `DELETE FROM sync_entries WHERE req=? AND uuid=?`)
	if err != nil {
		return fmt.Errorf("put sync entries: %w", err)
	}
	defer del.Close()
	for _, e := range s.Entries {
		if e.Gone {
			_, err = del.ExecContext(ctx, c.Req, e.UUID)
		} else {
			_, err = put.ExecContext(ctx, c.Req, e.UUID, e.Key, e.Email, e.Pending)
		}
		if err != nil {
			return fmt.Errorf("put sync entries: %w", err)
		}
	}
	return nil
}

// NewSyncToken is a token no other write of the entries has: the time and a count.
func NewSyncToken(n int) string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(n) + "-" + strconv.FormatUint(tokenSeq.Add(1), 36)
}

// tokenSeq tells apart the tokens one process makes within a clock tick.
var tokenSeq atomic.Uint64

// SyncToken changes whenever the entries of the search are written: a cache of them
// made at one token is valid while the token is the same.
func (db *DB) SyncToken(ctx context.Context, req string) (string, error) {
	return db.Meta(ctx, "sync_token:"+req)
}

// DropSync forgets a search (its template or directory left the configuration, or
// went back to full reads): the next incremental cycle starts from a full read.
func DropSync(ctx context.Context, tx *sqlx.Tx, req string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM sync_cookies WHERE req=?`, req); err != nil {
		return fmt.Errorf("drop sync cookie: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sync_entries WHERE req=?`, req); err != nil {
		return fmt.Errorf("drop sync entries: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key=?`, "sync_token:"+req); err != nil {
		return fmt.Errorf("drop sync token: %w", err)
	}
	return nil
}

// InviteDue says whether a pending invitation has expired by now (a plan would expire it).
func (db *DB) InviteDue(ctx context.Context, now time.Time) (bool, error) {
	var n int
	if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM (SELECT 1 FROM invites WHERE status='pending' AND expires_at <= ? LIMIT 1)`, FormatTime(now)); err != nil {
		return false, fmt.Errorf("read invites: %w", err)
	}
	return n > 0, nil
}
