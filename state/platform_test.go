package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

func pop(op, res, key string) PlatformOp {
	return PlatformOp{Platform: "pexip", Op: op, Resource: res, ObjectKey: key, Kind: "vmr", OwnerKey: key, Payload: `{}`}
}

func dep(o PlatformOp, res, key string) PlatformOp {
	o.DepResource, o.DepKey = res, key
	return o
}

func enqueueOps(t testing.TB, db *DB, now time.Time, ops ...PlatformOp) {
	t.Helper()
	if err := db.InTx(context.Background(), func(tx *sqlx.Tx) error { return EnqueuePlatform(context.Background(), tx, now, ops) }); err != nil {
		t.Fatal(err)
	}
}

func claimKeys(t *testing.T, db *DB, now time.Time) ([]string, []PlatformOp) {
	t.Helper()
	ops, err := db.ClaimPlatformOps(context.Background(), "pexip", now, 100)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range ops {
		keys = append(keys, o.Op+" "+o.Resource+" "+o.ObjectKey)
	}
	return keys, ops
}

func done(t *testing.T, db *DB, now time.Time, ops []PlatformOp, remote int64) {
	t.Helper()
	var out []PlatformOutcome
	for _, o := range ops {
		out = append(out, PlatformOutcome{Op: o, Status: PlatformDone, RemoteID: remote, At: now})
		remote++
	}
	if err := db.RecordPlatformOutcomes(context.Background(), out); err != nil {
		t.Fatal(err)
	}
}

func TestPlatformClaimOrder(t *testing.T) {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	rename := pop(OpPatch, "conference", "B2")
	rename.FromKey = "B"
	cases := []struct {
		name   string
		ops    []PlatformOp
		rounds [][]string // what each claim returns, every claimed op done in between
	}{
		{"a conference before its alias, an edit after both",
			[]PlatformOp{pop(OpCreate, "conference", "A"), dep(pop(OpCreate, "conference_alias", "a1"), "conference", "A"),
				pop(OpCreate, "device", "D"), pop(OpPatch, "conference", "A")},
			[][]string{{"create conference A", "create device D"}, {"create conference_alias a1"}, {"patch conference A"}}},
		{"aliases deleted before their conference",
			[]PlatformOp{dep(pop(OpDelete, "conference_alias", "c1"), "conference", "C"),
				dep(pop(OpDelete, "conference_alias", "c2"), "conference", "C"), pop(OpDelete, "conference", "C")},
			[][]string{{"delete conference_alias c1", "delete conference_alias c2"}, {"delete conference C"}}},
		{"an alias of a renamed conference waits for the rename",
			[]PlatformOp{pop(OpCreate, "conference", "B"), rename, dep(pop(OpCreate, "conference_alias", "b1"), "conference", "B2")},
			[][]string{{"create conference B"}, {"patch conference B2"}, {"create conference_alias b1"}}},
		{"unrelated objects all at once",
			[]PlatformOp{pop(OpCreate, "end_user", "x@example.com"), pop(OpCreate, "device", "x"), pop(OpCreate, "conference", "x")},
			[][]string{{"create end_user x@example.com", "create device x", "create conference x"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t)
			enqueueOps(t, db, now, tc.ops...)
			for i, want := range tc.rounds {
				got, ops := claimKeys(t, db, now)
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: claimed %q, want %q", i, got, want)
				}
				done(t, db, now, ops, int64(10*i+1))
			}
			if got, _ := claimKeys(t, db, now); len(got) != 0 {
				t.Errorf("left: %q", got)
			}
		})
	}
}

