package push

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
	"github.com/roster-dev/roster/state"
)

type rig struct {
	db   *state.DB
	fake *pexipfake.Server
	d    *Deliverer
}

func newRig(t testing.TB, tune func(*pexip.Config)) *rig {
	t.Helper()
	db, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "roster.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fake := pexipfake.New("roster", "pw")
	t.Cleanup(fake.Close)
	cfg := pexip.Config{URL: fake.URL, Username: "roster", Password: "pw", Backoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	c, err := pexip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &Deliverer{DB: db, Client: c, Platform: "pexip", Marker: pexip.Marker{Instance: "test1"},
		Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return &rig{db: db, fake: fake, d: d}
}

func (r *rig) enqueue(t testing.TB, ops []state.PlatformOp) {
	t.Helper()
	ctx := context.Background()
	if err := r.db.InTx(ctx, func(tx *sqlx.Tx) error { return state.EnqueuePlatform(ctx, tx, time.Now(), ops) }); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) drain(t testing.TB) Progress {
	t.Helper()
	p, err := r.d.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func vmr(i int) *VMR {
	return &VMR{Name: fmt.Sprintf("Room %04d", i), Description: fmt.Sprintf("Person %d's room", i), PIN: "1234",
		MaxCallrateIn: 4096, Tag: "staff", OwnerEmail: fmt.Sprintf("p%d@example.com", i),
		Aliases: []string{fmt.Sprintf("p%d@example.com", i), fmt.Sprintf("%d", 100000+i)}}
}

func device(i int) *Device {
	return &Device{Alias: fmt.Sprintf("p%d.ep@example.com", i), Username: fmt.Sprintf("p%d", i), Password: fmt.Sprintf("pw-%d", i),
		OwnerEmail: fmt.Sprintf("p%d@example.com", i)}
}

func user(i int) *User {
	return &User{Email: fmt.Sprintf("p%d@example.com", i), FirstName: "Person", LastName: fmt.Sprint(i), DisplayName: fmt.Sprintf("Person %d", i)}
}

// estate is the operations creating n people's rooms, devices and end users.
func estate(n int) []state.PlatformOp {
	var ops []state.PlatformOp
	for i := range n {
		ops = append(ops, VMROps("pexip", nil, vmr(i))...)
		ops = append(ops, DeviceOps("pexip", nil, device(i))...)
		ops = append(ops, UserOps("pexip", nil, user(i))...)
	}
	return ops
}

// checkEstate asserts that the fake holds exactly people [0, n) once each, as made.
func checkEstate(t *testing.T, r *rig, n int) {
	t.Helper()
	if c, a, d, u := r.fake.Count(pexip.Conferences), r.fake.Count(pexip.ConferenceAliases), r.fake.Count(pexip.Devices),
		r.fake.Count(pexip.EndUsers); c != n || a != 2*n || d != n || u != n {
		t.Fatalf("fake holds %d conferences, %d aliases, %d devices, %d end users; want %d, %d, %d, %d", c, a, d, u, n, 2*n, n, n)
	}
	for i := range n {
		v := vmr(i)
		c, ok := r.fake.Find(pexip.Conferences, v.Name)
		if !ok || c["description"] != v.Description+" [roster:test1]" || c["pin"] != "1234" || c["max_callrate_in"] != 4096 ||
			c["max_callrate_out"] != nil || c["tag"] != "staff" || len(c["aliases"].([]map[string]any)) != 2 {
			t.Fatalf("conference %s = %v", v.Name, c)
		}
		if pw, _ := r.fake.DevicePassword(device(i).Alias); pw != device(i).Password {
			t.Fatalf("device %d password %q", i, pw)
		}
		if u, ok := r.fake.Find(pexip.EndUsers, user(i).Email); !ok || u["display_name"] != user(i).DisplayName {
			t.Fatalf("end user %d = %v", i, u)
		}
	}
}

func TestDeliverCreatePatchDelete(t *testing.T) {
	r := newRig(t, nil)
	var last Progress
	r.d.Progress = func(p Progress) { last = p }
	r.enqueue(t, estate(5))
	p := r.drain(t)
	if p.Done != 15 || p.Total != 15 || p.Failed+p.Conflicts != 0 || last.Done != 15 || last.Rate <= 0 || last.ETA != 0 {
		t.Fatalf("progress = %+v, last callback %+v", p, last)
	}
	checkEstate(t, r, 5)
	objs, _ := r.db.PlatformObjects(context.Background(), "pexip")
	if len(objs) != 25 { // 5 conferences, 10 aliases, 5 devices, 5 end users
		t.Fatalf("%d owned objects recorded", len(objs))
	}

	// Nothing queued: nothing sent.
	before := r.fake.Stats().Requests
	if p := r.drain(t); p.Done != 0 || r.fake.Stats().Requests != before {
		t.Fatalf("an empty queue sent %d requests", r.fake.Stats().Requests-before)
	}

	// An edit patches only what changed; a removed alias goes, an added one comes.
	old, edited := vmr(1), vmr(1)
	edited.Description, edited.MaxCallrateIn, edited.Aliases = "Edited", 0, []string{old.Aliases[0], "new-alias"}
	r.enqueue(t, VMROps("pexip", old, edited))
	newDev := device(2)
	newDev.Password = "changed"
	r.enqueue(t, DeviceOps("pexip", device(2), newDev))
	before = r.fake.Stats().Requests
	byMethod := r.fake.Stats().ByMethod
	r.drain(t)
	after := r.fake.Stats().ByMethod
	if after["PATCH"]-byMethod["PATCH"] != 2 || after["DELETE"]-byMethod["DELETE"] != 1 || after["POST"]-byMethod["POST"] != 1 {
		t.Errorf("requests for the edit: %v → %v", byMethod, after)
	}
	c, _ := r.fake.Find(pexip.Conferences, old.Name)
	if c["description"] != "Edited [roster:test1]" || c["max_callrate_in"] != nil || c["pin"] != "1234" || c["tag"] != "staff" {
		t.Errorf("edited conference = %v", c)
	}
	if _, ok := r.fake.Find(pexip.ConferenceAliases, old.Aliases[1]); ok {
		t.Error("the removed alias is still there")
	}
	if a, ok := r.fake.Find(pexip.ConferenceAliases, "new-alias"); !ok || a["conference"] != c["resource_uri"] {
		t.Errorf("new alias = %v", a)
	}
	if pw, _ := r.fake.DevicePassword(newDev.Alias); pw != "changed" {
		t.Errorf("device password = %q", pw)
	}
	if o, _, _ := r.db.PlatformObjectByKey(context.Background(), "pexip", "device", newDev.Alias); o.PasswordDigest != PasswordDigest(newDev.Alias, "changed") {
		t.Errorf("password digest = %q", o.PasswordDigest)
	}

	// A removed person: room, aliases, device and end user deleted.
	r.enqueue(t, append(append(VMROps("pexip", edited, nil), DeviceOps("pexip", newDev, nil)...), UserOps("pexip", user(2), nil)...))
	r.drain(t)
	if _, ok := r.fake.Find(pexip.Conferences, old.Name); ok || r.fake.Count(pexip.ConferenceAliases) != 8 ||
		r.fake.Count(pexip.Devices) != 4 || r.fake.Count(pexip.EndUsers) != 4 {
		t.Errorf("after removal: %d aliases, %d devices, %d end users", r.fake.Count(pexip.ConferenceAliases),
			r.fake.Count(pexip.Devices), r.fake.Count(pexip.EndUsers))
	}
	if waiting, _ := r.db.PlatformWaiting(context.Background(), KindVMR, old.Name); waiting {
		t.Error("emails of a delivered room still wait")
	}
}

func TestDeliverConflictWithHandMadeObjects(t *testing.T) {
	r := newRig(t, nil)
	hand, err := r.fake.Put(pexip.Conferences, map[string]any{"name": "Room 0001", "description": "made by hand", "pin": "9999"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := r.fake.Put(pexip.EndUsers, map[string]any{"primary_email_address": "p2@example.com", "first_name": "Someone"})
	theirs, _ := r.fake.Put(pexip.Devices, map[string]any{"alias": "p0.ep@example.com", "description": "x [roster:other]"})
	r.enqueue(t, estate(3))
	moreAliases := vmr(1)
	moreAliases.Aliases = append(moreAliases.Aliases, "later")
	r.enqueue(t, VMROps("pexip", vmr(1), moreAliases)) // waits for the conflicting create
	p := r.drain(t)
	if p.Conflicts != 3 || p.Done != 6 || p.Failed != 0 {
		t.Fatalf("progress = %+v", p)
	}
	c, _ := r.fake.Find(pexip.Conferences, "Room 0001")
	if c["id"] != hand || c["description"] != "made by hand" || c["pin"] != "9999" || len(c["aliases"].([]map[string]any)) != 0 {
		t.Errorf("the hand-made conference was touched: %v", c)
	}
	if u, _ := r.fake.Find(pexip.EndUsers, "p2@example.com"); u["id"] != other || u["first_name"] != "Someone" {
		t.Errorf("the hand-made end user was touched: %v", u)
	}
	if d, _ := r.fake.Find(pexip.Devices, "p0.ep@example.com"); d["id"] != theirs {
		t.Errorf("another roster's device was touched: %v", d)
	}
	conflicts, _ := r.db.PlatformOpsByStatus(context.Background(), state.PlatformConflict, 10)
	if len(conflicts) != 3 || !strings.Contains(conflicts[0].LastError, "without roster's marker") {
		t.Fatalf("conflicts = %+v", conflicts)
	}
	counts, _ := r.db.PlatformCounts(context.Background())
	if counts["pexip"][state.PlatformPending] != 1 { // the alias of the conflicting room waits
		t.Errorf("counts = %v", counts)
	}
	if waiting, _ := r.db.PlatformWaiting(context.Background(), KindVMR, "Room 0001"); !waiting {
		t.Error("the conflicting room's emails do not wait")
	}
}

func TestDeliverAdoptsItsOwnAfterALostAnswer(t *testing.T) {
	r := newRig(t, func(c *pexip.Config) { c.MaxAttempts = 1 })
	r.enqueue(t, estate(2))
	r.fake.DropAfter(6) // every create takes effect, and its answer is lost
	p := r.drain(t)
	if p.Done != 6 || p.Conflicts != 0 || p.Retries != 6 {
		t.Fatalf("progress = %+v", p)
	}
	checkEstate(t, r, 2)
	if o, ok, _ := r.db.PlatformObjectByKey(context.Background(), "pexip", "conference", "Room 0001"); !ok || o.RemoteID == 0 {
		t.Errorf("adopted conference recorded as %+v", o)
	}
}

func TestDeliverInvalidValueFails(t *testing.T) {
	r := newRig(t, nil)
	bad := vmr(0)
	bad.MaxCallrateOut = 64
	r.enqueue(t, VMROps("pexip", nil, bad))
	gone := vmr(1)
	r.enqueue(t, VMROps("pexip", nil, gone))
	r.drain(t)
	c, _ := r.fake.Find(pexip.Conferences, gone.Name)
	r.fake.Remove(pexip.Conferences, c["id"].(int)) // drift: deleted by hand
	edited := vmr(1)
	edited.PIN = "5555"
	r.enqueue(t, VMROps("pexip", gone, edited))
	p := r.drain(t)
	failed, _ := r.db.PlatformOpsByStatus(context.Background(), state.PlatformFailed, 10)
	if p.Failed != 1 || len(failed) != 2 || !strings.Contains(failed[0].LastError, "max_callrate_out") ||
		!strings.Contains(failed[1].LastError, "missing on the platform") {
		t.Fatalf("progress %+v, failed %+v", p, failed)
	}
}

func TestDeliverFaults(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		rate  int
		fault func(*pexipfake.Server)
		check func(*testing.T, pexipfake.Stats)
	}{
		{"5xx bursts", 20, 0, func(f *pexipfake.Server) { f.Fail(15, 503) }, func(t *testing.T, s pexipfake.Stats) {
			if s.Failed != 15 {
				t.Errorf("%d 5xx sent", s.Failed)
			}
		}},
		{"dropped connections", 20, 0, func(f *pexipfake.Server) { f.Drop(10) }, func(t *testing.T, s pexipfake.Stats) {
			if s.Dropped != 10 {
				t.Errorf("%d dropped", s.Dropped)
			}
		}},
		{"dropped after taking effect", 20, 0, func(f *pexipfake.Server) { f.DropAfter(10) }, nil},
		// A node that allows 30 requests a second, and a storm of 429s on top: the client
		// keeps to 1500 a minute (25/s), so the node's limit never refuses one.
		{"429 storm within the rate", 40, 1500, func(f *pexipfake.Server) {
			f.RateLimit(30, time.Second, "1")
			go func() { time.Sleep(300 * time.Millisecond); f.Storm(700*time.Millisecond, "0.5") }()
		}, func(t *testing.T, s pexipfake.Stats) {
			if s.RateViolations != 0 || s.Throttled == 0 {
				t.Errorf("%d requests over the node's limit, %d throttled", s.RateViolations, s.Throttled)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(c *pexip.Config) { c.Rate, c.Burst = tc.rate, 5 })
			r.enqueue(t, estate(tc.n))
			tc.fault(r.fake)
			p := r.drain(t)
			if p.Done != 3*tc.n || p.Failed+p.Conflicts != 0 {
				t.Fatalf("progress = %+v", p)
			}
			checkEstate(t, r, tc.n)
			if tc.check != nil {
				tc.check(t, r.fake.Stats())
			}
		})
	}
}

// A drain stopped in the middle (the process killed) leaves claimed operations, some of
// them sent; after a restart every object exists exactly once and matches.
func TestDeliverResumesAfterAStop(t *testing.T) {
	for trial := range 3 {
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			r := newRig(t, nil)
			r.fake.Latency(time.Millisecond)
			r.d.Batch, r.d.Workers = 16, 4
			r.enqueue(t, estate(40))
			ctx, cancel := context.WithCancel(context.Background())
			r.d.Progress = func(p Progress) {
				if p.Done >= 20+trial*15 {
					cancel()
				}
			}
			if _, err := r.d.Drain(ctx); err == nil {
				t.Fatal("the stopped drain returned no error")
			}
			r.fake.Latency(0)
			// A stop between the platform's answer and its record: sent, not recorded.
			r.d.Progress = nil
			ops, err := r.db.ClaimPlatformOps(context.Background(), "pexip", time.Now(), 5)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				r.d.deliver(context.Background(), op) // its outcome never recorded
			}
			if _, err := r.db.ReleasePlatformClaims(context.Background(), time.Now()); err != nil {
				t.Fatal(err)
			}
			p := r.drain(t)
			if p.Conflicts+p.Failed != 0 {
				t.Fatalf("after restart: %+v", p)
			}
			checkEstate(t, r, 40)
			counts, _ := r.db.PlatformCounts(context.Background())
			if counts["pexip"][state.PlatformDone] != 120 {
				t.Errorf("counts = %v", counts)
			}
		})
	}
}

// An alias given up by one VMR and taken by another in the same apply.
func TestDeliverAliasMovesBetweenRooms(t *testing.T) {
	r := newRig(t, nil)
	x := &VMR{Name: "X", Aliases: []string{"shared", "x"}}
	r.enqueue(t, VMROps("pexip", nil, x))
	r.drain(t)
	x2 := &VMR{Name: "X", Aliases: []string{"x"}}
	y := &VMR{Name: "Y", Aliases: []string{"shared"}}
	ops := append(VMROps("pexip", nil, y), VMROps("pexip", x, x2)...)
	Order(ops)
	r.enqueue(t, ops)
	if p := r.drain(t); p.Conflicts+p.Failed != 0 {
		t.Fatalf("progress = %+v", p)
	}
	yc, _ := r.fake.Find(pexip.Conferences, "Y")
	if a, ok := r.fake.Find(pexip.ConferenceAliases, "shared"); !ok || a["conference"] != yc["resource_uri"] {
		t.Errorf("shared alias = %v", a)
	}
}

func TestRunDeliversOnWake(t *testing.T) {
	r := newRig(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{}, 1)
	done := make(chan error)
	go func() { done <- r.d.Run(ctx, wake, time.Hour) }()
	r.enqueue(t, estate(3))
	wake <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for r.fake.Count(pexip.EndUsers) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkEstate(t, r, 3)
}

// A node quoting the password it was sent in an error: the queue's error has it hidden.
func TestDeliverHidesDevicePasswordInErrors(t *testing.T) {
	r := newRig(t, nil)
	r.fake.QuoteValues.Store(true)
	d := device(0)
	d.Password = strings.Repeat("p", 251) // too long: the 400 names the field and quotes the value
	r.enqueue(t, DeviceOps("pexip", nil, d))
	r.drain(t)
	failed, _ := r.db.PlatformOpsByStatus(context.Background(), state.PlatformFailed, 1)
	if len(failed) != 1 || strings.Contains(failed[0].LastError, d.Password) || !strings.Contains(failed[0].LastError, "password") {
		t.Fatalf("failed = %+v", failed)
	}
}

// An operation stuck behind a conflict does not end a drain while a retry is due later.
func TestDrainWaitsForRetriesBesideBlockedOps(t *testing.T) {
	r := newRig(t, func(c *pexip.Config) { c.MaxAttempts = 1 })
	if _, err := r.fake.Put(pexip.Conferences, map[string]any{"name": "Room 0000"}); err != nil {
		t.Fatal(err)
	}
	r.d.Workers, r.d.Backoff, r.d.MaxBackoff = 1, 300*time.Millisecond, time.Second
	r.enqueue(t, UserOps("pexip", nil, user(7)))
	r.fake.Fail(1, 503) // the end user's first try, the first request
	withAlias := vmr(0)
	withAlias.Aliases = append(withAlias.Aliases, "extra")
	r.enqueue(t, append(VMROps("pexip", nil, vmr(0)), VMROps("pexip", vmr(0), withAlias)...)) // conflict, then blocked
	start := time.Now()
	p := r.drain(t)
	if p.Done != 1 || p.Conflicts != 1 || p.Retries != 1 {
		t.Fatalf("progress = %+v", p)
	}
	if _, ok := r.fake.Find(pexip.EndUsers, user(7).Email); !ok || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("the retried end user is missing (%v) or came before its retry time (%s)", ok, time.Since(start))
	}
}

// At the rate, a batch takes long: its outcomes are recorded (and progress told) as they
// come, not once at its end.
func TestProgressMovesWithinABatch(t *testing.T) {
	r := newRig(t, func(c *pexip.Config) { c.Rate, c.Burst = 600, 1 }) // 10 a second
	var seen []int
	r.d.Progress = func(p Progress) {
		seen = append(seen, p.Done)
		if p.Total != 15 || p.Done < 15 && p.ETA <= 0 {
			t.Errorf("progress %+v", p)
		}
	}
	r.enqueue(t, estate(5)) // 15 operations, one batch
	if p := r.drain(t); p.Done != 15 {
		t.Fatalf("progress = %+v", p)
	}
	if len(seen) < 2 || seen[0] >= 15 {
		t.Errorf("progress told at %v done: not before the batch ended", seen)
	}
}
