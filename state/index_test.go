package state

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/schema/account"
)

// fill writes n VMRs, devices and users (every third user inactive, every fourth free).
func fill(t *testing.T, db *DB, n int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(ctx, tx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("uuid-%d", i)
		tag := []string{"staff", "lab"}[i%2]
		var aliases []string
		if i%5 != 0 {
			aliases = []string{fmt.Sprintf("r%d@vc", i), fmt.Sprint(1000 + i)}
		}
		check(t, w.InsertVMR(&account.VMR{Name: fmt.Sprintf("Room %d", i), Description: "Salle de réunion ☎ " + strings.Repeat("x", i%7),
			Aliases: aliases, PIN: fmt.Sprint(1234 + i), AllowGuests: i%3 == 0, MaxCallrateIn: -i, MaxCallrateOut: 4128,
			ParticipantLimit: i % 50, Tag: "t:1;", OwnerEmail: "o@x", SyncTag: tag, EntryKey: key}))
		check(t, w.InsertDevice(&account.Device{Alias: fmt.Sprintf("d%d@dev", i), Description: "Gerät", Username: "u", Password: fmt.Sprint("pw", i),
			Tag: "t", OwnerEmail: "o@x", SyncTag: tag, EntryKey: key}))
		lic := "paid"
		if i%4 == 0 {
			lic = "free"
		}
		check(t, w.InsertUser(&account.User{UserID: fmt.Sprint(i + 1), Email: fmt.Sprintf("U%d@Example.com", i), FirstName: "F",
			LastName: "Müller", Tracking: account.MakeTracking([10]string{"X", "", fmt.Sprint(i % 3)}), Active: i%3 != 0, Origin: "remote",
			License: lic, SyncTag: tag, EntryKey: key, Language: "fr", HostPrivilege: "HOST", TimeZone: "Paris"}))
	}
	check(t, w.InsertVMR(&account.VMR{Name: "Declared", Aliases: []string{"declared@vc"}, SyncTag: account.ManualTag}))
	if _, err := w.BumpStateVersion("c1"); err != nil {
		t.Fatal(err)
	}
	check(t, w.Flush())
	check(t, tx.Commit())
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// spec masks some fields of template "lab" (overridable there).
var spec = &DigestSpec{Seed: maphash.MakeSeed(),
	VMRMask:    map[string][]string{"lab": {"pin", "aliases", "allow_guests", "max_callrate_in"}},
	DeviceMask: map[string][]string{"lab": {"password"}},
}

func TestIndexMatchesFullLoad(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "i.db"))
	check(t, err)
	defer db.Close()
	fill(t, db, 1200)
	full, err := db.LoadActual(ctx)
	check(t, err)
	ix, err := db.LoadIndex(ctx, spec)
	check(t, err)

	if len(ix.VMRs) != len(full.VMRs) || len(ix.Devices) != len(full.Devices) || len(ix.Users) != len(full.Users) {
		t.Fatalf("index sizes %d/%d/%d, full %d/%d/%d", len(ix.VMRs), len(ix.Devices), len(ix.Users), len(full.VMRs), len(full.Devices), len(full.Users))
	}
	for i, v := range full.VMRs {
		r := ix.VMRs[i]
		if r.ID != v.ID || r.Owner != spec.Owner(v.SyncTag, OwnerKey(v.SyncTag, v.EntryKey, v.Name)) || r.Digest != spec.VMR(v) {
			t.Fatalf("vmr %d: ref %+v for %+v (digest %x)", i, r, v, spec.VMR(v))
		}
	}
	if r := ix.VMRs[len(ix.VMRs)-1]; r.Owner != spec.Owner(account.ManualTag, "Declared") {
		t.Errorf("a declared VMR's owner key is its name: %+v", r)
	}
	for i, d := range full.Devices {
		if r := ix.Devices[i]; r.ID != d.ID || r.Owner != spec.Owner(d.SyncTag, d.EntryKey) || r.Digest != spec.Device(d) {
			t.Fatalf("device %d: ref %+v for %+v", i, r, d)
		}
	}
	for i, u := range full.Users {
		r := ix.Users[i]
		if r.ID != u.ID || r.Email() != "u"+u.Email[1:len(u.Email)-len("Example.com")]+"example.com" || r.UserID() != u.UserID ||
			r.Active != u.Active || r.Local || r.SyncTag() != u.SyncTag || r.EntryKey() != u.EntryKey || r.Digest != spec.User(u) {
			t.Fatalf("user %d: ref %+v for %+v", i, r, u)
		}
	}
	if want := full.Totals(); !reflect.DeepEqual(ix.Totals, want) {
		t.Errorf("index totals %+v, full %+v", ix.Totals, want)
	}
	if ix.Totals.ActivePaid == 0 || ix.Totals.Managed == len(ix.VMRs)+len(ix.Devices)+len(ix.Users) {
		t.Errorf("fill makes some users inactive and some free: totals %+v", ix.Totals)
	}

	// LoadObjects: a few by IN lists, many by a scan; each the same object LoadActual reads.
	for _, n := range []int{0, 3, 700, 1100} {
		var ids IDs
		for i := 0; i < n; i++ {
			j := (i * 7) % len(full.VMRs)
			ids.VMRs = append(ids.VMRs, full.VMRs[j].ID)
			ids.Devices = append(ids.Devices, full.Devices[j%len(full.Devices)].ID)
			ids.Users = append(ids.Users, full.Users[j%len(full.Users)].ID, full.Users[j%len(full.Users)].ID) // duplicates are fine
		}
		part, err := db.LoadObjects(ctx, ix, ids)
		check(t, err)
		if !part.Partial() || !reflect.DeepEqual(part.Totals(), ix.Totals) {
			t.Errorf("n=%d: partial state must carry the index totals", n)
		}
		byID := map[int64]*account.VMR{}
		for _, v := range full.VMRs {
			byID[v.ID] = v
		}
		want := slices.Compact(slices.Sorted(slices.Values(ids.VMRs)))
		if len(part.VMRs) != len(want) {
			t.Fatalf("n=%d: %d VMRs loaded, want %d", n, len(part.VMRs), len(want))
		}
		for i, v := range part.VMRs {
			if v.ID != want[i] || !reflect.DeepEqual(v, byID[v.ID]) {
				t.Fatalf("n=%d: loaded %+v, want %+v", n, v, byID[want[i]])
			}
		}
		distinct := func(ids []int64) int { return len(slices.Compact(slices.Sorted(slices.Values(ids)))) }
		if len(part.Users) != distinct(ids.Users) || len(part.Devices) != distinct(ids.Devices) {
			t.Errorf("n=%d: %d users, %d devices loaded", n, len(part.Users), len(part.Devices))
		}
	}

	vs, ds, err := db.ClaimHolders(ctx, ix, []string{"Room 5", "nobody"}, []string{"1007", "declared@vc"}, []string{"d9@dev", "x"})
	check(t, err)
	slices.Sort(vs)
	if want := []int64{full.VMRs[5].ID, full.VMRs[7].ID, full.VMRs[len(full.VMRs)-1].ID}; !slices.Equal(vs, want) || len(ds) != 1 || ds[0] != full.Devices[9].ID {
		t.Errorf("claim holders: vmrs %v (want %v), devices %v", vs, want, ds)
	}
}

