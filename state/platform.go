package state

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Platform operation statuses. An operation goes pending → sending (claimed by a deliverer,
// with a lease) → done, or back to pending (retry, at a later next_try), or failed (given
// up: an invalid value, or the last try), or conflict (the platform holds an object of that
// name that roster does not own). failed and conflict stay, visible, until an operator
// requeues them; operations that wait for them wait too.
const (
	PlatformPending  = "pending"
	PlatformSending  = "sending"
	PlatformDone     = "done"
	PlatformFailed   = "failed"
	PlatformConflict = "conflict"
)

// Platform operations.
const (
	OpCreate = "create"
	OpPatch  = "patch"
	OpDelete = "delete"
)

// PlatformLease is how long a claimed operation stays reserved for its deliverer; one
// still "sending" after it was left by a deliverer that stopped, and is claimed again.
const PlatformLease = 10 * time.Minute

// PlatformOp is one row of the platform queue (see migration 003 for the columns' sense).
type PlatformOp struct {
	ID          int64  `db:"id"`
	Platform    string `db:"platform"`
	Op          string `db:"op"`
	Resource    string `db:"resource"`
	ObjectKey   string `db:"object_key"`
	FromKey     string `db:"from_key"`
	Kind        string `db:"kind"`
	OwnerKey    string `db:"owner_key"`
	Payload     string `db:"payload"` // JSON object of the fields to send
	DepResource string `db:"dep_resource"`
	DepKey      string `db:"dep_key"`
	Status      string `db:"status"`
	Attempts    int    `db:"attempts"`
	NextTry     string `db:"next_try"`
	LastError   string `db:"last_error"`
	RemoteID    int64  `db:"remote_id"`
	Commit      string `db:"commit_id"`
}

// PlatformObject is an object roster owns on a platform.
type PlatformObject struct {
	Platform       string `db:"platform"`
	Resource       string `db:"resource"`
	Key            string `db:"object_key"`
	RemoteID       int64  `db:"remote_id"` // 0: not known yet
	ParentKey      string `db:"parent_key"`
	PasswordDigest string `db:"password_digest"`
}

// EnqueuePlatform writes ops inside the caller's transaction (the apply's), pending and
// due at now, in the order given: that order is the order of delivery for operations on
// related objects.
func EnqueuePlatform(ctx context.Context, tx *sqlx.Tx, now time.Time, ops []PlatformOp) error {
	for _, o := range ops {
		if err := checkOp(o); err != nil {
			return fmt.Errorf("enqueue platform operations: %w", err)
		}
	}
	// Multi-row INSERTs of enqueueBatch rows, the statement prepared once: a first apply
	// enqueues an operation per object, and one statement per row would cost its
	// transaction a cgo call and a bind per row. The time is written into the SQL.
	at := FormatTime(now)
	row := "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, '" + at + "', ?, '" + at + "')"
	insert := func(rows int) string {
		return `INSERT INTO platform_ops(platform, op, resource, object_key, from_key, kind, owner_key, payload,
			dep_resource, dep_key, status, attempts, next_try, commit_id, created_at) VALUES ` +
			strings.Repeat(row+", ", rows-1) + row
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, enqueueBatch*11)
	for start := 0; start < len(ops); start += enqueueBatch {
		chunk := ops[start:min(start+enqueueBatch, len(ops))]
		args = args[:0]
		for _, o := range chunk {
			args = append(args, o.Platform, o.Op, o.Resource, o.ObjectKey, o.FromKey, o.Kind, o.OwnerKey,
				cmp.Or(o.Payload, "{}"), o.DepResource, o.DepKey, o.Commit)
		}
		var err error
		if len(chunk) == enqueueBatch {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insert(enqueueBatch)); err != nil {
					return fmt.Errorf("enqueue platform operations: %w", err)
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insert(len(chunk)), args...)
		}
		if err != nil {
			return fmt.Errorf("enqueue platform operations: %s %s %q and after: %w", chunk[0].Op, chunk[0].Resource, chunk[0].ObjectKey, err)
		}
	}
	return nil
}

// enqueueBatch is how many operations one INSERT writes (11 parameters each).
const enqueueBatch = 100

