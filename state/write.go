package state

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	sqlite3 "github.com/mattn/go-sqlite3"
	"github.com/roster-dev/roster/schema/account"
)

// Writer applies changes inside one transaction with prepared statements, so an apply of
// hundreds of thousands of rows costs one statement execution per row and one commit.
type Writer struct {
	ctx   context.Context
	tx    *sqlx.Tx
	now   string
	stmts map[string]*sqlx.Stmt
	// Created rows, aliases and audit rows are many and small: they are buffered and
	// written batchSize rows per statement, which divides the per-statement cost (a cgo
	// call, binding) of an apply of 400,000 people by that much. Created rows get their
	// ids from the writer (nextID), so aliases can reference a VMR not yet flushed;
	// foreign keys are checked at commit (defer_foreign_keys).
	batches map[string]*batch
	nextID  map[string]int64
	aliases []aliasRow // of VMRs whose rows are not queued yet (putAliases)

	templates emailTemplates // the email templates written by Enqueue
	vars      []byte         // scratch for one email's variables

	// Full batches run on a goroutine of their own while the caller fills the next one:
	// SQLite's work (one core) and building the rows (the other) overlap. Every other
	// statement first waits for the batches queued before it (sync), so statements run in
	// the order they were made; a batch's error is returned by the next call.
	jobs   chan execJob
	spare  chan []any
	exited chan struct{}
	errMu  sync.Mutex
	err    error

	// conn is tx's connection when InTx or InBulkTx began it: full batches then run as
	// statements of the driver's own (batch.raw) with the arguments in one reused slice
	// (named), where database/sql converts and copies every one of them — 1.34 GB of
	// arguments in a first apply of 400,000 people. nil: through tx.
	conn  *sqlx.Conn
	named []driver.NamedValue // the executor's
}

// execJob is a full batch to execute, or (ack set) a marker the executor closes when
// everything queued before it has run.
type execJob struct {
	name string
	b    *batch
	raw  driver.Stmt // b's statement for the columns args binds once (batch.variant); nil: b.full
	args []any
	ack  chan struct{}
}

// run executes queued batches in order until jobs is closed.
func (w *Writer) run() {
	defer close(w.exited)
	for j := range w.jobs {
		if j.ack != nil {
			close(j.ack)
			continue
		}
		if w.failed() == nil {
			if err := w.execBatch(j.b, j.raw, j.args); err != nil {
				w.errMu.Lock()
				w.err = fmt.Errorf("%s: %w", j.name, err)
				w.errMu.Unlock()
			}
		}
		select {
		case w.spare <- j.args[:0]:
		default:
		}
	}
}

