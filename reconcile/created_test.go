package reconcile

import (
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/roster-dev/roster/schema/account"
)

// A plan's creations kept as positions into the desired lists (created) must read, sort,
// count and fingerprint exactly as the same creations held as Change values.

// createdSizes is how many creations of each kind a plan has, and how many held changes.
type createdSizes struct {
	vmrs, devices, users, held int
	own                        int  // one creation in own is changed by overrides (0: none)
	dups                       bool // keys not unique (creations of one key sort as recorded)
}

// createdMutation changes one creation (of both plans, nothing else) to check the fingerprint.
type createdMutation int

const (
	mutateNone       createdMutation = iota
	mutateOwnVMRPIN                  // the PIN of the first own VMR
	mutateOwnDevice                  // the password of the first own device
	mutateDesiredVMR                 // the description, in the list, of the first VMR created from the list
	mutateUserSeq                    // the USERID of the first user created
	mutateUserNotify                 // whether the first user created is notified
	mutateUserName                   // the first name, in the list, of the first user created
)

// createdPlans builds plan a, its creations in created, and plan b, the same creations
// held as changes, with the same held changes of other kinds and actions. creations are
// the creations' changes in the order they were recorded, VMRs, then devices, then users.
func createdPlans(seed int64, sz createdSizes, mut createdMutation) (a, b *Plan, creations []*Change) {
	rng := rand.New(rand.NewSource(seed))
	g := newGen(seed, 0)
	g.small = true
	prefixes := []string{"", "a", "A", "é", "漢", "z", "\x00", "🙂", "vmr-"}
	// unique keys (unless sz.dups) in random order
	keys := func(n int) []string {
		ks := make([]string, n)
		for k, v := range rng.Perm(n) {
			ks[k] = fmt.Sprintf("%s%06d", prefixes[rng.Intn(len(prefixes))], v)
			if sz.dups {
				ks[k] = fmt.Sprintf("%s%06d", prefixes[rng.Intn(2)], v%7)
			}
		}
		return ks
	}
	templates := []string{"staff", "students", "", "ü-template"}

	a = &Plan{Commit: "c1", StateVersion: 9, Summary: Summary{Unchanged: 17}}
	var vmrs VMRList
	var devices DeviceList
	var users UserList

	// plan picks, for each kind, n desired objects (more than it creates), the ones it
	// creates in random order and which of those are changed by overrides.
	plan := func(created int) (n int, ks []string, order []int, own []bool) {
		n = created + created/4
		ks = keys(n)
		order = rng.Perm(n)[:created]
		own = make([]bool, created)
		for k := range own {
			own[k] = sz.own > 0 && rng.Intn(sz.own) == 0
		}
		return n, ks, order, own
	}
	// first is the first creation that is (or is not) an own one, -1 for none.
	first := slices.Index[[]bool]

	// VMRs
	n, ks, order, own := plan(sz.vmrs)
	change := -1 // the desired object to change, by its position in the list
	if k := first(own, false); mut == mutateDesiredVMR && k >= 0 {
		change = order[k]
	}
	for i := range n {
		v := g.vmr(true)
		v.Name, v.SyncTag = ks[i], templates[rng.Intn(len(templates))]
		if i == change {
			v.Description += "!"
		}
		vmrs.Add(v)
	}
	change = -1
	if mut == mutateOwnVMRPIN {
		change = first(own, true)
	}
	for k, i := range order {
		dv := vmrs.At(i)
		var ov *DesiredVMR
		if own[k] {
			ov = dv
			ov.PIN = fmt.Sprint(rng.Intn(1e6))
			ov.Overrides = map[string]string{"pin": ov.PIN}
			if k == change {
				ov.PIN += "9"
			}
		}
		a.created.addVMR(&vmrs, i, ov, dv.SyncTag)
		creations = append(creations, &Change{Kind: account.KindVMR, Action: account.ActionCreate, Key: dv.Name, Template: dv.SyncTag, newObj: &dv.VMR})
	}

	// devices
	n, ks, order, own = plan(sz.devices)
	for i := range n {
		d := g.device(true)
		d.Alias, d.SyncTag = ks[i], templates[rng.Intn(len(templates))]
		devices.Add(d)
	}
	change = -1
	if mut == mutateOwnDevice {
		change = first(own, true)
	}
	for k, i := range order {
		dd := devices.At(i)
		var od *DesiredDevice
		if own[k] {
			od = dd
			od.Password = fmt.Sprint(rng.Intn(1e6))
			od.Overrides = map[string]string{"password": od.Password}
			if k == change {
				od.Password += "9"
			}
		}
		a.created.addDevice(&devices, i, od, dd.SyncTag)
		creations = append(creations, &Change{Kind: account.KindDevice, Action: account.ActionCreate, Key: dd.Alias, Template: dd.SyncTag, newObj: &dd.Device})
	}

	// users (never own: what the diff gives them is their USERID and whether notified)
	n, ks, order, _ = plan(sz.users)
	change = -1
	if mut == mutateUserName && len(order) > 0 {
		change = order[0]
	}
	for i := range n {
		u := g.user(true)
		u.Email, u.SyncTag = ks[i], templates[rng.Intn(len(templates))]
		if i == change {
			u.FirstName += "!"
		}
		users.Add(u)
	}
	seq := int64(1000)
	for k, i := range order {
		cu := createdUser{i: int32(i), notified: rng.Intn(2) == 0, seq: seq}
		seq += 1 + rng.Int63n(3)
		if k == 0 {
			switch mut {
			case mutateUserSeq:
				cu.seq++
			case mutateUserNotify:
				cu.notified = !cu.notified
			}
		}
		du := users.At(i)
		a.created.addUser(&users, cu, du.SyncTag)
		u := du.User
		u.UserID, u.Notified = strconv.FormatInt(cu.seq, 10), cu.notified
		creations = append(creations, &Change{Kind: account.KindUser, Action: account.ActionCreate, Key: u.Email, Template: u.SyncTag, newObj: &u})
	}

	a.changes = heldChanges(seed+1, sz.held)
	b = &Plan{Commit: a.Commit, StateVersion: a.StateVersion, Summary: a.Summary}
	// b: the same held changes (other values: finish ranks them) and the creations,
	// interleaved at random, each run in its own order.
	held := heldChanges(seed+1, sz.held)
	cs := slices.Clone(creations)
	for len(held) > 0 || len(cs) > 0 {
		if len(cs) == 0 || len(held) > 0 && rng.Intn(2) == 0 {
			b.changes, held = append(b.changes, held[0]), held[1:]
		} else {
			c := *cs[0]
			b.changes, cs = append(b.changes, &c), cs[1:]
		}
	}
	return a, b, creations
}

