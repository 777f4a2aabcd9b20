package reconcile

import (
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/roster-dev/roster/schema/account"
)

// manyChanges makes n changes of mixed kinds and actions, keys in random order.
func manyChanges(n int, seed int64) []*Change {
	rng := rand.New(rand.NewSource(seed))
	kinds := []account.Kind{account.KindVMR, account.KindDevice, account.KindUser}
	actions := []account.Action{account.ActionCreate, account.ActionUpdate, account.ActionDelete}
	cs := make([]*Change, n)
	for i := range cs {
		c := &Change{Kind: kinds[rng.Intn(3)], Action: actions[rng.Intn(3)], Key: fmt.Sprintf("k%05d", rng.Intn(n/2+1))}
		switch c.Kind {
		case account.KindVMR:
			c.newObj = &account.VMR{Name: c.Key, PIN: fmt.Sprint(rng.Intn(1e6))}
		case account.KindDevice:
			c.newObj = &account.Device{Alias: c.Key, Password: fmt.Sprint(rng.Intn(1e6))}
		default:
			c.newObj = &account.User{Email: c.Key, FirstName: fmt.Sprint(rng.Intn(1e6))}
		}
		cs[i] = c
	}
	return cs
}

func TestFinishOrderAndFingerprint(t *testing.T) {
	const n = 3*fingerprintChunk + 123 // several chunks, the last one short
	plan := func() *Plan { return &Plan{Commit: "c1", StateVersion: 7, changes: manyChanges(n, 1)} }
	p := plan()
	p.finish()
	// The order is the reference one: rank group, key, then position among equal keys.
	ref := manyChanges(n, 1)
	order := map[account.Action]int{account.ActionDelete: 0, account.ActionDeactivate: 1, account.ActionUpdate: 2, account.ActionReactivate: 3, account.ActionCreate: 4}
	kinds := map[account.Kind]int{account.KindTrackingGroup: 0, account.KindVMR: 1, account.KindDevice: 2, account.KindUser: 3, account.KindInvite: 4}
	for i, c := range ref {
		c.rank = (kinds[c.Kind]*8+order[c.Action])<<32 | i
	}
	slices.SortStableFunc(ref, func(a, b *Change) int {
		if a.rank>>32 != b.rank>>32 {
			return a.rank>>32 - b.rank>>32
		}
		return strings.Compare(a.Key, b.Key)
	})
	got := p.Changes()
	for i := range ref {
		if ref[i].rank != got[i].rank {
			t.Fatalf("position %d: %s %s %s, want %s %s %s", i, got[i].Kind, got[i].Action, got[i].Key,
				ref[i].Kind, ref[i].Action, ref[i].Key)
		}
	}
	// The fingerprint is the same on one core as on several, and changes with any change.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one := plan()
	one.finish()
	runtime.GOMAXPROCS(4)
	four := plan()
	four.finish()
	if one.Fingerprint != p.Fingerprint || four.Fingerprint != p.Fingerprint {
		t.Errorf("fingerprints differ with the number of cores: %s %s %s", one.Fingerprint, p.Fingerprint, four.Fingerprint)
	}
	for _, at := range []int{0, n / 2, n - 1} { // one change, wherever its chunk
		other := plan()
		c := other.changes[at]
		c.Key += "x"
		other.finish()
		if other.Fingerprint == p.Fingerprint {
			t.Errorf("changing change %d must change the fingerprint", at)
		}
	}
}
