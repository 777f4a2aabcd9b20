package state

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"
)

// InBulkTx is InTx for a transaction that writes mostly new pages: a first apply into an
// empty database, which writes hundreds of megabytes. In WAL mode every page goes to the
// WAL at commit and is then copied into the database by the checkpoint: written twice,
// read once more. When this connection is the only one open on the database, the
// transaction runs in rollback-journal mode instead: pages past the old end of the file
// need no journal, so they are written once, straight into the database. Crash safety
// is the journal's: a process killed mid-transaction leaves a hot journal, and the next
// open rolls the file back to the old state (and the DSN puts it back in WAL mode).
// synchronous is FULL meanwhile, rollback mode's setting for a durable commit.
//
// When another connection is in use on the database, SQLite refuses the switch and the
// transaction runs as InTx's, in WAL mode. Readers that open the database while the
// transaction runs wait for it (busy_timeout) where in WAL mode they would have read the
// old state; the caller uses this only where that old state is empty.
func (db *DB) InBulkTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	conn, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("bulk transaction: %w", err)
	}
	defer conn.Close()
	var mode string
	// Idle connections of the pool (left by the plan's parallel reads) keep the database
	// open: close them, then allow database/sql's default two again.
	db.SetMaxIdleConns(0)
	db.SetMaxIdleConns(defaultMaxIdleConns)
	if err := conn.GetContext(ctx, &mode, `PRAGMA journal_mode = DELETE`); err == nil && mode == "delete" {
		defer restoreWAL(conn)
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
			return fmt.Errorf("bulk transaction: %w", err)
		}
	}
	// The rows go to the right edge of each B-tree once the unique indexes are off
	// (dropBulkIndexes): a few pages per tree are hot, and every page of the connection's
	// usual 64 MiB cache would be fresh memory to fault in, then written out anyway —
	// a tenth of a first apply's CPU time at 100,000 people, and 60 MiB of its RSS.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = %d", bulkCacheKiB)); err != nil {
		return fmt.Errorf("bulk transaction: %w", err)
	}
	defer conn.ExecContext(context.Background(), fmt.Sprintf("PRAGMA cache_size = %d", cacheSizeKiB))
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("bulk transaction: %w", err)
	}
	return runTx(conn, tx, func(tx *sqlx.Tx) error {
		dropped, err := dropBulkIndexes(ctx, tx)
		if err != nil {
			return fmt.Errorf("bulk transaction: %w", err)
		}
		if err := fn(tx); err != nil {
			return err
		}
		return buildBulkIndexes(ctx, tx, dropped)
	})
}

// bulkIndexes are the unique indexes of the object tables that a bulk transaction into
// an empty table builds after the rows are in (migration 006): one sort and an append of
// the sorted keys, where each insert otherwise walks the B-tree to a random leaf and
// splits pages all over it (1.2 million aliases for 400,000 people). The transaction
// rebuilds them before it commits, from their definition in the schema, so a duplicate
// fails the whole transaction as the insert would have; a table that already has rows
// keeps its index.
var bulkIndexes = []struct{ index, table, column string }{
	{"vmrs_name", "vmrs", "name"},
	{"vmr_aliases_alias", "vmr_aliases", "alias"},
	{"devices_alias", "devices", "alias"},
	{"users_userid", "users", "userid"},
	{"users_email", "users", "email"},
}

// droppedIndex is an index a bulk transaction dropped, with the SQL that makes it again.
type droppedIndex struct {
	index, table, column, sql string
}

// dropBulkIndexes drops the bulkIndexes of empty tables inside tx.
func dropBulkIndexes(ctx context.Context, tx *sqlx.Tx) ([]droppedIndex, error) {
	var out []droppedIndex
	for _, bi := range bulkIndexes {
		var empty bool
		if err := tx.GetContext(ctx, &empty, `SELECT NOT EXISTS (SELECT 1 FROM `+bi.table+`)`); err != nil {
			return nil, fmt.Errorf("count %s: %w", bi.table, err)
		}
		if !empty {
			continue
		}
		var def string
		err := tx.GetContext(ctx, &def, `SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?`, bi.index)
		if err != nil {
			return nil, fmt.Errorf("read index %s: %w", bi.index, err)
		}
		if _, err := tx.ExecContext(ctx, `DROP INDEX `+bi.index); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", bi.index, err)
		}
		out = append(out, droppedIndex{bi.index, bi.table, bi.column, def})
	}
	return out, nil
}

// buildBulkIndexes makes the dropped indexes again; a value that is not unique fails,
// naming it.
func buildBulkIndexes(ctx context.Context, tx *sqlx.Tx, dropped []droppedIndex) error {
	for _, d := range dropped {
		if _, err := tx.ExecContext(ctx, d.sql); err != nil {
			var dup string
			if derr := tx.GetContext(ctx, &dup, `SELECT `+d.column+` FROM `+d.table+` GROUP BY `+d.column+
				` HAVING COUNT(*) > 1 LIMIT 1`); derr == nil {
				return fmt.Errorf("%s %q is not unique: %w", d.table+"."+d.column, dup, err)
			}
			return fmt.Errorf("build index %s: %w", d.index, err)
		}
	}
	return nil
}

// bulkCacheKiB is the page cache of a bulk transaction (a negative cache_size is KiB).
const bulkCacheKiB = -8192

// defaultMaxIdleConns is database/sql's default, which roster does not change.
const defaultMaxIdleConns = 2

// restoreWAL puts the database back in WAL mode after a bulk transaction. Should that
// fail (a reader holds a lock), the transaction is still committed and the next
// connection's DSN switches the mode back: it is only logged.
func restoreWAL(conn *sqlx.Conn) {
	ctx := context.Background()
	var mode string
	err := conn.GetContext(ctx, &mode, `PRAGMA journal_mode = WAL`)
	if err == nil && mode != "wal" {
		err = fmt.Errorf("journal mode is %s", mode)
	}
	if _, serr := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err == nil {
		err = serr
	}
	if err != nil {
		slog.Warn("state database: back to WAL mode after a bulk transaction", "err", err)
	}
}