// heldChanges makes n changes of every kind and action but VMR, device and user
// creations (which a plan keeps in created), keys in random order.
func heldChanges(seed int64, n int) []*Change {
	rng := rand.New(rand.NewSource(seed))
	type ka struct {
		kind   account.Kind
		action account.Action
	}
	kas := []ka{
		{account.KindVMR, account.ActionUpdate}, {account.KindVMR, account.ActionDelete},
		{account.KindDevice, account.ActionUpdate}, {account.KindDevice, account.ActionDelete},
		{account.KindUser, account.ActionUpdate}, {account.KindUser, account.ActionDeactivate}, {account.KindUser, account.ActionReactivate},
		{account.KindTrackingGroup, account.ActionCreate}, {account.KindTrackingGroup, account.ActionUpdate}, {account.KindTrackingGroup, account.ActionDelete},
		{account.KindInvite, account.ActionCreate}, {account.KindInvite, account.ActionDelete},
	}
	cs := make([]*Change, n)
	for i := range cs {
		x := kas[rng.Intn(len(kas))]
		c := &Change{Kind: x.kind, Action: x.action, Key: fmt.Sprintf("vmr-%06d", rng.Intn(n/2+1)), Template: "staff"}
		switch c.Kind {
		case account.KindVMR:
			c.newObj = &account.VMR{Name: c.Key, PIN: fmt.Sprint(rng.Intn(1e6)), Aliases: []string{c.Key + "@x"}}
			c.oldObj = &account.VMR{Name: c.Key, PIN: "old"}
		case account.KindDevice:
			c.newObj = &account.Device{Alias: c.Key, Password: fmt.Sprint(rng.Intn(1e6))}
			c.oldObj = &account.Device{Alias: c.Key}
		case account.KindUser:
			c.newObj = &account.User{Email: c.Key, FirstName: fmt.Sprint(rng.Intn(1e6)), Active: c.Action != account.ActionDeactivate}
			c.oldObj = &account.User{Email: c.Key}
		case account.KindTrackingGroup:
			c.newObj = &account.TrackingGroup{Slot: fmt.Sprint(rng.Intn(10)), Name: c.Key,
				Codes: []account.TrackingCode{{Code: fmt.Sprint(rng.Intn(100)), Active: true}}}
		case account.KindInvite:
			c.newObj = &account.Invite{Email: c.Key, Name: fmt.Sprint(rng.Intn(1e6)), Status: "pending"}
		}
		cs[i] = c
	}
	return cs
}