func checkOp(o PlatformOp) error {
	switch {
	case o.Platform == "" || o.Resource == "" || o.ObjectKey == "":
		return fmt.Errorf("%s %s %q: platform, resource and object key are required", o.Op, o.Resource, o.ObjectKey)
	case o.Op != OpCreate && o.Op != OpPatch && o.Op != OpDelete:
		return fmt.Errorf("%s %s %q: unknown operation", o.Op, o.Resource, o.ObjectKey)
	case (o.DepResource == "") != (o.DepKey == ""):
		return fmt.Errorf("%s %s %q: a dependency needs a resource and a key", o.Op, o.Resource, o.ObjectKey)
	case o.Payload != "" && !json.Valid([]byte(o.Payload)):
		return fmt.Errorf("%s %s %q: payload is not JSON", o.Op, o.Resource, o.ObjectKey)
	}
	return nil
}

// EnqueuePlatform writes ops in the writer's transaction, after the rows it has queued.
func (w *Writer) EnqueuePlatform(ops []PlatformOp) error {
	if err := w.sync(); err != nil {
		return err
	}
	return EnqueuePlatform(w.ctx, w.tx, ParseTime(w.now), ops)
}

const platformOpColumns = `id, platform, op, resource, object_key, from_key, kind, owner_key, payload, dep_resource,
	dep_key, status, attempts, next_try, last_error, remote_id, commit_id`

// claimSQL selects the due operations that wait for no earlier unfinished one. Each way
// of being related is its own NOT EXISTS, so that each is one lookup in a partial index
// (an OR of them would scan the table for every candidate).
var claimSQL = `SELECT ` + platformOpColumns + ` FROM platform_ops o
	WHERE o.platform = ? AND o.status IN ('pending', 'sending') AND o.next_try <= ?
	AND NOT EXISTS (SELECT 1 FROM platform_ops p WHERE p.platform = o.platform AND p.resource = o.resource
		AND p.object_key = o.object_key AND p.id < o.id AND p.status != 'done')
	AND NOT EXISTS (SELECT 1 FROM platform_ops p WHERE p.platform = o.platform AND p.dep_resource = o.resource
		AND p.dep_key = o.object_key AND p.id < o.id AND p.status != 'done')
	AND (o.from_key = '' OR NOT EXISTS (SELECT 1 FROM platform_ops p WHERE p.platform = o.platform
		AND p.resource = o.resource AND p.object_key = o.from_key AND p.id < o.id AND p.status != 'done'))
	AND (o.from_key = '' OR NOT EXISTS (SELECT 1 FROM platform_ops p WHERE p.platform = o.platform
		AND p.dep_resource = o.resource AND p.dep_key = o.from_key AND p.id < o.id AND p.status != 'done'))
	AND (o.dep_key = '' OR NOT EXISTS (SELECT 1 FROM platform_ops p WHERE p.platform = o.platform
		AND p.resource = o.dep_resource AND p.object_key = o.dep_key AND p.id < o.id AND p.status != 'done'))
	ORDER BY o.id LIMIT ?`

