// Package state keeps roster's actual state in SQLite: the VMRs, devices, users,
// tracking codes and invitations roster has applied, the sync status of each template,
// the audit log and the email outbox. Schema changes are embedded, numbered migrations
// applied in a transaction and recorded in schema_migrations.
package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	sqlite3 "github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the state database.
type DB struct {
	*sqlx.DB
	Path string
}

// TimeFormat is how times are stored: RFC 3339 with nanoseconds, UTC, so text order is time order.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTime renders t for storage.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime reads a stored time; "" is the zero time.
func ParseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// cacheSizeKiB is each connection's page cache (a negative cache_size is KiB): room for
// the indexes an apply inserts into. Scans shrink theirs while they run (rawLoad).
const cacheSizeKiB = -65536

// driverName is go-sqlite3 with roster's per-connection settings (see connectHook).
const driverName = "sqlite3_roster"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: connectHook})
}

// connectHook sets what the DSN cannot. temp_store=MEMORY keeps statement journals in
// memory: every multi-row INSERT of an apply opens one (it may fail half-way), and on
// the default file store each spilled to a temporary file, 1.9 million pwrite calls
// for a first apply of 400,000 people. A journal holds only the pages one statement
// of batchSize rows touches, so memory stays small. It must be set before a write
// transaction begins, hence here rather than in the transaction.
func connectHook(c *sqlite3.SQLiteConn) error {
	_, err := c.Exec("PRAGMA temp_store = MEMORY", nil)
	return err
}

// Open opens (creating with mode 0600 if needed) the SQLite database at dsn and applies
// pending migrations. dsn ":memory:" gives a private in-memory database.
func Open(ctx context.Context, dsn string) (*DB, error) {
	memory := dsn == ":memory:" || strings.Contains(dsn, "mode=memory")
	if !memory {
		f, err := os.OpenFile(dsn, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open state database: %w", err)
		}
		f.Close()
	}
	params := fmt.Sprintf("_mutex=no&_foreign_keys=on&_busy_timeout=10000&_txlock=immediate&_synchronous=NORMAL&_cache_size=%d", cacheSizeKiB)
	if !memory {
		params += "&_journal_mode=WAL"
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	full := "file:" + dsn + sep + params
	if strings.HasPrefix(dsn, "file:") {
		full = dsn + sep + params
	}
	sdb, err := sqlx.Open(driverName, full)
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", dsn, err)
	}
	if memory {
		// Each connection to :memory: is its own database: keep exactly one.
		sdb.SetMaxOpenConns(1)
	}
	db := &DB{DB: sdb, Path: dsn}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return db, nil
}

// migrate applies, in one transaction each, the embedded migrations not yet recorded.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate state database: %w", err)
	}
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate state database: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var applied int
	if err := db.GetContext(ctx, &applied, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return fmt.Errorf("migrate state database: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("migrate state database: bad migration name %q", name)
		}
		if version <= applied {
			continue
		}
		body, err := migrations.ReadFile(path.Join("migrations", name))
		if err != nil {
			return fmt.Errorf("migrate state database: %w", err)
		}
		if err := db.applyMigration(ctx, version, name, string(body)); err != nil {
			return fmt.Errorf("migrate state database: apply %s: %w", name, err)
		}
	}
	return nil
}

// applyMigration runs one migration in a transaction with foreign keys off, as SQLite's
// procedure for changing a table's schema wants: a table is rebuilt as a new one, the old
// one dropped and the new one renamed, and with foreign keys on dropping a parent table
// deletes its rows first, cascading to their children. The keys are checked before the
// commit instead (foreign_key_check), and turned back on for the pool's connection.
func (db *DB) applyMigration(ctx context.Context, version int, name, body string) error {
	conn, err := db.Connx(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Not inside a transaction: there the pragma does nothing.
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), `PRAGMA foreign_keys = ON`)
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	return runTx(conn, tx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, body); err != nil {
			return err
		}
		var bad []struct {
			Table  string        `db:"table"`
			RowID  sql.NullInt64 `db:"rowid"`
			Parent string        `db:"parent"`
			FKID   int64         `db:"fkid"`
		}
		if err := tx.SelectContext(ctx, &bad, `PRAGMA foreign_key_check`); err != nil {
			return err
		}
		if len(bad) > 0 {
			return fmt.Errorf("%d rows break a foreign key, the first in %s (rowid %d, parent %s)",
				len(bad), bad[0].Table, bad[0].RowID.Int64, bad[0].Parent)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`,
			version, name, FormatTime(time.Now()))
		return err
	})
}

// InTx runs fn in one transaction, committed when fn returns nil, rolled back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	conn, err := db.Connx(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	return runTx(conn, tx, fn)
}

// txConns maps each transaction of InTx and InBulkTx to its connection while fn runs: a
// Writer executes its batches on the driver's connection (Writer.rawExec), past
// database/sql's conversion and copy of every argument.
var txConns sync.Map // *sqlx.Tx → *sqlx.Conn

// runTx runs fn in tx, begun on conn, and commits, or rolls back when fn fails.
func runTx(conn *sqlx.Conn, tx *sqlx.Tx, fn func(tx *sqlx.Tx) error) error {
	txConns.Store(tx, conn)
	err := fn(tx)
	txConns.Delete(tx)
	if err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Meta reads a value of the meta table; "" when absent.
func (db *DB) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := db.GetContext(ctx, &v, `SELECT value FROM meta WHERE key = ?`, key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read meta %s: %w", key, err)
	}
	return v, nil
}

// SetMeta writes a value of the meta table inside tx.
func SetMeta(ctx context.Context, tx sqlx.ExecerContext, key, value string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("write meta %s: %w", key, err)
	}
	return nil
}

// execByIDs runs update, a statement ending in "WHERE id IN", with lead as its first
// argument, for ids 500 at a time: one statement per chunk (SQLite allows 32766 parameters).
func execByIDs(ctx context.Context, tx sqlx.ExecerContext, update string, lead any, ids []int64) error {
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		args := make([]any, 0, end-start+1)
		args = append(args, lead)
		for _, id := range ids[start:end] {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, update+` (?`+strings.Repeat(",?", end-start-1)+`)`, args...); err != nil {
			return err
		}
	}
	return nil
}

// StateVersion is bumped by every apply that changes something; a saved plan records
// it and is refused once it moved.
func (db *DB) StateVersion(ctx context.Context) (int64, error) {
	v, err := db.Meta(ctx, "state_version")
	if err != nil || v == "" {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// SecretKey returns the key that keeps generated values stable (SPEC §5.5): fromEnv when
// set, otherwise a random key made on first use and kept in the database.
func (db *DB) SecretKey(ctx context.Context, fromEnv string) ([]byte, error) {
	if fromEnv != "" {
		return []byte(fromEnv), nil
	}
	v, err := db.Meta(ctx, "secret_key")
	if err != nil {
		return nil, err
	}
	if v == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("make secret key: %w", err)
		}
		v = hex.EncodeToString(b)
		// INSERT OR IGNORE: two processes racing on first use agree on the first key written.
		if _, err := db.ExecContext(ctx, `INSERT OR IGNORE INTO meta(key, value) VALUES ('secret_key', ?)`, v); err != nil {
			return nil, fmt.Errorf("store secret key: %w", err)
		}
		if v, err = db.Meta(ctx, "secret_key"); err != nil {
			return nil, err
		}
	}
	return []byte(v), nil
}