// changeDiff is "" when two changes are the same change.
func changeDiff(got, want *Change) string {
	switch {
	case got.Kind != want.Kind || got.Action != want.Action || got.Key != want.Key || got.Template != want.Template:
		return fmt.Sprintf("%s %s %q (template %q), want %s %s %q (template %q)",
			got.Kind, got.Action, got.Key, got.Template, want.Kind, want.Action, want.Key, want.Template)
	case !reflect.DeepEqual(got.newObj, want.newObj):
		return fmt.Sprintf("%s %q: new object %+v, want %+v", got.Kind, got.Key, got.newObj, want.newObj)
	case !reflect.DeepEqual(got.oldObj, want.oldObj):
		return fmt.Sprintf("%s %q: old object %+v, want %+v", got.Kind, got.Key, got.oldObj, want.oldObj)
	case !reflect.DeepEqual(got.Fields, want.Fields):
		return fmt.Sprintf("%s %q: fields %v, want %v", got.Kind, got.Key, got.Fields, want.Fields)
	}
	return ""
}

// createdGroup is a change's rank group, as finish ranks it.
func createdGroup(c *Change) int {
	kinds := map[account.Kind]int{account.KindTrackingGroup: 0, account.KindVMR: 1, account.KindDevice: 2, account.KindUser: 3, account.KindInvite: 4}
	order := map[account.Action]int{account.ActionDelete: 0, account.ActionDeactivate: 1, account.ActionUpdate: 2, account.ActionReactivate: 3, account.ActionCreate: 4}
	return kinds[c.Kind]*8 + order[c.Action]
}

var createdCases = []struct {
	name string
	sz   createdSizes
}{
	{"small", createdSizes{vmrs: 5, devices: 4, users: 6, held: 10, own: 2}},
	{"only creations", createdSizes{vmrs: 50, devices: 40, users: 30, own: 3}},
	{"only held", createdSizes{held: 100}},
	{"devices only", createdSizes{devices: 20, held: 30, own: 2}},
	{"all own", createdSizes{vmrs: 30, devices: 30, users: 10, held: 20, own: 1}},
	{"empty", createdSizes{}},
	{"duplicate keys", createdSizes{vmrs: 60, devices: 50, users: 40, held: 50, own: 3, dups: true}},
	{"two chunks exactly", createdSizes{vmrs: 20000, devices: 10000, users: 10000, held: 2*fingerprintChunk - 40000, own: 40}},
	{"large", createdSizes{vmrs: 15000, devices: 10000, users: 15000, held: 30000, own: 50}},
}