// execBatch executes a full batch with args: raw, a statement of the driver's, or b.full.
func (w *Writer) execBatch(b *batch, raw driver.Stmt, args []any) error {
	if raw == nil {
		_, err := b.full.ExecContext(w.ctx, args...)
		return err
	}
	// The driver's statement is run with no context: go-sqlite3 would start a goroutine
	// per execution to watch one. A batch takes milliseconds; the context is checked
	// before each.
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if cap(w.named) < len(args) {
		w.named = make([]driver.NamedValue, len(args))
	}
	nv := w.named[:len(args)]
	for i, a := range args {
		v, err := driverValue(a)
		if err != nil {
			return fmt.Errorf("argument %d: %w", i+1, err)
		}
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	err := w.conn.Raw(func(any) error {
		_, err := raw.(driver.StmtExecContext).ExecContext(context.Background(), nv)
		return err
	})
	clear(nv) // the strings are not kept past the batch
	return err
}

// driverValue is a as go-sqlite3 binds it: database/sql's conversion, which the driver's
// own statements skip, for anything but the values the writer passes (strings, int64,
// bool, nil).
func driverValue(a any) (driver.Value, error) {
	switch a.(type) {
	case nil, string, int64, bool, float64, []byte, time.Time:
		return a, nil
	}
	return driver.DefaultParameterConverter.ConvertValue(a)
}

func (w *Writer) failed() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// sync waits until every queued batch has run and returns the first error of one.
func (w *Writer) sync() error {
	ack := make(chan struct{})
	w.jobs <- execJob{ack: ack}
	<-ack
	return w.failed()
}

// batchSize is how many rows one multi-row INSERT writes.
const batchSize = 200

// batch buffers the rows of one multi-row INSERT.
type batch struct {
	prefix string // INSERT INTO t(a, b, c) VALUES
	cols   int    // bound per row
	consts int    // leading columns bound once per statement, the same in every row (addConst)
	fixed  string // literals after the bound columns, the same for every row
	now    int    // trailing columns that are the writer's time, written into the SQL
	args   []any
	full   *sqlx.Stmt // prepared for batchSize rows
	// On the driver's connection (Writer.conn), a full batch's statement for each set of
	// columns that have one value in every row of a batch, bound once (bit c: column c).
	variants map[uint64]driver.Stmt
}

// batchSQL lists the batched inserts in the order Flush writes them.
// The trailing created_at/updated_at/at columns are the writer's time for every row: it is
// written into the statement, not bound 3.6 million times in a first apply of 400,000.
// An audit row's commit and actor, and an email's commit, are the same in every row of an
// apply: they are bound once per statement (consts), not 1.2 million times each.
var batchSQL = []struct {
	name, prefix, fixed string
	consts, cols, now   int
}{
	{"vmrs", `INSERT INTO vmrs(id, ` + columns(account.VMRFields, ", ") + `, created_at, updated_at) VALUES `,
		"", 0, 1 + len(columnFields(account.VMRFields)), 2},
	{"devices", `INSERT INTO devices(id, ` + columns(account.DeviceFields, ", ") + `, created_at, updated_at) VALUES `,
		"", 0, 1 + len(columnFields(account.DeviceFields)), 2},
	{"users", `INSERT INTO users(id, userid, email, first_name, last_name, language, host_privilege, time_zone, tracking,
		active, origin, license, sync_tag, entry_key, notified_at, created_at, updated_at) VALUES `, "", 0, 15, 2},
	{"alias", `INSERT INTO vmr_aliases(alias, vmr_id, pos) VALUES `, "", 0, 3, 0},
	// ids from the writer: an email written after an audit row names it (outbox.audit_after)
	{"audit", `INSERT INTO audit(commit_id, actor, id, kind, action, key, detail, at) VALUES `, "", 2, 5, 1},
	// pending, no attempt yet, due at the writer's time (Writer.Enqueue)
	{"outbox", `INSERT INTO outbox(commit_id, actor, audit_after, kind, action, object_key, template, to_addr, smtp_server,
		email_template, vars, ref_id, status, attempts, created_at, next_attempt_at) VALUES `, ",'pending',0", 3, 9, 2},
}

// id hands out the next row id of table (one past the highest at the writer's start).
func (w *Writer) id(table string) (int64, error) {
	if n, ok := w.nextID[table]; ok {
		w.nextID[table] = n + 1
		return n, nil
	}
	if err := w.sync(); err != nil {
		return 0, err
	}
	var max int64
	if err := w.tx.GetContext(w.ctx, &max, `SELECT COALESCE(MAX(id), 0) FROM `+table); err != nil {
		return 0, fmt.Errorf("next id of %s: %w", table, err)
	}
	w.nextID[table] = max + 2
	return max + 1, nil
}

// valuesSQL is b's prefix with rows rows: its consts leading parameters (?1…, the same
// in every row), cols parameters of the row's own, the fixed literals and now trailing
// time literals.
func (w *Writer) valuesSQL(b *batch, rows int) string {
	return w.variantSQL(b, rows, 0)
}

// variantSQL is valuesSQL where the columns of same (bit c: column c) have one parameter
// for all rows, numbered after the consts in column order; the others follow row by row
// (compact lays out the arguments so).
func (w *Writer) variantSQL(b *batch, rows int, same uint64) string {
	tail := b.fixed + strings.Repeat(",'"+w.now+"'", b.now) + ")"
	if b.consts == 0 && same == 0 {
		row := "(" + strings.Repeat("?,", b.cols-1) + "?" + tail
		return b.prefix + strings.Repeat(row+",", rows-1) + row
	}
	var sb strings.Builder
	sb.WriteString(b.prefix)
	shared := make([]int, b.cols) // the parameter of each column of same
	n := b.consts
	for c := range b.cols {
		if same&(1<<c) != 0 {
			n++
			shared[c] = n
		}
	}
	for r := 0; r < rows; r++ {
		if r > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for c := 1; c <= b.consts; c++ {
			fmt.Fprintf(&sb, "?%d,", c)
		}
		for c := 0; c < b.cols; c++ {
			if c > 0 {
				sb.WriteByte(',')
			}
			if shared[c] != 0 {
				fmt.Fprintf(&sb, "?%d", shared[c])
				continue
			}
			n++
			fmt.Fprintf(&sb, "?%d", n)
		}
		sb.WriteString(tail)
	}
	return sb.String()
}

// sameColumns returns the columns (bit c: column c) with one value in every row of args,
// a full batch: strings, numbers, booleans or NULL (the realistic profile's sync tag,
// language, call rates, an email's kind and template).
func sameColumns(b *batch, args []any) uint64 {
	rows := args[b.consts:]
	var same uint64
	for c := 0; c < b.cols && c < 64; c++ {
		v := rows[c]
		switch v.(type) {
		case nil, string, int64, bool:
		default:
			continue // not compared: a []byte would panic
		}
		i := c + b.cols
		for i < len(rows) && rows[i] == v {
			i += b.cols
		}
		if i >= len(rows) {
			same |= 1 << c
		}
	}
	return same
}

// compact appends to out args laid out for variantSQL(b, batchSize, same): the consts,
// one value of each column of same, then the other values row by row.
func compact(out []any, b *batch, args []any, same uint64) []any {
	out = append(out, args[:b.consts]...)
	rows := args[b.consts:]
	for c := 0; c < b.cols; c++ {
		if same&(1<<c) != 0 {
			out = append(out, rows[c])
		}
	}
	for r := 0; r < len(rows); r += b.cols {
		for c, v := range rows[r : r+b.cols] {
			if same&(1<<c) == 0 {
				out = append(out, v)
			}
		}
	}
	return out
}

// variant returns b's full-batch statement on the driver's connection for same,
// preparing it on first use (a few per table).
func (w *Writer) variant(name string, b *batch, same uint64) (driver.Stmt, error) {
	if st, ok := b.variants[same]; ok {
		return st, nil
	}
	var st driver.Stmt
	err := w.conn.Raw(func(dc any) error {
		sc, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		var err error
		st, err = sc.Prepare(w.variantSQL(b, batchSize, same))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", name, err)
	}
	b.variants[same] = st
	return st, nil
}

// add buffers one row and writes a full batch.
func (w *Writer) add(name string, args ...any) error {
	b := w.batches[name]
	b.args = append(b.args, args...)
	return w.queued(name, b)
}

// addConst buffers one row of a batch with constants: args are the constants, then the
// row's own values. A row whose constants differ from those of the rows buffered first
// writes those.
func (w *Writer) addConst(name string, args ...any) error {
	b := w.batches[name]
	if len(b.args) > 0 && !slices.Equal(b.args[:b.consts], args[:b.consts]) {
		if err := w.writePartial(name, b); err != nil {
			return err
		}
	}
	if len(b.args) == 0 {
		b.args = append(b.args, args[:b.consts]...)
	}
	b.args = append(b.args, args[b.consts:]...)
	return w.queued(name, b)
}

// columnFields are the fields of an account table's columns (all but lists), in order.
func columnFields[T any](fields []account.Field[T]) []account.Field[T] {
	var out []account.Field[T]
	for _, f := range fields {
		if f.Column != "" {
			out = append(out, f)
		}
	}
	return out
}

// columns joins the column names of fields with sep after each but the last.
func columns[T any](fields []account.Field[T], sep string) string {
	var names []string
	for _, f := range columnFields(fields) {
		names = append(names, f.Column)
	}
	return strings.Join(names, sep)
}

// appendColumns appends the values of x's columns, in the order of columns. Numbers go
// as int64, a driver value: database/sql converts an int by reflection, and it does so on
// the batch goroutine, the apply's critical path.
func appendColumns[T any](args []any, fields []account.Field[T], x *T) []any {
	for i := range fields {
		switch f := &fields[i]; {
		case f.Column == "":
		case f.Type == account.Int:
			args = append(args, int64(*f.Num(x)))
		default:
			args = append(args, f.Value(x))
		}
	}
	return args
}

// insert queues x as a new row of an account table (its id, then its columns) and sets
// its id; what names the kind in errors, which name x by its first field (name, alias).
func insert[T any](w *Writer, table, what string, fields []account.Field[T], x *T, id *int64) error {
	n, err := w.id(table)
	if err != nil {
		return err
	}
	b := w.batches[table]
	b.args = appendColumns(append(b.args, n), fields, x)
	if err := w.queued(table, b); err != nil {
		return fmt.Errorf("create %s %q: %w", what, *fields[0].Str(x), err)
	}
	*id = n
	return nil
}

// queued sends b's rows to be written once a batch is full.
func (w *Writer) queued(name string, b *batch) error {
	if len(b.args) < b.consts+batchSize*b.cols {
		return nil
	}
	j := execJob{name: name, b: b, args: b.args}
	if w.conn != nil {
		// Bound once, the columns with one value in the batch are 44 % fewer values to
		// bind in a first apply, each a cgo call and a copy into SQLite.
		same := sameColumns(b, b.args)
		st, err := w.variant(name, b, same)
		if err != nil {
			return err
		}
		j.raw, j.args = st, compact(w.spareArgs(b), b, b.args, same)
		b.args = b.args[:0] // refilled here; the compact copy is the executor's
	} else {
		b.args = w.spareArgs(b)
	}
	w.jobs <- j
	return w.failed()
}

// spareArgs is an empty slice for a full batch of b, one the executor is done with if any.
func (w *Writer) spareArgs(b *batch) []any {
	select {
	case a := <-w.spare:
		return a
	default:
		return make([]any, 0, b.consts+batchSize*b.cols)
	}
}

// Flush writes the buffered rows, parents before children; call it before committing.
func (w *Writer) Flush() error {
	if err := w.sync(); err != nil {
		return err
	}
	for _, bs := range batchSQL {
		if bs.name == "alias" { // their VMRs were written just before (vmrs comes first)
			if err := w.queueAliases(); err != nil {
				return err
			}
			if err := w.sync(); err != nil {
				return err
			}
		}
		if err := w.writePartial(bs.name, w.batches[bs.name]); err != nil {
			return err
		}
	}
	return nil
}

// writePartial writes b's buffered rows, fewer than a full batch, after the queued ones.
func (w *Writer) writePartial(name string, b *batch) error {
	if len(b.args) == 0 {
		return nil
	}
	if err := w.sync(); err != nil {
		return err
	}
	if _, err := w.tx.ExecContext(w.ctx, w.valuesSQL(b, (len(b.args)-b.consts)/b.cols), b.args...); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	b.args = b.args[:0]
	return nil
}

var writerSQL = map[string]string{
	"vmr.update":    `UPDATE vmrs SET ` + columns(account.VMRFields, "=?, ") + `=?, updated_at=? WHERE id=?`,
	"vmr.delete":    `DELETE FROM vmrs WHERE id=?`,
	"alias.clear":   `DELETE FROM vmr_aliases WHERE vmr_id=?`,
	"device.update": `UPDATE devices SET ` + columns(account.DeviceFields, "=?, ") + `=?, updated_at=? WHERE id=?`,
	"device.delete": `DELETE FROM devices WHERE id=?`,
	"user.update":   `UPDATE users SET email=?, first_name=?, last_name=?, language=?, host_privilege=?, time_zone=?, tracking=?, active=?, origin=?, license=?, sync_tag=?, entry_key=?, notified_at=COALESCE(notified_at, ?), updated_at=? WHERE id=?`,
	"invite.upsert": `INSERT INTO invites(email, name, username, status, invited_at, expires_at, accepted_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(email) DO UPDATE SET name=excluded.name, username=excluded.username, status=excluded.status, invited_at=excluded.invited_at, expires_at=excluded.expires_at, accepted_at=excluded.accepted_at`,
	"tracking.put":  `INSERT INTO tracking_groups(slot, name, input_mode, usage, sort, codes) VALUES (?,?,?,?,?,?) ON CONFLICT(slot) DO UPDATE SET name=excluded.name, input_mode=excluded.input_mode, usage=excluded.usage, sort=excluded.sort, codes=excluded.codes`,
	"tracking.del":  `DELETE FROM tracking_groups WHERE slot=?`,
	"reminder.done": `INSERT OR IGNORE INTO reminders_done(id, at, commit_id) VALUES (?,?,?)`,
	"status.put":    `INSERT INTO sync_status(template, state, last_run, commit_id, created, updated, deleted, deactivated, unchanged, warnings, last_error) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(template) DO UPDATE SET state=excluded.state, last_run=excluded.last_run, commit_id=excluded.commit_id, created=excluded.created, updated=excluded.updated, deleted=excluded.deleted, deactivated=excluded.deactivated, unchanged=excluded.unchanged, warnings=excluded.warnings, last_error=excluded.last_error`,
	"status.del":    `DELETE FROM sync_status WHERE template=?`,
	"template.put":  insertTemplateSQL,
}

// NewWriter prepares the statements of an apply inside tx.
func NewWriter(ctx context.Context, tx *sqlx.Tx, now time.Time) (*Writer, error) {
	w := &Writer{ctx: ctx, tx: tx, now: FormatTime(now), stmts: map[string]*sqlx.Stmt{}, batches: map[string]*batch{},
		nextID: map[string]int64{}}
	if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
		return nil, fmt.Errorf("defer foreign keys: %w", err)
	}
	for name, q := range writerSQL {
		if err := w.prepare(name, q); err != nil {
			return nil, err
		}
	}
	for name, q := range refSQL {
		if err := w.prepare(name, q); err != nil {
			return nil, err
		}
	}
	for _, b := range batchSQL {
		bt := &batch{prefix: b.prefix, consts: b.consts, cols: b.cols, fixed: b.fixed, now: b.now}
		st, err := tx.PreparexContext(ctx, w.valuesSQL(bt, batchSize))
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("prepare %s: %w", b.name, err)
		}
		bt.full = st
		w.batches[b.name] = bt
	}
	if c, ok := txConns.Load(tx); ok {
		w.conn = c.(*sqlx.Conn)
		var err error
		for _, b := range batchSQL {
			bt := w.batches[b.name]
			bt.variants = map[uint64]driver.Stmt{}
			if _, err = w.variant(b.name, bt, 0); err != nil {
				break
			}
		}
		if err != nil {
			w.Close()
			return nil, err
		}
	}
	w.jobs, w.spare, w.exited = make(chan execJob, 1), make(chan []any, 4), make(chan struct{})
	go w.run()
	return w, nil
}

