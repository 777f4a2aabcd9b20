package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Outbox statuses. A row goes pending → sending (claimed by a deliverer) → sent, or back to
// pending (retry, with a later next_attempt_at), or failed after the last try; an operator
// may drop a failed or pending row, or requeue a failed one.
const (
	OutboxPending = "pending"
	OutboxSending = "sending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
	OutboxDropped = "dropped"
)

// ClaimLease is how long a row claimed by ClaimDue stays reserved ("sending") for the
// deliverer that claimed it. A row still "sending" after its lease expired was left by a
// deliverer that stopped (a crash between claiming and recording the outcome); ClaimDue
// claims it again and it is sent again with the same deterministic Message-ID, so the
// receiving side can recognise the rare duplicate (only a message the server accepted in the
// instant before the crash, before its "sent" mark was committed, can be sent twice).
const ClaimLease = 15 * time.Minute

// Email is one outbox row to enqueue.
type Email struct {
	Kind, Action, ObjectKey, Template, To, SMTPServer, Commit string
	// The email template sources, snapshotted into email_templates (deduplicated by hash)
	// so that the email says what the applied commit said.
	Subject, Body, BodyPath string
	HTML                    bool
	Vars                    map[string]any // JSON-encoded into outbox.vars
	// VarList, when not nil, are the variables instead of Vars: a list the caller can
	// reuse from one email to the next, where a map would be made per email (names
	// unique; sorted in place when encoded).
	VarList []Var
	// Ref, when not 0, is the row id of the email's object in the table of its kind (vmr →
	// vmrs, device → devices, activation → users; RefKind), as the apply left it: the
	// variables are not stored but made from that row when the email is read (Writer.Enqueue
	// only; see outboxref.go).
	Ref int64
	// Audited: the email is its own audit record, by Actor (Writer.Enqueue only): it shows
	// in RecentAudit after the audit rows written before it.
	Audited bool
	Actor   string
}

// Var is one email variable.
type Var struct {
	Name  string
	Value any
}

// TemplateHash is the key of an email template in email_templates: the SHA-256 of its
// content (subject, body, body path and HTML flag), hex-encoded.
func TemplateHash(subject, body, bodyPath string, html bool) string {
	h := sha256.New()
	for _, s := range []string{subject, body, bodyPath, strconv.FormatBool(html)} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

const insertTemplateSQL = `INSERT OR IGNORE INTO email_templates(hash, subject, body, body_path, html) VALUES (?, ?, ?, ?, ?)`

// emailTemplates remembers the templates already written and their hashes. A plan's
// emails share a few templates whose sources are the same strings from one email to the
// next: they are recognised by comparing the strings (equal pointers compare at once),
// most recent first, rather than by hashing a body of kilobytes per email.
type emailTemplates struct {
	list []*emailTemplate
}

type emailTemplate struct {
	subject, body, bodyPath string
	html                    bool
	hash                    string
}

// hash returns the hash of e's template; added is true the first time it is seen, when
// the caller writes the template's row.
func (ts *emailTemplates) hash(e *Email) (hash string, added bool) {
	for i, t := range ts.list {
		if t.html == e.HTML && t.subject == e.Subject && t.body == e.Body && t.bodyPath == e.BodyPath {
			if i > 0 { // most recent first
				copy(ts.list[1:i+1], ts.list[:i])
				ts.list[0] = t
			}
			return t.hash, false
		}
	}
	t := &emailTemplate{subject: e.Subject, body: e.Body, bodyPath: e.BodyPath, html: e.HTML,
		hash: TemplateHash(e.Subject, e.Body, e.BodyPath, e.HTML)}
	ts.list = append([]*emailTemplate{t}, ts.list...)
	return t.hash, true
}

// appendVars appends e's variables as the JSON object outbox.vars holds: what
// json.Marshal makes of the same map (names sorted, the same escapes), without its
// reflection.
func appendVars(b []byte, e *Email) ([]byte, error) {
	vars := e.VarList
	if vars == nil && len(e.Vars) > 0 {
		vars = make([]Var, 0, len(e.Vars))
		for k, v := range e.Vars {
			vars = append(vars, Var{k, v})
		}
	}
	slices.SortFunc(vars, func(a, b Var) int { return strings.Compare(a.Name, b.Name) })
	b = append(b, '{')
	for i, v := range vars {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, v.Name)
		b = append(b, ':')
		var err error
		if b, err = appendJSONValue(b, v.Value); err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
	}
	return append(b, '}'), nil
}