func TestCreatedEquivalence(t *testing.T) {
	for ci, tc := range createdCases {
		t.Run(tc.name, func(t *testing.T) {
			seed := int64(ci + 1)
			a, b, creations := createdPlans(seed, tc.sz, mutateNone)
			total := tc.sz.vmrs + tc.sz.devices + tc.sz.users + tc.sz.held
			if a.Len() != total || b.Len() != total {
				t.Fatalf("Len before finish: %d and %d, want %d", a.Len(), b.Len(), total)
			}
			if a.created.len() != len(creations) || len(a.changes) != tc.sz.held {
				t.Fatalf("plan a holds %d creations and %d changes, want %d and %d", a.created.len(), len(a.changes), len(creations), tc.sz.held)
			}
			if ownVMRs, ownDevices := a.created.ownVMRs.Len(), a.created.ownDevices.Len(); tc.sz.own > 0 &&
				(tc.sz.vmrs > 0 && ownVMRs == 0 || tc.sz.devices > 0 && ownDevices == 0 ||
					tc.sz.own > 1 && (ownVMRs == tc.sz.vmrs && tc.sz.vmrs > 0 || ownDevices == tc.sz.devices && tc.sz.devices > 0)) {
				t.Fatalf("the case must have own and other creations: %d of %d VMRs own, %d of %d devices", ownVMRs, tc.sz.vmrs, ownDevices, tc.sz.devices)
			}
			a.finish()
			b.finish()
			if a.Len() != total || b.Len() != total {
				t.Fatalf("Len after finish: %d and %d, want %d", a.Len(), b.Len(), total)
			}
			if a.Summary != b.Summary {
				t.Errorf("summary %+v, want %+v", a.Summary, b.Summary)
			}
			creates := len(creations)
			for _, c := range a.changes {
				if c.Action == account.ActionCreate {
					creates++
				}
			}
			if a.Summary.Create != creates || a.Summary.Unchanged != 17 {
				t.Errorf("summary %+v: want %d creations, 17 unchanged", a.Summary, creates)
			}
			if a.Fingerprint != b.Fingerprint {
				t.Errorf("fingerprint %s, want %s", a.Fingerprint, b.Fingerprint)
			}
			got, want := a.Changes(), b.Changes()
			if len(got) != total || len(want) != total {
				t.Fatalf("Changes: %d and %d, want %d", len(got), len(want), total)
			}
			// The order is finish's: rank group (kind, then action), then key.
			for i := 1; i < len(got); i++ {
				p, c := got[i-1], got[i]
				gp, gc := createdGroup(p), createdGroup(c)
				if gp > gc || gp == gc && p.Key > c.Key {
					t.Fatalf("change %d (%s %s %q) comes after %s %s %q", i, c.Kind, c.Action, c.Key, p.Kind, p.Action, p.Key)
				}
			}
			bad := 0
			for i := range want {
				if d := changeDiff(got[i], want[i]); d != "" {
					t.Errorf("change %d: %s", i, d)
					if bad++; bad > 10 {
						t.FailNow()
					}
				}
			}
			// Each template's creations are counted.
			perTemplate := map[string]int{}
			for _, c := range creations {
				perTemplate[c.Template]++
			}
			if len(creations) > 0 && !maps.Equal(a.created.perTemplate, perTemplate) {
				t.Errorf("creations per template %v, want %v", a.created.perTemplate, perTemplate)
			}
			// Any run of changes reads as the same run of the whole.
			segs := a.segments()
			rng := rand.New(rand.NewSource(seed))
			for range 20 {
				lo := rng.Intn(total + 1)
				hi := lo + rng.Intn(total-lo+1)
				k := 0
				a.eachIn(segs, lo, hi, func(c *Change) { // each compared before the next overwrites it
					if d := changeDiff(c, want[lo+k]); d != "" {
						t.Fatalf("eachIn(%d, %d) at %d: %s", lo, hi, lo+k, d)
					}
					k++
				})
				if k != hi-lo {
					t.Fatalf("eachIn(%d, %d): %d changes", lo, hi, k)
				}
			}
			// reused yields what All does, each creation in the scratch of the one before.
			n := 0
			for i, c := range a.reused() {
				if d := changeDiff(c, want[i]); d != "" {
					t.Fatalf("reused at %d: %s", i, d)
				}
				n++
			}
			if n != total {
				t.Fatalf("reused yields %d changes, want %d", n, total)
			}
			// All stops when yield says so, wherever it is.
			for _, stop := range []int{0, 1, total / 3, total / 2, total - 1} {
				if stop < 0 || stop >= total {
					continue
				}
				calls := 0
				a.All()(func(i int, c *Change) bool {
					if i != calls {
						t.Fatalf("All yields index %d as change %d", i, calls)
					}
					calls++
					return i < stop
				})
				if calls != stop+1 {
					t.Errorf("All called yield %d times, stopping at %d", calls, stop)
				}
			}
		})
	}
}