// prepare prepares the statement name of the writer; on error it closes the writer.
func (w *Writer) prepare(name, q string) error {
	st, err := w.tx.PreparexContext(w.ctx, q)
	if err != nil {
		w.Close()
		return fmt.Errorf("prepare %s: %w", name, err)
	}
	w.stmts[name] = st
	return nil
}

// Close stops the batch executor (after the batches queued) and releases the prepared
// statements.
func (w *Writer) Close() {
	if w.jobs != nil {
		close(w.jobs)
		<-w.exited
		w.jobs = nil
	}
	for _, st := range w.stmts {
		st.Close()
	}
	for _, b := range w.batches {
		if b.full != nil {
			b.full.Close()
		}
		for _, st := range b.variants {
			w.conn.Raw(func(any) error { return st.Close() })
		}
	}
}

func (w *Writer) exec(name string, args ...any) (int64, error) {
	if err := w.sync(); err != nil {
		return 0, err
	}
	res, err := w.stmts[name].ExecContext(w.ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	id, _ := res.LastInsertId()
	return id, nil
}

// InsertVMR creates v with its aliases and sets v.ID.
func (w *Writer) InsertVMR(v *account.VMR) error {
	if err := insert(w, "vmrs", "vmr", account.VMRFields, v, &v.ID); err != nil {
		return err
	}
	w.putAliases(v)
	if len(w.batches["vmrs"].args) == 0 { // v's batch was just queued: its aliases follow it
		return w.queueAliases()
	}
	return nil
}

// UpdateVMR rewrites the VMR with id v.ID and its aliases.
func (w *Writer) UpdateVMR(v *account.VMR) error {
	if err := w.materialize("vmr", v.ID); err != nil {
		return err
	}
	if _, err := w.exec("vmr.update", append(appendColumns(nil, account.VMRFields, v), w.now, v.ID)...); err != nil {
		return fmt.Errorf("update vmr %q: %w", v.Name, err)
	}
	if err := w.Flush(); err != nil { // aliases of earlier VMRs may be the ones to clear
		return err
	}
	if _, err := w.exec("alias.clear", v.ID); err != nil {
		return err
	}
	w.putAliases(v)
	return nil
}

// putAliases holds v's aliases until v's row is queued (queueAliases): an alias row
// never runs before its VMR's, and only the aliases of the VMRs of one unwritten batch
// are held — not every alias of a first apply (1.2 million for 400,000 people) to sort
// them. In VMR order, the index on vmr_id grows at its end; the alias key takes them
// where they fall.
func (w *Writer) putAliases(v *account.VMR) {
	for i, a := range v.Aliases {
		w.aliases = append(w.aliases, aliasRow{alias: a, vmrID: v.ID, pos: int64(i)})
	}
}

// queueAliases adds the held aliases to their batch, once their VMRs' rows are queued.
func (w *Writer) queueAliases() error {
	for _, r := range w.aliases {
		if err := w.add("alias", r.alias, r.vmrID, r.pos); err != nil {
			return err
		}
	}
	w.aliases = w.aliases[:0]
	return nil
}

type aliasRow struct {
	alias string
	vmrID int64
	pos   int64 // a driver value, as vmrID (see appendColumns)
}

// DeleteVMR removes a VMR; its aliases go with it (ON DELETE CASCADE).
func (w *Writer) DeleteVMR(id int64) error {
	if err := w.materialize("vmr", id); err != nil {
		return err
	}
	_, err := w.exec("vmr.delete", id)
	return err
}

// InsertDevice creates d and sets d.ID.
func (w *Writer) InsertDevice(d *account.Device) error {
	return insert(w, "devices", "device", account.DeviceFields, d, &d.ID)
}

func (w *Writer) UpdateDevice(d *account.Device) error {
	if err := w.materialize("device", d.ID); err != nil {
		return err
	}
	_, err := w.exec("device.update", append(appendColumns(nil, account.DeviceFields, d), w.now, d.ID)...)
	if err != nil {
		return fmt.Errorf("update device %q: %w", d.Alias, err)
	}
	return nil
}

func (w *Writer) DeleteDevice(id int64) error {
	if err := w.materialize("device", id); err != nil {
		return err
	}
	_, err := w.exec("device.delete", id)
	return err
}

func (w *Writer) notifiedAt(u *account.User) any {
	if u.Notified {
		return w.now
	}
	return nil
}

func (w *Writer) InsertUser(u *account.User) error {
	id, err := w.id("users")
	if err != nil {
		return err
	}
	if err := w.add("users", id, u.UserID, u.Email, u.FirstName, u.LastName, u.Language, u.HostPrivilege,
		u.TimeZone, trackingDB(u.Tracking), u.Active, u.Origin, u.License, u.SyncTag, u.EntryKey,
		w.notifiedAt(u)); err != nil {
		return fmt.Errorf("create user %q: %w", u.Email, err)
	}
	u.ID = id
	return nil
}

// UpdateUser rewrites the user with id u.ID. notified_at is only ever set, never cleared:
// the activation email goes once in a lifetime.
func (w *Writer) UpdateUser(u *account.User) error {
	if err := w.materialize("activation", u.ID); err != nil {
		return err
	}
	_, err := w.exec("user.update", u.Email, u.FirstName, u.LastName, u.Language, u.HostPrivilege, u.TimeZone,
		trackingDB(u.Tracking), u.Active, u.Origin, u.License, u.SyncTag, u.EntryKey, w.notifiedAt(u), w.now, u.ID)
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.Email, err)
	}
	return nil
}

