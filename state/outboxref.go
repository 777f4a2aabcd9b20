package state

// Emails by reference (migration 007): an email of a VMR, device or user account the
// apply wrote stores the row's id (outbox.ref_id) instead of its variables. They are made
// when the email is read (ClaimDue, OutboxEmail, FailedEmails) from the row, with the
// functions that make them at enqueue; before the row changes, the writer materializes its
// emails (Writer.materialize), so an email always says what its commit said.

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

// refTables maps the kind of an email that may reference its object to that object's table.
var refTables = map[string]string{"vmr": "vmrs", "device": "devices", "activation": "users"}

// RefKind reports whether an email of kind may reference its object (Email.Ref).
func RefKind(kind string) bool { _, ok := refTables[kind]; return ok }

// refObjects are the objects referenced by a group of emails, read at once (loadRefs).
type refObjects struct {
	vmrs    map[int64]*account.VMR
	devices map[int64]*account.Device
	users   map[int64]*account.User
	vars    []Var
	buf     []byte
}

// refChunk is how many ids one query of loadRefs reads (SQLite allows 32766 parameters).
const refChunk = 500

// loadRefs reads the objects ids names, by email kind (RefKind): each table in a query
// per refChunk ids, not a query per email, so that a claim of emails by reference costs
// about what it costs by value.
func loadRefs(ctx context.Context, q sqlx.QueryerContext, ids map[string][]int64) (*refObjects, error) {
	o := &refObjects{vmrs: map[int64]*account.VMR{}, devices: map[int64]*account.Device{}, users: map[int64]*account.User{}}
	for kind, all := range ids {
		for start := 0; start < len(all); start += refChunk {
			chunk := all[start:min(start+refChunk, len(all))]
			args := make([]any, len(chunk))
			for i, id := range chunk {
				args[i] = id
			}
			in := " IN (?" + strings.Repeat(",?", len(chunk)-1) + ")"
			var err error
			switch kind {
			case "vmr":
				err = eachRef(ctx, q, `SELECT id, `+columns(account.VMRFields, ", ")+` FROM vmrs WHERE id`+in, args, func() ([]any, func()) {
					v := &account.VMR{}
					return append([]any{&v.ID}, scanFields(account.VMRFields, v)...), func() { o.vmrs[v.ID] = v }
				})
				if err == nil {
					var id int64
					var alias string
					err = eachRef(ctx, q, `SELECT vmr_id, alias FROM vmr_aliases WHERE vmr_id`+in+` ORDER BY vmr_id, pos`, args, func() ([]any, func()) {
						return []any{&id, &alias}, func() {
							if v := o.vmrs[id]; v != nil {
								v.Aliases = append(v.Aliases, alias)
							}
						}
					})
				}
			case "device":
				err = eachRef(ctx, q, `SELECT id, `+columns(account.DeviceFields, ", ")+` FROM devices WHERE id`+in, args, func() ([]any, func()) {
					d := &account.Device{}
					return append([]any{&d.ID}, scanFields(account.DeviceFields, d)...), func() { o.devices[d.ID] = d }
				})
			case "activation":
				err = eachRef(ctx, q, `SELECT id, userid, email, first_name, last_name, license FROM users WHERE id`+in, args, func() ([]any, func()) {
					u := &account.User{}
					return []any{&u.ID, &u.UserID, &u.Email, &u.FirstName, &u.LastName, &u.License}, func() { o.users[u.ID] = u }
				})
			default:
				err = fmt.Errorf("an email of kind %q references no object", kind)
			}
			if err != nil {
				return nil, fmt.Errorf("read the objects emails reference: %w", err)
			}
		}
	}
	return o, nil
}

// eachRef runs query and scans each row into the destinations row gives, then calls the
// function it gave with them.
func eachRef(ctx context.Context, q sqlx.QueryerContext, query string, args []any, row func() ([]any, func())) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		dest, scanned := row()
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		scanned()
	}
	return rows.Err()
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
func (o *refObjects) objectVars(vars []Var, kind string, id int64, action string) ([]Var, bool) {
	switch kind {
	case "vmr":
		if v := o.vmrs[id]; v != nil {
			return AppendVMRVars(vars, v, action), true
		}
	case "device":
		if d := o.devices[id]; d != nil {
			return AppendDeviceVars(vars, d, action), true
		}
	case "activation":
		if u := o.users[id]; u != nil {
			return AppendUserVars(vars, u, action), true
		}
	}
	return nil, false
}