func appendJSONValue(b []byte, x any) ([]byte, error) {
	switch v := x.(type) {
	case string:
		return AppendJSONString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case []string:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, s)
		}
		return append(b, ']'), nil
	}
	j, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// AppendJSONString appends s quoted as json.Marshal quotes it: text that needs no escape
// (printable ASCII but " \ < > &, and valid UTF-8 but U+2028 and U+2029) is copied as it
// is, anything else goes through encoding/json.
func AppendJSONString(b []byte, s string) []byte {
	plain, ascii := true, true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80:
			ascii = false
		case c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			plain = false
		}
	}
	if plain && (ascii || utf8.ValidString(s) && !strings.Contains(s, "\u2028") && !strings.Contains(s, "\u2029")) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	j, _ := json.Marshal(s) // a string always encodes
	return append(b, j...)
}

// Enqueue writes emails inside the caller's transaction: the template rows (each distinct
// template once per call, INSERT OR IGNORE) and one pending outbox row per email, due at now.
// Statements are prepared once per call, so thousands of rows cost one parse each.
func Enqueue(ctx context.Context, tx *sqlx.Tx, now time.Time, emails []Email) error {
	if len(emails) == 0 {
		return nil
	}
	tmplStmt, err := tx.PrepareContext(ctx, insertTemplateSQL)
	if err != nil {
		return fmt.Errorf("enqueue emails: %w", err)
	}
	defer tmplStmt.Close()
	rowStmt, err := tx.PrepareContext(ctx, `INSERT INTO outbox(created_at, commit_id, kind, action, object_key, template,
		to_addr, smtp_server, email_template, vars, status, attempts, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)`)
	if err != nil {
		return fmt.Errorf("enqueue emails: %w", err)
	}
	defer rowStmt.Close()
	at := FormatTime(now)
	var ts emailTemplates
	var vj []byte
	for i := range emails {
		e := &emails[i]
		hash, added := ts.hash(e)
		if added {
			if _, err := tmplStmt.ExecContext(ctx, hash, e.Subject, e.Body, e.BodyPath, e.HTML); err != nil {
				return fmt.Errorf("enqueue emails: template of %s %s: %w", e.Kind, e.ObjectKey, err)
			}
		}
		if vj, err = appendVars(vj[:0], e); err != nil {
			return fmt.Errorf("enqueue emails: variables of email %d (%s %s): %w", i, e.Kind, e.ObjectKey, err)
		}
		if _, err := rowStmt.ExecContext(ctx, at, e.Commit, e.Kind, e.Action, e.ObjectKey, e.Template,
			e.To, e.SMTPServer, hash, string(vj), at); err != nil {
			return fmt.Errorf("enqueue emails: %s %s: %w", e.Kind, e.ObjectKey, err)
		}
	}
	return nil
}