func (w *Writer) PutInvite(in *account.Invite) error {
	var acc any
	if !in.AcceptedAt.IsZero() {
		acc = FormatTime(in.AcceptedAt)
	}
	_, err := w.exec("invite.upsert", in.Email, in.Name, in.Username, in.Status, FormatTime(in.InvitedAt),
		FormatTime(in.ExpiresAt), acc)
	if err != nil {
		return fmt.Errorf("write invite %q: %w", in.Email, err)
	}
	return nil
}

func (w *Writer) PutTrackingGroup(g *account.TrackingGroup) error {
	codes, _ := json.Marshal(g.Codes)
	_, err := w.exec("tracking.put", g.Slot, g.Name, g.InputMode, g.Usage, g.Sort, string(codes))
	return err
}

func (w *Writer) DeleteTrackingGroup(slot string) error {
	_, err := w.exec("tracking.del", slot)
	return err
}

// Audit records one applied change, email or reminder.
func (w *Writer) Audit(commit, actor string, kind account.Kind, action account.Action, key, detail string) error {
	id, err := w.id("audit")
	if err != nil {
		return err
	}
	// Plain strings: the driver converts a named string type by reflection, an allocation each.
	return w.addConst("audit", commit, actor, id, string(kind), string(action), key, detail)
}

