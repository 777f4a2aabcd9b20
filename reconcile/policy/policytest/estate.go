package policytest

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy"
)

// Estate is a set of rooms and devices as the state reader hands them to the policy
// builder.
type Estate struct {
	Rooms   []policy.Room   `json:"rooms"`
	Devices []policy.Device `json:"devices"`
}

// LoadEstate reads an Estate from a JSON file (e.g. reconcile/policy/testdata/estate.json).
func LoadEstate(t testing.TB, path string) Estate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var e Estate
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return e
}

// PersonalRoom is the i-th personal VMR of a large estate as a sync template renders
// it. Its PIN and guest PIN encode version (guest PIN = version), so an answer tells
// which snapshot it came from.
func PersonalRoom(i, version int) policy.Room {
	return policy.Room{
		Name: fmt.Sprintf("Meet Firstname%d Lastname%d", i, i), ServiceTag: "personal-vmrs",
		Description: fmt.Sprintf("Personal room of Firstname%d Lastname%d", i, i),
		PIN:         fmt.Sprintf("%06d", (i*7919+version)%1000000), GuestPIN: fmt.Sprintf("%06d", version%1000000),
		AllowGuests: true, MaxCallrateIn: 4128, MaxCallrateOut: 4128, ParticipantLimit: 50,
		OwnerEmail: fmt.Sprintf("firstname%d.lastname%d@example.com", i, i),
		Aliases:    []string{PersonalAlias(i), fmt.Sprintf("%07d", 1000000+i)},
		Enabled:    true,
	}
}

// PersonalAlias is the URI alias of PersonalRoom(i, …).
func PersonalAlias(i int) string { return fmt.Sprintf("meet.firstname%d.lastname%d@example.com", i, i) }

// PersonalPIN is the PIN of PersonalRoom(i, version).
func PersonalPIN(i, version int) string { return fmt.Sprintf("%06d", (i*7919+version)%1000000) }