// Enqueue queues one pending outbox row, due at the writer's time, written with the
// writer's other batched rows (its template row at once, the first time it is seen):
// an apply enqueues its emails one at a time, never holding them all.
func (w *Writer) Enqueue(e *Email) error {
	hash, added := w.templates.hash(e)
	if added {
		if _, err := w.exec("template.put", hash, e.Subject, e.Body, e.BodyPath, e.HTML); err != nil {
			return fmt.Errorf("enqueue email: template of %s %s: %w", e.Kind, e.ObjectKey, err)
		}
	}
	vars, ref := "", any(nil)
	if e.Ref != 0 {
		if !RefKind(e.Kind) {
			return fmt.Errorf("enqueue email: %s %s: an email of kind %s cannot reference its object", e.Kind, e.ObjectKey, e.Kind)
		}
		ref = e.Ref
	} else {
		var err error
		if w.vars, err = appendVars(w.vars[:0], e); err != nil {
			return fmt.Errorf("enqueue email: variables of %s %s: %w", e.Kind, e.ObjectKey, err)
		}
		vars = string(w.vars)
	}
	actor, after := any(nil), any(nil)
	if e.Audited {
		n, err := w.lastAudit()
		if err != nil {
			return fmt.Errorf("enqueue email: %s %s: %w", e.Kind, e.ObjectKey, err)
		}
		actor, after = e.Actor, n
	}
	if err := w.addConst("outbox", e.Commit, actor, after, e.Kind, e.Action, e.ObjectKey, e.Template, e.To, e.SMTPServer, hash, vars, ref); err != nil {
		return fmt.Errorf("enqueue email: %s %s: %w", e.Kind, e.ObjectKey, err)
	}
	return nil
}

// OutboxRow is one outbox row with its email template.
type OutboxRow struct {
	ID            int64   `db:"id"`
	CreatedAt     string  `db:"created_at"`
	Commit        string  `db:"commit_id"`
	Kind          string  `db:"kind"`
	Action        string  `db:"action"`
	ObjectKey     string  `db:"object_key"`
	Template      string  `db:"template"`
	To            string  `db:"to_addr"`
	SMTPServer    string  `db:"smtp_server"`
	EmailTemplate string  `db:"email_template"` // the template hash
	Vars          string  `db:"vars"`           // JSON object (made from the referenced row when RefID is set)
	RefID         *int64  `db:"ref_id"`         // the row of the email's object (Email.Ref), while it references it
	Status        string  `db:"status"`
	Attempts      int     `db:"attempts"`
	NextAttemptAt string  `db:"next_attempt_at"`
	LastError     string  `db:"last_error"`
	MessageID     string  `db:"message_id"`
	SentAt        *string `db:"sent_at"`

	Subject  string `db:"subject"`
	Body     string `db:"body"`
	BodyPath string `db:"body_path"`
	HTML     bool   `db:"html"`
}

// DecodeVars returns the row's variables; integral JSON numbers become int64.
func (r *OutboxRow) DecodeVars() (map[string]any, error) {
	var v map[string]any
	if err := json.Unmarshal([]byte(r.Vars), &v); err != nil {
		return nil, fmt.Errorf("decode variables of outbox row %d: %w", r.ID, err)
	}
	for k, x := range v {
		v[k] = plainNumbers(x)
	}
	return v, nil
}

func plainNumbers(x any) any {
	switch t := x.(type) {
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
		return t
	case map[string]any:
		for k, y := range t {
			t[k] = plainNumbers(y)
		}
	case []any:
		for i, y := range t {
			t[i] = plainNumbers(y)
		}
	}
	return x
}

const outboxSelect = `SELECT o.id, o.created_at, o.commit_id, o.kind, o.action, o.object_key, o.template,
	o.to_addr, o.smtp_server, o.email_template, o.vars, o.status, o.attempts, o.next_attempt_at,
	o.last_error, o.message_id, o.sent_at, o.ref_id, t.subject, t.body, t.body_path, t.html
	FROM outbox o JOIN email_templates t ON t.hash = o.email_template`