// lastAudit is the id of the last audit row written, by this writer or before it (0 for none).
func (w *Writer) lastAudit() (int64, error) {
	if n, ok := w.nextID["audit"]; ok {
		return n - 1, nil
	}
	n, err := w.id("audit") // reads the highest id, then gives the id back
	w.nextID["audit"] = n
	return n - 1, err
}

func (w *Writer) ReminderDone(id, commit string) error {
	_, err := w.exec("reminder.done", id, w.now, commit)
	return err
}

// SyncStatus is the outcome of one template's last reconcile.
type SyncStatus struct {
	Template    string    `json:"template" db:"template"`
	State       string    `json:"state" db:"state"`
	LastRun     time.Time `json:"last_run" db:"-"`
	Commit      string    `json:"commit" db:"commit_id"`
	Created     int       `json:"created" db:"created"`
	Updated     int       `json:"updated" db:"updated"`
	Deleted     int       `json:"deleted" db:"deleted"`
	Deactivated int       `json:"deactivated" db:"deactivated"`
	Unchanged   int       `json:"unchanged" db:"unchanged"`
	Warnings    []string  `json:"warnings" db:"-"`
	LastError   string    `json:"last_error" db:"last_error"`
}

func (w *Writer) PutSyncStatus(s SyncStatus) error {
	warn, _ := json.Marshal(s.Warnings)
	if s.Warnings == nil {
		warn = []byte("[]")
	}
	_, err := w.exec("status.put", s.Template, s.State, FormatTime(s.LastRun), s.Commit, s.Created, s.Updated,
		s.Deleted, s.Deactivated, s.Unchanged, string(warn), s.LastError)
	return err
}