func TestLoadObjectsRefusesAChangedState(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "i.db"))
	check(t, err)
	defer db.Close()
	fill(t, db, 10)
	ix, err := db.LoadIndex(ctx, spec)
	check(t, err)
	// Another apply: the state version moves on.
	tx, err := db.BeginTxx(ctx, nil)
	check(t, err)
	w, err := NewWriter(ctx, tx, time.Now())
	check(t, err)
	_, err = w.BumpStateVersion("c2")
	check(t, err)
	check(t, w.Flush())
	check(t, tx.Commit())
	if _, err := db.LoadObjects(ctx, ix, IDs{VMRs: []int64{ix.VMRs[0].ID}}); !errors.Is(err, ErrStateChanged) {
		t.Errorf("LoadObjects after a write: err = %v, want ErrStateChanged", err)
	}
	if _, _, err := db.ClaimHolders(ctx, ix, []string{"Room 1"}, nil, nil); !errors.Is(err, ErrStateChanged) {
		t.Errorf("ClaimHolders after a write: err = %v, want ErrStateChanged", err)
	}
}

func TestUserRefTexts(t *testing.T) {
	long := strings.Repeat("k", 70000)
	for _, c := range []struct{ email, userID, tag, key string }{
		{"a@x", "12", "staff", "uuid-1"},
		{"", "", "", ""},
		{"local@x", "7", "", ""},
		{"é@ü.example", "", "t", long}, // the entry key has no length limit
		{"b@x", "", "", "k"},
	} {
		var ar arena
		u := newUserRef(&ar, 9, c.email, c.userID, c.tag, c.key)
		if u.ID != 9 || u.Email() != c.email || u.UserID() != c.userID || u.SyncTag() != c.tag || u.EntryKey() != c.key {
			t.Errorf("newUserRef(%q, %q, %q, %d-byte key) gives %q %q %q %d-byte key", c.email, c.userID, c.tag, len(c.key),
				u.Email(), u.UserID(), u.SyncTag(), len(u.EntryKey()))
		}
	}
}
