package push

import (
	"context"
	"fmt"
	"testing"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
)

// After a push, what the platform holds maps back to no operation; an object changed by
// hand maps to the patch of exactly what changed.
func TestDriftRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil)
	r.enqueue(t, estate(2))
	r.drain(t)
	conf := func(name string) pexip.Conference {
		c, ok := r.fake.Find(pexip.Conferences, name)
		if !ok {
			t.Fatalf("no conference %s", name)
		}
		got, err := pexip.GetAs[pexip.Conference](ctx, r.d.Client, pexip.Conferences, c["id"].(int))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := vmr(1)
	got := FromConference(conf(want.Name))
	if ops := VMROps("pexip", &got, want); len(ops) != 0 {
		t.Fatalf("no drift expected, got %+v", view(ops))
	}
	dev, _ := r.fake.Find(pexip.Devices, device(1).Alias)
	pd, err := pexip.GetAs[pexip.Device](ctx, r.d.Client, pexip.Devices, dev["id"].(int))
	if err != nil {
		t.Fatal(err)
	}
	gotDev := FromDevice(pd, device(1).Password)
	if ops := DeviceOps("pexip", &gotDev, device(1)); len(ops) != 0 {
		t.Fatalf("device drift: %+v", view(ops))
	}
	users, err := pexip.ListAll[pexip.EndUser](ctx, r.d.Client, pexip.EndUsers, nil)
	if err != nil || len(users) != 2 {
		t.Fatal(err)
	}
	// The list's order is the platform's; compare the user by email.
	found := false
	for _, pu := range users {
		if u := FromEndUser(pu); u.Email == user(1).Email {
			found = true
			if len(UserOps("pexip", &u, user(1))) != 0 {
				t.Fatalf("end user drift for %+v", u)
			}
		}
	}
	if !found {
		t.Fatalf("end user %s not on the platform", user(1).Email)
	}

	// By hand: a PIN changed, a call rate lifted, an alias removed.
	c := conf(want.Name)
	if err := r.fake.Edit(pexip.Conferences, c.ID, map[string]any{"pin": "0000", "max_callrate_in": nil}); err != nil {
		t.Fatal(err)
	}
	r.fake.Remove(pexip.ConferenceAliases, c.Aliases[1].ID)
	got = FromConference(conf(want.Name))
	repair := view(VMROps("pexip", &got, want))
	wantRepair := fmt.Sprint([]opView{
		{"patch", "conference", want.Name, "", "", map[string]any{"pin": "1234", "max_callrate_in": 4096.0}},
		{"create", "conference_alias", want.Aliases[1], "", want.Name, map[string]any{"alias": want.Aliases[1]}},
	})
	if fmt.Sprint(repair) != wantRepair {
		t.Fatalf("repair = %v\nwant     %v", repair, wantRepair)
	}
	// Delivered, the repair leaves no drift.
	ops := VMROps("pexip", &got, want)
	r.enqueue(t, ops)
	r.drain(t)
	got = FromConference(conf(want.Name))
	if ops := VMROps("pexip", &got, want); len(ops) != 0 {
		t.Fatalf("drift after repair: %+v", view(ops))
	}
}