func (w *Writer) DeleteSyncStatus(template string) error {
	_, err := w.exec("status.del", template)
	return err
}

// StateVersion is the state version as this transaction sees it (0 before the first
// apply): a plan made at another version is stale.
func (w *Writer) StateVersion() int64 {
	var cur string
	_ = w.tx.GetContext(w.ctx, &cur, `SELECT value FROM meta WHERE key='state_version'`)
	n, _ := strconv.ParseInt(cur, 10, 64)
	return n
}

// BumpStateVersion moves the state version on by one and returns the new value.
func (w *Writer) BumpStateVersion(commit string) (int64, error) {
	if err := w.sync(); err != nil {
		return 0, err
	}
	n := w.StateVersion() + 1
	if err := SetMeta(w.ctx, w.tx, "state_version", strconv.FormatInt(n, 10)); err != nil {
		return 0, err
	}
	if err := SetMeta(w.ctx, w.tx, "applied_commit", commit); err != nil {
		return 0, err
	}
	return n, nil
}

// SyncStatuses reads every template's last sync status.
func (db *DB) SyncStatuses(ctx context.Context) ([]SyncStatus, error) {
	rows, err := db.QueryxContext(ctx, `SELECT template, state, last_run, commit_id, created, updated, deleted,
		deactivated, unchanged, warnings, last_error FROM sync_status ORDER BY template`)
	if err != nil {
		return nil, fmt.Errorf("read sync status: %w", err)
	}
	defer rows.Close()
	var out []SyncStatus
	for rows.Next() {
		var s SyncStatus
		var last, warn string
		if err := rows.Scan(&s.Template, &s.State, &last, &s.Commit, &s.Created, &s.Updated, &s.Deleted,
			&s.Deactivated, &s.Unchanged, &warn, &s.LastError); err != nil {
			return nil, fmt.Errorf("read sync status: %w", err)
		}
		s.LastRun = ParseTime(last)
		json.Unmarshal([]byte(warn), &s.Warnings)
		out = append(out, s)
	}
	return out, rows.Err()
}

