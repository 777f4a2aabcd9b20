package reconcile

import (
	"fmt"
	"os"
	"testing"
)

// TestFirstApplyInBulk: a first apply over bulkCreations writes in rollback-journal mode
// (a journal beside the database before its commit, no WAL growth) exactly the rows the
// same apply writes in WAL mode, leaves the database in WAL mode, and the next plan is a
// no-op that applies in WAL mode.
func TestFirstApplyInBulk(t *testing.T) {
	var ps []person
	for i := 0; i < 40; i++ {
		ps = append(ps, person{uid: fmt.Sprintf("u%02d", i), given: "Given", sn: fmt.Sprintf("Sn%02d", i),
			mail: fmt.Sprintf("u%02d@example.com", i), phone: fmt.Sprintf("+44 20 7946 %04d", i)})
	}
	defer func(n int, hook func()) { bulkCreations, beforeCommit = n, hook }(bulkCreations, beforeCommit)
	dumps := map[bool]string{}
	for _, bulk := range []bool{false, true} {
		h := newHarness(t, ps...)
		bulkCreations = map[bool]int{false: 1 << 30, true: 10}[bulk]
		journal := false
		beforeCommit = func() {
			_, err := os.Stat(h.db.Path + "-journal")
			journal = err == nil
		}
		p := h.mustApply()
		if p.created.len() < bulkCreations && bulk {
			t.Fatalf("the plan creates %d objects, under the bulk threshold %d", p.created.len(), bulkCreations)
		}
		if journal != bulk {
			t.Errorf("bulk %v: a rollback journal at the commit: %v", bulk, journal)
		}
		var mode string
		if err := h.db.Get(&mode, `PRAGMA journal_mode`); err != nil || mode != "wal" {
			t.Errorf("bulk %v: journal mode after the apply = %q, %v; want wal", bulk, mode, err)
		}
		dumps[bulk] = dumpTables(t, h, "vmrs", "vmr_aliases", "devices", "users", "audit", "outbox", "meta")
		if next := h.mustApply(); next.HasChanges() {
			t.Errorf("bulk %v: the plan after the first apply has changes: %v", bulk, changes(next))
		}
		if journal {
			t.Errorf("bulk %v: the second apply (state version 1) wrote in bulk", bulk)
		}
	}
	if dumps[true] != dumps[false] {
		t.Errorf("bulk and WAL first applies wrote different rows:\nbulk %s\n WAL %s", dumps[true], dumps[false])
	}
}

// dumpTables prints every row of tables, by their first column.
func dumpTables(t *testing.T, h *harness, tables ...string) string {
	t.Helper()
	out := ""
	for _, table := range tables {
		q := `SELECT * FROM ` + table
		if table == "meta" {
			// The render cache's token is random by design (rendercache.go): not a row
			// the apply wrote.
			q += ` WHERE key != 'render_cache'`
		}
		rows, err := h.db.Queryx(q + ` ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			cols, err := rows.SliceScan()
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range cols {
				if b, ok := c.([]byte); ok {
					cols[i] = string(b)
				}
			}
			out += fmt.Sprintln(table, cols)
			n++
		}
		rows.Close()
		if n == 0 && table != "meta" {
			t.Fatalf("table %s is empty", table)
		}
	}
	return out
}
