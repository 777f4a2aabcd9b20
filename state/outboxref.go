package state

// Emails by reference (migration 006): an email of a VMR, device or user account the
// apply wrote stores the row's id (outbox.ref_id) instead of its variables. They are made
// when the email is read (ClaimDue, OutboxEmail, FailedEmails) from the row, with the
// functions that make them at enqueue; before the row changes, the writer materializes its
// emails (Writer.materialize), so an email always says what its commit said.

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

// refTables maps the kind of an email that may reference its object to that object's table.
var refTables = map[string]string{"vmr": "vmrs", "device": "devices", "activation": "users"}

// RefKind reports whether an email of kind may reference its object (Email.Ref).
func RefKind(kind string) bool { _, ok := refTables[kind]; return ok }

// refQueries are the statements that read a referenced object, prepared once per reader.
var refQueries = map[string]string{
	"vmr":        `SELECT ` + columns(account.VMRFields, ", ") + ` FROM vmrs WHERE id = ?`,
	"aliases":    `SELECT alias FROM vmr_aliases WHERE vmr_id = ? ORDER BY pos`,
	"device":     `SELECT ` + columns(account.DeviceFields, ", ") + ` FROM devices WHERE id = ?`,
	"activation": `SELECT userid, email, first_name, last_name, license FROM users WHERE id = ?`,
}

// refReader reads referenced objects and makes the variables of the emails naming them.
type refReader struct {
	ctx   context.Context
	q     sqlx.PreparerContext
	stmts map[string]*sqlx.Stmt
	vars  []Var
	buf   []byte
}

func newRefReader(ctx context.Context, q sqlx.PreparerContext) *refReader {
	return &refReader{ctx: ctx, q: q, stmts: map[string]*sqlx.Stmt{}}
}

func (r *refReader) close() {
	for _, st := range r.stmts {
		st.Close()
	}
}

func (r *refReader) stmt(name string) (*sqlx.Stmt, error) {
	if st, ok := r.stmts[name]; ok {
		return st, nil
	}
	st, err := sqlx.PreparexContext(r.ctx, r.q, refQueries[name])
	if err != nil {
		return nil, err
	}
	r.stmts[name] = st
	return st, nil
}

// scanFields are the scan destinations of x's columns, in the order of columns.
func scanFields[T any](fields []account.Field[T], x *T) []any {
	var dest []any
	for i := range fields {
		switch f := &fields[i]; {
		case f.Column == "":
		case f.Type == account.Int:
			dest = append(dest, f.Num(x))
		case f.Type == account.Bool:
			dest = append(dest, f.Flag(x))
		default:
			dest = append(dest, f.Str(x))
		}
	}
	return dest
}

// objectVars appends the variables of the email of kind and action whose object is row id.
func (r *refReader) objectVars(vars []Var, kind string, id int64, action string) ([]Var, error) {
	st, err := r.stmt(kind)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "vmr":
		v := account.VMR{ID: id}
		if err := st.QueryRowxContext(r.ctx, id).Scan(scanFields(account.VMRFields, &v)...); err != nil {
			return nil, err
		}
		al, err := r.stmt("aliases")
		if err != nil {
			return nil, err
		}
		if err := al.SelectContext(r.ctx, &v.Aliases, id); err != nil {
			return nil, err
		}
		return AppendVMRVars(vars, &v, action), nil
	case "device":
		d := account.Device{ID: id}
		if err := st.QueryRowxContext(r.ctx, id).Scan(scanFields(account.DeviceFields, &d)...); err != nil {
			return nil, err
		}
		return AppendDeviceVars(vars, &d, action), nil
	case "activation":
		u := account.User{ID: id}
		if err := st.QueryRowxContext(r.ctx, id).Scan(&u.UserID, &u.Email, &u.FirstName, &u.LastName, &u.License); err != nil {
			return nil, err
		}
		return AppendUserVars(vars, &u, action), nil
	}
	return nil, fmt.Errorf("an email of kind %q references no object", kind)
}

// varsJSON is the vars of an email of kind and action whose template is subject and body
// and whose object is row id: what Writer.Enqueue stores by value (the variables the
// template may read, MayRead, as appendVars encodes them).
func (r *refReader) varsJSON(kind string, id int64, action, subject, body string) (string, error) {
	all, err := r.objectVars(r.vars[:0], kind, id, action)
	if err != nil {
		return "", fmt.Errorf("%s row %d: %w", refTables[kind], id, err)
	}
	used := all[:0]
	for _, v := range all {
		if MayRead(subject, body, v.Name) {
			used = append(used, v)
		}
	}
	r.vars = all
	if r.buf, err = appendVars(r.buf[:0], &Email{VarList: used}); err != nil {
		return "", err
	}
	return string(r.buf), nil
}

// resolveRefs sets the variables of the rows that reference their object; the rows'
// templates must be filled.
func resolveRefs(ctx context.Context, q sqlx.PreparerContext, rows []OutboxRow) error {
	var r *refReader
	for i := range rows {
		row := &rows[i]
		if row.RefID == nil {
			continue
		}
		if r == nil {
			r = newRefReader(ctx, q)
			defer r.close()
		}
		vars, err := r.varsJSON(row.Kind, *row.RefID, row.Action, row.Subject, row.Body)
		if err != nil {
			return fmt.Errorf("variables of outbox row %d: %w", row.ID, err)
		}
		row.Vars = vars
	}
	return nil
}

// materialize writes the variables of the emails referencing row id of kind's table into
// them and clears their reference: call it before updating or deleting the row (or a
// VMR's aliases). The triggers of migration 006 refuse the update otherwise.
func (w *Writer) materialize(kind string, id int64) error {
	if err := w.sync(); err != nil {
		return err
	}
	type ref struct {
		ID      int64  `db:"id"`
		Action  string `db:"action"`
		Subject string `db:"subject"`
		Body    string `db:"body"`
	}
	var refs []ref
	if err := w.stmts["ref.find"].SelectContext(w.ctx, &refs, kind, id); err != nil {
		return fmt.Errorf("materialize emails of %s %d: %w", kind, id, err)
	}
	if len(refs) == 0 {
		return nil
	}
	r := newRefReader(w.ctx, w.tx)
	defer r.close()
	for _, e := range refs {
		vars, err := r.varsJSON(kind, id, e.Action, e.Subject, e.Body)
		if err == nil {
			_, err = w.stmts["ref.materialize"].ExecContext(w.ctx, vars, e.ID)
		}
		if err != nil {
			return fmt.Errorf("materialize outbox row %d: %w", e.ID, err)
		}
	}
	return nil
}

// refSQL are the writer's statements of materialize.
var refSQL = map[string]string{
	"ref.find": `SELECT o.id, o.action, t.subject, t.body FROM outbox o JOIN email_templates t ON t.hash = o.email_template
		WHERE o.kind = ? AND o.ref_id = ?`,
	"ref.materialize": `UPDATE outbox SET vars = ?, ref_id = NULL WHERE id = ?`,
}

// readTx runs fn on a connection inside a read transaction (BEGIN DEFERRED: the database's
// transactions are otherwise IMMEDIATE, a write lock), so an email and the row it
// references are read as of one moment.
func (db *DB) readTx(ctx context.Context, fn func(c *sqlx.Conn) error) error {
	c, err := db.Connx(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return err
	}
	err = fn(c)
	if _, rerr := c.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`); err == nil && rerr != nil {
		err = rerr
	}
	return err
}