// ClaimPlatformOps claims up to limit operations of platform due at now, in queue order,
// leaving out any that must wait for an earlier unfinished operation on the same object,
// on the object it depends on, or on an object that depends on it: the operations
// returned can be sent in any order or at once. Each is marked "sending" with a lease
// until now+PlatformLease and its attempts counted, in one transaction, so two
// deliverers never send the same operation.
func (db *DB) ClaimPlatformOps(ctx context.Context, platform string, now time.Time, limit int) ([]PlatformOp, error) {
	var ops []PlatformOp
	err := db.InTx(ctx, func(tx *sqlx.Tx) error {
		at := FormatTime(now)
		if err := tx.SelectContext(ctx, &ops, claimSQL, platform, at, limit); err != nil {
			return err
		}
		lease := FormatTime(now.Add(PlatformLease))
		ids := make([]int64, 0, len(ops))
		for i := range ops {
			ops[i].Status, ops[i].NextTry = PlatformSending, lease
			ops[i].Attempts++
			ids = append(ids, ops[i].ID)
		}
		return execByIDs(ctx, tx, `UPDATE platform_ops SET status = 'sending', attempts = attempts + 1,
			next_try = ? WHERE id IN`, lease, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("claim platform operations: %w", err)
	}
	return ops, nil
}

// PlatformOutcome is the result of sending one claimed operation.
type PlatformOutcome struct {
	Op       PlatformOp // as claimed
	Status   string     // PlatformDone, PlatformPending (retry at Next), PlatformFailed or PlatformConflict
	Next     time.Time  // PlatformPending: when to try again
	Err      string     // why it is retried, failed or a conflict
	RemoteID int64      // PlatformDone: the object's id on the platform
	// PlatformDone: objects made along with this one (a conference's aliases).
	Also []PlatformObject
	// PlatformDone: the digest of the password this operation sent, "" if none.
	PasswordDigest string
	At             time.Time
}

// RecordPlatformOutcomes records outcomes in one transaction. An operation is done only
// here, after the platform answered; done also updates the objects roster owns: a create
// records the object and its id, a patch its new key or password digest, a delete forgets
// it (a conference with its aliases). A done operation's payload loses its password: it
// is not kept in the queue longer than needed. Only "sending" rows change.
func (db *DB) RecordPlatformOutcomes(ctx context.Context, outcomes []PlatformOutcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	err := db.InTx(ctx, func(tx *sqlx.Tx) error {
		r := newRecorder(ctx, tx)
		defer r.close()
		for _, o := range outcomes {
			if err := r.record(o); err != nil {
				return fmt.Errorf("operation %d: %w", o.Op.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record platform outcomes: %w", err)
	}
	return nil
}

// recordSQL are the statements that record outcomes, each prepared once per transaction.
var recordSQL = map[string]string{
	"done": `UPDATE platform_ops SET status = 'done', remote_id = ?, last_error = '', done_at = ?,
		payload = CASE WHEN json_type(payload, '$.password') IS NULL THEN payload ELSE json_remove(payload, '$.password') END
		WHERE id = ? AND status = 'sending'`,
	"retry":    `UPDATE platform_ops SET status = 'pending', next_try = ?, last_error = ? WHERE id = ? AND status = 'sending'`,
	"stop":     `UPDATE platform_ops SET status = ?, last_error = ?, remote_id = ? WHERE id = ? AND status = 'sending'`,
	"rename":   `UPDATE OR REPLACE platform_objects SET object_key = ? WHERE platform = ? AND resource = ? AND object_key = ?`,
	"reparent": `UPDATE platform_objects SET parent_key = ? WHERE platform = ? AND parent_key = ?`,
	// A zero remote id, an empty parent or digest keep what was known.
	"put": `INSERT INTO platform_objects(platform, resource, object_key, remote_id, parent_key, password_digest, pushed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(platform, resource, object_key) DO UPDATE SET
			remote_id = CASE WHEN excluded.remote_id != 0 THEN excluded.remote_id ELSE remote_id END,
			parent_key = CASE WHEN excluded.parent_key != '' THEN excluded.parent_key ELSE parent_key END,
			password_digest = CASE WHEN excluded.password_digest != '' THEN excluded.password_digest ELSE password_digest END,
			pushed_at = excluded.pushed_at`,
	"forget":  `DELETE FROM platform_objects WHERE platform = ? AND resource = ? AND object_key = ?`,
	"orphans": `DELETE FROM platform_objects WHERE platform = ? AND parent_key = ? AND resource = 'conference_alias'`,
}

// recorder runs recordSQL in one transaction.
type recorder struct {
	ctx   context.Context
	tx    *sqlx.Tx
	stmts map[string]*sqlx.Stmt
}

func newRecorder(ctx context.Context, tx *sqlx.Tx) *recorder {
	return &recorder{ctx: ctx, tx: tx, stmts: map[string]*sqlx.Stmt{}}
}

// exec runs statement name and returns the rows it changed.
func (r *recorder) exec(name string, args ...any) (int64, error) {
	st, ok := r.stmts[name]
	if !ok {
		var err error
		if st, err = r.tx.PreparexContext(r.ctx, recordSQL[name]); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		r.stmts[name] = st
	}
	res, err := st.ExecContext(r.ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return res.RowsAffected()
}

func (r *recorder) close() {
	for _, st := range r.stmts {
		st.Close()
	}
}

func (r *recorder) put(obj PlatformObject, at string) error {
	_, err := r.exec("put", obj.Platform, obj.Resource, obj.Key, obj.RemoteID, obj.ParentKey, obj.PasswordDigest, at)
	return err
}

func (r *recorder) record(o PlatformOutcome) error {
	op := o.Op
	var err error
	switch o.Status {
	case PlatformDone:
		n, err := r.exec("done", o.RemoteID, FormatTime(o.At), op.ID)
		if err != nil || n == 0 {
			return err // n == 0: already recorded (a second deliverer after a lease ran out)
		}
		return r.ownedAfter(o)
	case PlatformPending:
		_, err = r.exec("retry", FormatTime(o.Next), o.Err, op.ID)
	case PlatformFailed, PlatformConflict:
		_, err = r.exec("stop", o.Status, o.Err, o.RemoteID, op.ID)
	default:
		err = fmt.Errorf("bad outcome status %q", o.Status)
	}
	return err
}

// ownedAfter updates platform_objects for a done operation.
func (r *recorder) ownedAfter(o PlatformOutcome) error {
	op, at := o.Op, FormatTime(o.At)
	switch op.Op {
	case OpCreate, OpPatch:
		if op.FromKey != "" && op.FromKey != op.ObjectKey {
			if _, err := r.exec("rename", op.ObjectKey, op.Platform, op.Resource, op.FromKey); err != nil {
				return err
			}
			if _, err := r.exec("reparent", op.ObjectKey, op.Platform, op.FromKey); err != nil {
				return err
			}
		}
		if err := r.put(PlatformObject{Platform: op.Platform, Resource: op.Resource, Key: op.ObjectKey, RemoteID: o.RemoteID,
			ParentKey: op.DepKey, PasswordDigest: o.PasswordDigest}, at); err != nil {
			return err
		}
	case OpDelete:
		if _, err := r.exec("forget", op.Platform, op.Resource, op.ObjectKey); err != nil {
			return err
		}
		if op.Resource == "conference" { // its aliases went with it, or were deleted before it
			if _, err := r.exec("orphans", op.Platform, op.ObjectKey); err != nil {
				return err
			}
		}
	}
	for _, a := range o.Also {
		if err := r.put(a, at); err != nil {
			return err
		}
	}
	return nil
}

// PutPlatformObjects records owned objects inside tx: adoption of existing objects, or an
// id found by a lookup.
func PutPlatformObjects(ctx context.Context, tx *sqlx.Tx, now time.Time, objs []PlatformObject) error {
	r := newRecorder(ctx, tx)
	defer r.close()
	for _, obj := range objs {
		if err := r.put(obj, FormatTime(now)); err != nil {
			return fmt.Errorf("record platform object %s %q: %w", obj.Resource, obj.Key, err)
		}
	}
	return nil
}

// PlatformObjectByKey reads an owned object; ok is false when roster owns none by that key.
func (db *DB) PlatformObjectByKey(ctx context.Context, platform, resource, key string) (obj PlatformObject, ok bool, err error) {
	err = db.GetContext(ctx, &obj, `SELECT platform, resource, object_key, remote_id, parent_key, password_digest
		FROM platform_objects WHERE platform = ? AND resource = ? AND object_key = ?`, platform, resource, key)
	if errors.Is(err, sql.ErrNoRows) {
		return obj, false, nil
	}
	if err != nil {
		return obj, false, fmt.Errorf("read platform object %s %q: %w", resource, key, err)
	}
	return obj, true, nil
}

// PlatformObjects lists the owned objects of platform, by resource and key.
func (db *DB) PlatformObjects(ctx context.Context, platform string) ([]PlatformObject, error) {
	var out []PlatformObject
	if err := db.SelectContext(ctx, &out, `SELECT platform, resource, object_key, remote_id, parent_key, password_digest
		FROM platform_objects WHERE platform = ? ORDER BY resource, object_key`, platform); err != nil {
		return nil, fmt.Errorf("list platform objects: %w", err)
	}
	return out, nil
}

// PlatformCounts counts operations by platform and status; every status is present.
func (db *DB) PlatformCounts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT platform, status, COUNT(*) FROM platform_ops GROUP BY platform, status`)
	if err != nil {
		return nil, fmt.Errorf("count platform operations: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var p, s string
		var n int
		if err := rows.Scan(&p, &s, &n); err != nil {
			return nil, fmt.Errorf("count platform operations: %w", err)
		}
		if out[p] == nil {
			out[p] = map[string]int{PlatformPending: 0, PlatformSending: 0, PlatformDone: 0, PlatformFailed: 0, PlatformConflict: 0}
		}
		out[p][s] = n
	}
	return out, rows.Err()
}

// PlatformOpsByStatus lists up to limit operations in status (failed, conflict, …), oldest first.
func (db *DB) PlatformOpsByStatus(ctx context.Context, status string, limit int) ([]PlatformOp, error) {
	var ops []PlatformOp
	if err := db.SelectContext(ctx, &ops, `SELECT `+platformOpColumns+` FROM platform_ops WHERE status = ?
		ORDER BY id LIMIT ?`, status, limit); err != nil {
		return nil, fmt.Errorf("list platform operations: %w", err)
	}
	return ops, nil
}

// PlatformWaiting reports whether roster's object kind/ownerKey has an operation not yet
// done on any platform: its emails wait until it has none.
func (db *DB) PlatformWaiting(ctx context.Context, kind, ownerKey string) (bool, error) {
	var n int
	if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM platform_ops WHERE kind = ? AND owner_key = ? AND status != 'done'`,
		kind, ownerKey); err != nil {
		return false, fmt.Errorf("platform operations of %s %q: %w", kind, ownerKey, err)
	}
	return n > 0, nil
}

// NextPlatformDue is when the earliest pending or claimed operation of platform falls due
// after after (a retry's next try, a lease's end); ok is false when none does. Operations
// due already and not claimable wait for a failed or conflicting one: they have no time.
func (db *DB) NextPlatformDue(ctx context.Context, platform string, after time.Time) (t time.Time, ok bool, err error) {
	var next *string
	if err := db.GetContext(ctx, &next, `SELECT MIN(next_try) FROM platform_ops WHERE platform = ?
		AND status IN ('pending', 'sending') AND next_try > ?`, platform, FormatTime(after)); err != nil {
		return time.Time{}, false, fmt.Errorf("next due platform operation: %w", err)
	}
	if next == nil {
		return time.Time{}, false, nil
	}
	return ParseTime(*next), true, nil
}

// ReleasePlatformClaims makes every "sending" operation pending and due at now: for
// start-up, when this process is the only deliverer. Those were claimed by a deliverer
// that stopped; the platform may or may not have acted on them, which is why a create
// that meets "already exists" looks for roster's marker. It returns how many it released.
func (db *DB) ReleasePlatformClaims(ctx context.Context, now time.Time) (int, error) {
	res, err := db.ExecContext(ctx, `UPDATE platform_ops SET status = 'pending', next_try = ? WHERE status = 'sending'`,
		FormatTime(now))
	if err != nil {
		return 0, fmt.Errorf("release claimed platform operations: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// ReleasePlatformOps makes the given operations, claimed by this deliverer and left
// unanswered (it stopped), pending and due at now, so that the next run takes them at
// once rather than after their lease.
func (db *DB) ReleasePlatformOps(ctx context.Context, ids []int64, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	err := db.InTx(ctx, func(tx *sqlx.Tx) error {
		return execByIDs(ctx, tx, `UPDATE platform_ops SET status = 'pending', next_try = ?
			WHERE status = 'sending' AND id IN`, FormatTime(now), ids)
	})
	if err != nil {
		return fmt.Errorf("release platform operations: %w", err)
	}
	return nil
}

// RequeuePlatformOp is an operator retrying a failed or conflicting operation: pending,
// due now, its tries counted afresh.
func (db *DB) RequeuePlatformOp(ctx context.Context, id int64, now time.Time) error {
	res, err := db.ExecContext(ctx, `UPDATE platform_ops SET status = 'pending', attempts = 0, next_try = ?
		WHERE id = ? AND status IN ('failed', 'conflict')`, FormatTime(now), id)
	if err != nil {
		return fmt.Errorf("requeue platform operation %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("requeue platform operation %d: not failed or in conflict", id)
	}
	return nil
}