// AuditEntry is one audit log row.
type AuditEntry struct {
	At     string `json:"at" db:"at"`
	Commit string `json:"commit" db:"commit_id"`
	Actor  string `json:"actor" db:"actor"`
	Kind   string `json:"kind" db:"kind"`
	Action string `json:"action" db:"action"`
	Key    string `json:"key" db:"key"`
	Detail string `json:"detail" db:"detail"`
}

// RecentAudit returns the newest audit records first: the audit rows and the emails that
// are their own audit record (outbox.audit_after, migration 007), each shown as the audit
// row it replaces (kind "email", key "KIND KEY", detail "to ADDRESS"). An email comes
// after the audit row it names and before the next one; emails naming the same row come in
// outbox order. (audit_after grows with the outbox id: the latest emails are the last rows.)
func (db *DB) RecentAudit(ctx context.Context, limit int) ([]AuditEntry, error) {
	type rec struct {
		AuditEntry
		ID    int64 `db:"id"`
		After int64 `db:"audit_after"`
	}
	var audit, emails []rec
	err := db.readTx(ctx, func(c *sqlx.Conn) error {
		if err := c.SelectContext(ctx, &audit, `SELECT id, at, commit_id, actor, kind, action, key, detail FROM audit
			ORDER BY id DESC LIMIT ?`, limit); err != nil {
			return err
		}
		return c.SelectContext(ctx, &emails, `SELECT id, audit_after, created_at AS at, commit_id, actor, 'email' AS kind,
			action, kind || ' ' || object_key AS key, 'to ' || to_addr AS detail FROM outbox
			WHERE audit_after IS NOT NULL ORDER BY id DESC LIMIT ?`, limit)
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	var out []AuditEntry // nil when there is none, as it always was
	for len(out) < limit && len(audit)+len(emails) > 0 {
		if len(emails) > 0 && (len(audit) == 0 || emails[0].After >= audit[0].ID) {
			out, emails = append(out, emails[0].AuditEntry), emails[1:]
		} else {
			out, audit = append(out, audit[0].AuditEntry), audit[1:]
		}
	}
	return out, nil
}