// ClaimDue claims up to limit rows due at now — pending rows whose next_attempt_at <= now,
// and "sending" rows whose lease expired (left by a stopped deliverer) — marking them
// "sending" with a lease until now+ClaimLease, in one transaction, so that two deliverers
// never send the same row. Rows come oldest due first.
func (db *DB) ClaimDue(ctx context.Context, now time.Time, limit int) ([]OutboxRow, error) {
	var rows []OutboxRow
	err := db.InTx(ctx, func(tx *sqlx.Tx) error {
		// The rows without their templates, then each distinct template once: a batch
		// shares a few templates, and their bodies are not copied out of SQLite per row.
		q, err := tx.QueryContext(ctx, `SELECT id, created_at, commit_id, kind, action, object_key, template,
			to_addr, smtp_server, email_template, vars, status, attempts, next_attempt_at, last_error, message_id, sent_at, ref_id
			FROM outbox o WHERE status IN ('pending', 'sending') AND next_attempt_at <= ? AND `+notWaitingForPlatform+`
			ORDER BY next_attempt_at, id LIMIT ?`, FormatTime(now), limit)
		if err != nil {
			return err
		}
		defer q.Close()
		rows = make([]OutboxRow, 0, min(limit, 1024))
		for q.Next() { // scanned by hand: this is the delivery hot path
			var r OutboxRow
			if err := q.Scan(&r.ID, &r.CreatedAt, &r.Commit, &r.Kind, &r.Action, &r.ObjectKey, &r.Template,
				&r.To, &r.SMTPServer, &r.EmailTemplate, &r.Vars, &r.Status, &r.Attempts, &r.NextAttemptAt,
				&r.LastError, &r.MessageID, &r.SentAt, &r.RefID); err != nil {
				return err
			}
			rows = append(rows, r)
		}
		if err := q.Err(); err != nil {
			return err
		}
		q.Close()
		if err := fillTemplates(ctx, tx, rows); err != nil {
			return err
		}
		if err := resolveRefs(ctx, tx, rows); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		lease := FormatTime(now.Add(ClaimLease))
		ids := make([]int64, 0, len(rows))
		for i := range rows {
			ids = append(ids, rows[i].ID)
			rows[i].Status = OutboxSending
			rows[i].NextAttemptAt = lease
		}
		return execByIDs(ctx, tx, `UPDATE outbox SET status = 'sending', next_attempt_at = ? WHERE id IN`, lease, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("claim due emails: %w", err)
	}
	return rows, nil
}

type templateRow struct {
	Hash     string `db:"hash"`
	Subject  string `db:"subject"`
	Body     string `db:"body"`
	BodyPath string `db:"body_path"`
	HTML     bool   `db:"html"`
}

// fillTemplates sets the template fields of rows, reading each distinct template once.
func fillTemplates(ctx context.Context, tx *sqlx.Tx, rows []OutboxRow) error {
	byHash := map[string]*templateRow{}
	for i := range rows {
		h := rows[i].EmailTemplate
		t, ok := byHash[h]
		if !ok {
			t = &templateRow{}
			if err := tx.GetContext(ctx, t, `SELECT hash, subject, body, body_path, html FROM email_templates WHERE hash = ?`, h); err != nil {
				return fmt.Errorf("email template %s: %w", h, err)
			}
			byHash[h] = t
		}
		rows[i].Subject, rows[i].Body, rows[i].BodyPath, rows[i].HTML = t.Subject, t.Body, t.BodyPath, t.HTML
	}
	return nil
}

// Outcome is the result of one delivery attempt, recorded by RecordOutcomes.
type Outcome struct {
	ID        int64
	Status    string    // OutboxSent, OutboxPending (retry or deferral) or OutboxFailed
	Attempts  int       // the row's attempts after this one
	Next      time.Time // OutboxPending: when to try again
	Err       string    // the reason of a retry or failure
	MessageID string    // OutboxSent
	At        time.Time // OutboxSent: when the server accepted it
	// Vars (OutboxSent) are the variables the message was made with, when its row
	// referenced its object (OutboxRow.RefID): the sent row keeps them and drops the
	// reference, so delivered emails leave no reference for a later update to materialize.
	Vars string
}

// RecordOutcomes records many outcomes in one transaction (a deliverer commits the results
// of a group of messages at once). A row already sent or dropped is never changed: a message
// accepted by the server stays sent.
func (db *DB) RecordOutcomes(ctx context.Context, outcomes []Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	err := db.InTx(ctx, func(tx *sqlx.Tx) error {
		return recordOutcomes(ctx, tx, outcomes)
	})
	if err != nil {
		return fmt.Errorf("record email outcomes: %w", err)
	}
	return nil
}

func recordOutcomes(ctx context.Context, tx *sqlx.Tx, outcomes []Outcome) error {
	var sent, other *sqlx.Stmt
	for _, o := range outcomes {
		switch o.Status {
		case OutboxSent:
			if sent == nil {
				s, err := tx.PreparexContext(ctx, `UPDATE outbox SET status = 'sent', message_id = ?, sent_at = ?,
					last_error = '', next_attempt_at = '', vars = COALESCE(?, vars), ref_id = IIF(? IS NULL, ref_id, NULL)
					WHERE id = ? AND status IN ('pending', 'sending')`)
				if err != nil {
					return err
				}
				defer s.Close()
				sent = s
			}
			vars := any(nil) // keeps the row's vars and reference
			if o.Vars != "" {
				vars = o.Vars
			}
			if _, err := sent.ExecContext(ctx, o.MessageID, FormatTime(o.At), vars, vars, o.ID); err != nil {
				return err
			}
		case OutboxPending, OutboxFailed:
			if other == nil {
				s, err := tx.PreparexContext(ctx, `UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?,
					last_error = ? WHERE id = ? AND status IN ('pending', 'sending')`)
				if err != nil {
					return err
				}
				defer s.Close()
				other = s
			}
			next := ""
			if o.Status == OutboxPending {
				next = FormatTime(o.Next)
			}
			if _, err := other.ExecContext(ctx, o.Status, o.Attempts, next, o.Err, o.ID); err != nil {
				return err
			}
		default:
			return fmt.Errorf("outbox row %d: bad outcome status %q", o.ID, o.Status)
		}
	}
	return nil
}

// MarkSent records that the SMTP server accepted (250 to DATA) the message of row id.
func (db *DB) MarkSent(ctx context.Context, id int64, messageID string, at time.Time) error {
	return db.RecordOutcomes(ctx, []Outcome{{ID: id, Status: OutboxSent, MessageID: messageID, At: at}})
}

// MarkRetry puts row id back to pending, due at next, after its attempts-th try failed.
func (db *DB) MarkRetry(ctx context.Context, id int64, attempts int, next time.Time, errMsg string) error {
	return db.RecordOutcomes(ctx, []Outcome{{ID: id, Status: OutboxPending, Attempts: attempts, Next: next, Err: errMsg}})
}

// MarkFailed gives up on row id after attempts tries; it stays visible until requeued or dropped.
func (db *DB) MarkFailed(ctx context.Context, id int64, attempts int, errMsg string) error {
	return db.RecordOutcomes(ctx, []Outcome{{ID: id, Status: OutboxFailed, Attempts: attempts, Err: errMsg}})
}

// OutboxCounts counts the outbox rows by status; every status is present, zero or not.
func (db *DB) OutboxCounts(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{OutboxPending: 0, OutboxSending: 0, OutboxSent: 0, OutboxFailed: 0, OutboxDropped: 0}
	rows, err := db.QueryContext(ctx, `SELECT status, COUNT(*) FROM outbox GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count outbox: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count outbox: %w", err)
		}
		counts[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count outbox: %w", err)
	}
	return counts, nil
}

// FailedEmails lists up to limit failed rows, oldest first.
func (db *DB) FailedEmails(ctx context.Context, limit int) ([]OutboxRow, error) {
	var rows []OutboxRow
	err := db.readTx(ctx, func(c *sqlx.Conn) error {
		if err := c.SelectContext(ctx, &rows, outboxSelect+` WHERE o.status = 'failed' ORDER BY o.id LIMIT ?`, limit); err != nil {
			return err
		}
		return resolveRefs(ctx, c, rows)
	})
	if err != nil {
		return nil, fmt.Errorf("list failed emails: %w", err)
	}
	return rows, nil
}

// OutboxEmail reads one outbox row.
func (db *DB) OutboxEmail(ctx context.Context, id int64) (OutboxRow, error) {
	rows := make([]OutboxRow, 1)
	err := db.readTx(ctx, func(c *sqlx.Conn) error {
		if err := c.GetContext(ctx, &rows[0], outboxSelect+` WHERE o.id = ?`, id); err != nil {
			return err
		}
		return resolveRefs(ctx, c, rows)
	})
	if err != nil {
		return rows[0], fmt.Errorf("read outbox row %d: %w", id, err)
	}
	return rows[0], nil
}

// DropEmail is the operator dropping a failed (or still pending) message: it is never sent.
func (db *DB) DropEmail(ctx context.Context, id int64) error {
	return db.setStatusFrom(ctx, "drop email", id, `UPDATE outbox SET status = 'dropped', next_attempt_at = ''
		WHERE id = ? AND status IN ('failed', 'pending')`)
}

// RequeueEmail is the operator retrying a failed message: pending again, due now, with
// three fresh tries.
func (db *DB) RequeueEmail(ctx context.Context, id int64, now time.Time) error {
	return db.setStatusFrom(ctx, "requeue email", id, `UPDATE outbox SET status = 'pending', attempts = 0,
		next_attempt_at = '`+FormatTime(now)+`' WHERE id = ? AND status = 'failed'`)
}

func (db *DB) setStatusFrom(ctx context.Context, op string, id int64, query string) error {
	res, err := db.ExecContext(ctx, query, id)
	if err != nil {
		return fmt.Errorf("%s %d: %w", op, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var status string
		if err := db.GetContext(ctx, &status, `SELECT status FROM outbox WHERE id = ?`, id); err != nil {
			return fmt.Errorf("%s %d: no such email", op, id)
		}
		return fmt.Errorf("%s %d: the email is %s", op, id, status)
	}
	return nil
}

// notWaitingForPlatform holds for an outbox row o whose object has no platform operation
// left to do (SPEC §8: a room's email never precedes the room). A user's email is its
// activation email. One lookup in platform_ops_owner per row; an operation that failed or
// is in conflict keeps the email pending, visible in status, until it is done.
const notWaitingForPlatform = `NOT EXISTS (SELECT 1 FROM platform_ops p
	WHERE p.kind = CASE o.kind WHEN 'activation' THEN 'user' ELSE o.kind END
	AND p.owner_key = o.object_key AND p.status != 'done')`

// EmailsWaitingForPlatform counts pending emails whose object's platform operations are
// not all done.
func (db *DB) EmailsWaitingForPlatform(ctx context.Context) (int, error) {
	var n int
	if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM outbox o WHERE status IN ('pending', 'sending')
		AND NOT `+notWaitingForPlatform); err != nil {
		return 0, fmt.Errorf("count emails waiting for platforms: %w", err)
	}
	return n, nil
}

// NextDue is when the earliest pending row is due that waits for no platform operation;
// ok is false when none is pending.
func (db *DB) NextDue(ctx context.Context) (t time.Time, ok bool, err error) {
	var next *string
	if err := db.GetContext(ctx, &next, `SELECT MIN(next_attempt_at) FROM outbox o WHERE status = 'pending' AND `+notWaitingForPlatform); err != nil {
		return time.Time{}, false, fmt.Errorf("next due email: %w", err)
	}
	if next == nil {
		return time.Time{}, false, nil
	}
	return ParseTime(*next), true, nil
}

// ReleaseClaims makes every "sending" row pending and due at now, without waiting for its
// lease: for start-up, when this process is the only deliverer (serve holds the state
// database's lock). Those rows were claimed by a deliverer that stopped; they are sent
// again with their deterministic Message-ID. It returns how many rows it released.
func (db *DB) ReleaseClaims(ctx context.Context, now time.Time) (int, error) {
	res, err := db.ExecContext(ctx, `UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE status = 'sending'`, FormatTime(now))
	if err != nil {
		return 0, fmt.Errorf("release claimed emails: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