func TestPlatformRetryLeaseAndConflict(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	db := openTestDB(t)
	enqueueOps(t, db, now, pop(OpCreate, "conference", "A"), dep(pop(OpCreate, "conference_alias", "a1"), "conference", "A"),
		pop(OpCreate, "conference", "B"))
	_, ops := claimKeys(t, db, now)
	if len(ops) != 2 || ops[0].Attempts != 1 || ops[0].Status != PlatformSending {
		t.Fatalf("claimed %+v", ops)
	}
	// A claimed op is not claimed again while its lease runs.
	if got, _ := claimKeys(t, db, now.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("claimed again during the lease: %q", got)
	}
	// A: retry in 30 s. B: conflict (a hand-made conference B).
	if err := db.RecordPlatformOutcomes(ctx, []PlatformOutcome{
		{Op: ops[0], Status: PlatformPending, Next: now.Add(30 * time.Second), Err: "pexip: 503 server error"},
		{Op: ops[1], Status: PlatformConflict, Err: "conference B exists and is not roster's", RemoteID: 7},
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := claimKeys(t, db, now.Add(29*time.Second)); len(got) != 0 {
		t.Fatalf("claimed before next_try: %q", got)
	}
	got, ops := claimKeys(t, db, now.Add(30*time.Second))
	if !slices.Equal(got, []string{"create conference A"}) || ops[0].Attempts != 2 || ops[0].LastError != "pexip: 503 server error" {
		t.Fatalf("after the retry time: %q %+v", got, ops)
	}
	// The deliverer stops without recording: after the lease the op is claimed again.
	got, ops = claimKeys(t, db, now.Add(30*time.Second+PlatformLease))
	if !slices.Equal(got, []string{"create conference A"}) || ops[0].Attempts != 3 {
		t.Fatalf("after the lease: %q", got)
	}
	if n, err := db.ReleasePlatformClaims(ctx, now); err != nil || n != 1 {
		t.Fatalf("released %d, %v", n, err)
	}
	counts, err := db.PlatformCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts["pexip"]; c[PlatformPending] != 2 || c[PlatformConflict] != 1 || c[PlatformDone] != 0 || c[PlatformSending] != 0 {
		t.Errorf("counts = %v", counts)
	}
	conflicts, _ := db.PlatformOpsByStatus(ctx, PlatformConflict, 10)
	if len(conflicts) != 1 || conflicts[0].ObjectKey != "B" || conflicts[0].RemoteID != 7 {
		t.Fatalf("conflicts = %+v", conflicts)
	}
	if err := db.RequeuePlatformOp(ctx, conflicts[0].ID, now); err != nil {
		t.Fatal(err)
	}
	if err := db.RequeuePlatformOp(ctx, conflicts[0].ID, now); err == nil {
		t.Error("requeued a pending operation")
	}
	if waiting, _ := db.PlatformWaiting(ctx, "vmr", "B"); !waiting {
		t.Error("B's emails do not wait")
	}
	// Everything is due now: nothing falls due later.
	if next, ok, err := db.NextPlatformDue(ctx, "pexip", now); err != nil || ok {
		t.Errorf("next due after now = %s %v %v", next, ok, err)
	}
	if next, ok, err := db.NextPlatformDue(ctx, "pexip", now.Add(-time.Second)); err != nil || !ok || !next.Equal(now) {
		t.Errorf("next due after a second ago = %s %v %v", next, ok, err)
	}
}

func TestPlatformDoneKeepsOwnedObjects(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	db := openTestDB(t)
	create := pop(OpCreate, "conference", "Room")
	create.Payload = (`{"name": "Room", "aliases": [{"alias": "r1"}]}`)
	dev := pop(OpCreate, "device", "ep1")
	dev.Kind, dev.OwnerKey, dev.Payload = "device", "ep1", (`{"alias": "ep1", "password": "hunter2"}`)
	enqueueOps(t, db, now, create, dev)
	_, ops := claimKeys(t, db, now)
	if err := db.RecordPlatformOutcomes(ctx, []PlatformOutcome{
		{Op: ops[0], Status: PlatformDone, RemoteID: 42, At: now,
			Also: []PlatformObject{{Platform: "pexip", Resource: "conference_alias", Key: "r1", ParentKey: "Room"}}},
		{Op: ops[1], Status: PlatformDone, RemoteID: 43, PasswordDigest: "sha256:abc", At: now},
	}); err != nil {
		t.Fatal(err)
	}
	// Recording twice (a second deliverer after a lost lease) changes nothing.
	if err := db.RecordPlatformOutcomes(ctx, []PlatformOutcome{{Op: ops[0], Status: PlatformDone, RemoteID: 99, At: now}}); err != nil {
		t.Fatal(err)
	}
	objs, err := db.PlatformObjects(ctx, "pexip")
	if err != nil {
		t.Fatal(err)
	}
	want := []PlatformObject{
		{"pexip", "conference", "Room", 42, "", ""},
		{"pexip", "conference_alias", "r1", 0, "Room", ""},
		{"pexip", "device", "ep1", 43, "", "sha256:abc"},
	}
	if !slices.Equal(objs, want) {
		t.Fatalf("objects = %+v\nwant %+v", objs, want)
	}
	var payload string
	db.Get(&payload, `SELECT payload FROM platform_ops WHERE id = ?`, ops[1].ID)
	if payload != `{"alias":"ep1"}` {
		t.Errorf("done device payload = %s (the password must go)", payload)
	}
	if waiting, _ := db.PlatformWaiting(ctx, "vmr", "Room"); waiting {
		t.Error("Room still waiting after done")
	}
	// Rename, then delete: the alias follows its conference, then goes with it.
	rename := pop(OpPatch, "conference", "Hall")
	rename.FromKey = "Room"
	enqueueOps(t, db, now, rename, pop(OpDelete, "conference", "Hall"))
	_, ops = claimKeys(t, db, now)
	done(t, db, now, ops, 0)
	if a, ok, _ := db.PlatformObjectByKey(ctx, "pexip", "conference_alias", "r1"); !ok || a.ParentKey != "Hall" {
		t.Fatalf("alias after rename = %+v %v", a, ok)
	}
	if c, ok, _ := db.PlatformObjectByKey(ctx, "pexip", "conference", "Hall"); !ok || c.RemoteID != 42 {
		t.Fatalf("conference after rename = %+v %v", c, ok)
	}
	_, ops = claimKeys(t, db, now)
	done(t, db, now, ops, 0)
	objs, _ = db.PlatformObjects(ctx, "pexip")
	if len(objs) != 1 || objs[0].Resource != "device" {
		t.Fatalf("after delete: %+v", objs)
	}
}

func TestPlatformEnqueueInWriterTransaction(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	db := openTestDB(t)
	boom := errors.New("the apply fails after enqueueing")
	for _, fail := range []bool{true, false} {
		err := db.InTx(ctx, func(tx *sqlx.Tx) error {
			w, err := NewWriter(ctx, tx, now)
			if err != nil {
				return err
			}
			defer w.Close()
			v := &account.VMR{Name: "Room", SyncTag: "manual"}
			if err := w.InsertVMR(v); err != nil {
				return err
			}
			if err := w.EnqueuePlatform([]PlatformOp{pop(OpCreate, "conference", "Room")}); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if fail {
				return boom
			}
			return nil
		})
		var n int
		db.Get(&n, `SELECT COUNT(*) FROM platform_ops`)
		if fail && (!errors.Is(err, boom) || n != 0) || !fail && (err != nil || n != 1) {
			t.Errorf("fail=%v: err %v, %d operations", fail, err, n)
		}
	}
}

func TestPlatformEnqueueRefuses(t *testing.T) {
	db := openTestDB(t)
	noKey := pop(OpCreate, "conference", "")
	badOp := pop("upsert", "conference", "A")
	halfDep := pop(OpCreate, "conference_alias", "a")
	halfDep.DepKey = "A"
	badJSON := pop(OpCreate, "conference", "A")
	badJSON.Payload = `{"name":`
	for _, o := range []PlatformOp{noKey, badOp, halfDep, badJSON} {
		err := db.InTx(context.Background(), func(tx *sqlx.Tx) error {
			return EnqueuePlatform(context.Background(), tx, time.Now(), []PlatformOp{o})
		})
		if err == nil {
			t.Errorf("enqueued %+v", o)
		}
	}
}

// Enqueued in batches, operations keep their order and fields across batch boundaries.
func TestPlatformEnqueueManyKeepsOrder(t *testing.T) {
	db := openTestDB(t)
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	var ops []PlatformOp
	for i := range 2*enqueueBatch + 7 {
		o := pop(OpCreate, "device", fmt.Sprintf("d%04d", i))
		o.Payload, o.Commit = fmt.Sprintf(`{"n": %d}`, i), "c1"
		ops = append(ops, o)
	}
	enqueueOps(t, db, now, ops...)
	var got []PlatformOp
	if err := db.Select(&got, `SELECT `+platformOpColumns+` FROM platform_ops ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ops) {
		t.Fatalf("%d rows, want %d", len(got), len(ops))
	}
	for i, o := range got {
		if o.ObjectKey != ops[i].ObjectKey || o.Payload != ops[i].Payload || o.Commit != "c1" || o.Status != PlatformPending ||
			!ParseTime(o.NextTry).Equal(now) {
			t.Fatalf("row %d = %+v", i, o)
		}
	}
}

// Adoption records objects by hand; a later record without an id, parent or digest keeps them.
func TestPutPlatformObjects(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	put := func(objs ...PlatformObject) {
		t.Helper()
		if err := db.InTx(ctx, func(tx *sqlx.Tx) error { return PutPlatformObjects(ctx, tx, now, objs) }); err != nil {
			t.Fatal(err)
		}
	}
	put(PlatformObject{"pexip", "device", "ep", 7, "", "sha256:1"}, PlatformObject{"pexip", "conference_alias", "a", 9, "Room", ""})
	put(PlatformObject{"pexip", "device", "ep", 0, "", ""}, PlatformObject{"pexip", "conference_alias", "a", 0, "", ""})
	objs, err := db.PlatformObjects(ctx, "pexip")
	if err != nil {
		t.Fatal(err)
	}
	want := []PlatformObject{{"pexip", "conference_alias", "a", 9, "Room", ""}, {"pexip", "device", "ep", 7, "", "sha256:1"}}
	if !slices.Equal(objs, want) {
		t.Errorf("objects = %+v", objs)
	}
	if _, ok, err := db.PlatformObjectByKey(ctx, "pexip", "device", "other"); ok || err != nil {
		t.Errorf("a missing object: %v %v", ok, err)
	}
}