// varsJSON is the vars of an email of kind and action whose template is subject and body
// and whose object is row id: what Writer.Enqueue stores by value (the variables the
// template may read, MayRead, as appendVars encodes them).
func (o *refObjects) varsJSON(kind string, id int64, action, subject, body string) (string, error) {
	all, ok := o.objectVars(o.vars[:0], kind, id, action)
	if !ok {
		return "", fmt.Errorf("%s row %d is gone", refTables[kind], id)
	}
	used := all[:0]
	for _, v := range all {
		if MayRead(subject, body, v.Name) {
			used = append(used, v)
		}
	}
	o.vars = all
	var err error
	if o.buf, err = appendVars(o.buf[:0], &Email{VarList: used}); err != nil {
		return "", err
	}
	return string(o.buf), nil
}

// resolveRefs sets the variables of the rows that reference their object; the rows'
// templates must be filled.
func resolveRefs(ctx context.Context, q sqlx.QueryerContext, rows []OutboxRow) error {
	ids := map[string][]int64{}
	for i := range rows {
		if r := &rows[i]; r.RefID != nil {
			ids[r.Kind] = append(ids[r.Kind], *r.RefID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	objs, err := loadRefs(ctx, q, ids)
	if err != nil {
		return err
	}
	for i := range rows {
		r := &rows[i]
		if r.RefID == nil {
			continue
		}
		if r.Vars, err = objs.varsJSON(r.Kind, *r.RefID, r.Action, r.Subject, r.Body); err != nil {
			return fmt.Errorf("variables of outbox row %d: %w", r.ID, err)
		}
	}
	return nil
}

// materialize writes the variables of the emails referencing row id of kind's table into
// them and clears their reference: call it before updating or deleting the row (or a
// VMR's aliases). The triggers of migration 007 refuse the update otherwise.
func (w *Writer) materialize(kind string, id int64) error {
	if err := w.sync(); err != nil {
		return err
	}
	var rows []OutboxRow
	if err := w.stmts["ref.find"].SelectContext(w.ctx, &rows, kind, id); err != nil {
		return fmt.Errorf("materialize emails of %s %d: %w", kind, id, err)
	}
	return w.materializeRows(rows)
}

// MaterializeEmails materializes the emails referencing rows ids of kind's table, as
// materialize does one by one, with a query per refChunk ids: an apply calls it with the
// objects it is about to update or delete, which then find nothing left to do.
func (w *Writer) MaterializeEmails(kind string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := w.sync(); err != nil {
		return err
	}
	for start := 0; start < len(ids); start += refChunk {
		chunk := ids[start:min(start+refChunk, len(ids))]
		args := make([]any, 0, 1+len(chunk))
		args = append(args, kind)
		for _, id := range chunk {
			args = append(args, id)
		}
		var rows []OutboxRow
		if err := w.tx.SelectContext(w.ctx, &rows, refFindSQL+` IN (?`+strings.Repeat(",?", len(chunk)-1)+`)`, args...); err != nil {
			return fmt.Errorf("materialize emails of %s: %w", kind, err)
		}
		if err := w.materializeRows(rows); err != nil {
			return err
		}
	}
	return nil
}

// materializeRows writes the variables of rows (read by refFindSQL) and clears their reference.
func (w *Writer) materializeRows(rows []OutboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := fillTemplates(w.ctx, w.tx, rows); err != nil {
		return fmt.Errorf("materialize emails: %w", err)
	}
	if err := resolveRefs(w.ctx, w.tx, rows); err != nil {
		return fmt.Errorf("materialize emails: %w", err)
	}
	for i := range rows {
		if _, err := w.stmts["ref.materialize"].ExecContext(w.ctx, rows[i].Vars, rows[i].ID); err != nil {
			return fmt.Errorf("materialize outbox row %d: %w", rows[i].ID, err)
		}
	}
	return nil
}

// refFindSQL reads the emails referencing rows of a kind's table, ending in "ref_id".
const refFindSQL = `SELECT id, kind, action, email_template, ref_id FROM outbox WHERE kind = ? AND ref_id`

// refSQL are the writer's statements of materialize.
var refSQL = map[string]string{
	"ref.find":        refFindSQL + ` = ?`,
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