// unordered yields the held changes as they were made, then the creations as recorded.
func TestCreatedUnordered(t *testing.T) {
	for ci, tc := range createdCases {
		if tc.sz.vmrs+tc.sz.devices+tc.sz.users+tc.sz.held > 1000 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			a, _, creations := createdPlans(int64(ci+1), tc.sz, mutateNone)
			var got []*Change
			for c := range a.unordered() {
				got = append(got, c)
			}
			if len(got) != len(a.changes)+len(creations) {
				t.Fatalf("unordered yields %d changes, want %d", len(got), len(a.changes)+len(creations))
			}
			for i, c := range a.changes {
				if got[i] != c {
					t.Fatalf("unordered change %d is %s %s %q, want the held %s %s %q", i, got[i].Kind, got[i].Action, got[i].Key,
						c.Kind, c.Action, c.Key)
				}
			}
			for k, want := range creations {
				if d := changeDiff(got[len(a.changes)+k], want); d != "" {
					t.Fatalf("unordered creation %d: %s", k, d)
				}
			}
			for stop := range len(got) {
				calls := 0
				a.unordered()(func(*Change) bool {
					calls++
					return calls <= stop
				})
				if calls != stop+1 {
					t.Fatalf("unordered called yield %d times, stopping at %d", calls, stop)
				}
			}
		})
	}
}

// A creation changed anywhere, its own copy or the desired list it points into,
// changes the fingerprint; built again unchanged, the fingerprint is the same.
func TestCreatedFingerprintSeesCreations(t *testing.T) {
	for _, tc := range []struct {
		name string
		sz   createdSizes
	}{
		{"small", createdSizes{vmrs: 8, devices: 8, users: 8, held: 10, own: 2}},
		{"large", createdSizes{vmrs: 15000, devices: 10000, users: 15000, held: 10000, own: 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _, _ := createdPlans(5, tc.sz, mutateNone)
			base.finish()
			again, _, _ := createdPlans(5, tc.sz, mutateNone)
			again.finish()
			if again.Fingerprint != base.Fingerprint {
				t.Fatalf("the same plan built twice: fingerprints %s and %s", base.Fingerprint, again.Fingerprint)
			}
			for _, m := range []struct {
				name string
				mut  createdMutation
			}{
				{"own VMR PIN", mutateOwnVMRPIN},
				{"own device password", mutateOwnDevice},
				{"desired VMR description", mutateDesiredVMR},
				{"user seq", mutateUserSeq},
				{"user notified", mutateUserNotify},
				{"desired user first name", mutateUserName},
			} {
				p, b, _ := createdPlans(5, tc.sz, m.mut)
				p.finish()
				b.finish()
				if p.Fingerprint == base.Fingerprint {
					t.Errorf("%s: changing one creation must change the fingerprint", m.name)
				}
				if p.Fingerprint != b.Fingerprint { // the mutation is the same in both plans
					t.Errorf("%s: fingerprint %s, held as changes %s", m.name, p.Fingerprint, b.Fingerprint)
				}
			}
		})
	}
}
