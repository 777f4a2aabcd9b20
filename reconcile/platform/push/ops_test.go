package push

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/roster-dev/roster/state"
)

// opView is an operation as the tests compare it.
type opView struct {
	Op, Resource, Key, From, Dep string
	Payload                      map[string]any
}

func view(ops []state.PlatformOp) []opView {
	var out []opView
	for _, o := range ops {
		var p map[string]any
		if err := json.Unmarshal([]byte(o.Payload), &p); err != nil {
			panic(err)
		}
		out = append(out, opView{o.Op, o.Resource, o.ObjectKey, o.FromKey, o.DepKey, p})
	}
	return out
}

func TestVMROps(t *testing.T) {
	room := VMR{Name: "Alice", Description: "Alice's room", PIN: "1234", MaxCallrateIn: 2048, Tag: "staff",
		OwnerEmail: "alice@example.com", Aliases: []string{"alice@example.com", "1001"}}
	edited := room
	edited.Description, edited.MaxCallrateIn, edited.Aliases = "Alice B.", 0, []string{"alice@example.com", "1002"}
	renamed := room
	renamed.Name = "Alice B"
	cases := []struct {
		name     string
		old, new *VMR
		want     []opView
	}{
		{"created with its aliases", nil, &room, []opView{{"create", "conference", "Alice", "", "", map[string]any{
			"name": "Alice", "service_type": "conference", "description": "Alice's room", "pin": "1234", "guest_pin": "",
			"allow_guests": false, "max_callrate_in": 2048.0, "max_callrate_out": nil, "participant_limit": nil,
			"tag": "staff", "primary_owner_email_address": "alice@example.com",
			"aliases": []any{map[string]any{"alias": "alice@example.com"}, map[string]any{"alias": "1001"}}}}}},
		{"unchanged", &room, &room, nil},
		{"changed fields only, aliases diffed", &room, &edited, []opView{
			{"patch", "conference", "Alice", "", "", map[string]any{"description": "Alice B.", "max_callrate_in": nil}},
			{"delete", "conference_alias", "1001", "", "Alice", map[string]any{}},
			{"create", "conference_alias", "1002", "", "Alice", map[string]any{"alias": "1002"}}}},
		{"renamed", &room, &renamed, []opView{{"patch", "conference", "Alice B", "Alice", "", map[string]any{"name": "Alice B"}}}},
		{"deleted: aliases first", &room, nil, []opView{
			{"delete", "conference_alias", "alice@example.com", "", "Alice", map[string]any{}},
			{"delete", "conference_alias", "1001", "", "Alice", map[string]any{}},
			{"delete", "conference", "Alice", "", "", map[string]any{}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops := VMROps("pexip", tc.old, tc.new)
			if got := view(ops); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			for _, o := range ops {
				if o.Platform != "pexip" || o.Kind != KindVMR || o.OwnerKey == "" {
					t.Errorf("op %+v: platform, kind or owner missing", o)
				}
			}
		})
	}
}

func TestDeviceAndUserOps(t *testing.T) {
	dev := Device{Alias: "alice.ep@example.com", Username: "alice", Password: "pw1", OwnerEmail: "alice@example.com"}
	newPW := dev
	newPW.Password = "pw2"
	retagged := dev
	retagged.Tag = "lab"
	user := User{Email: "bob@example.com", FirstName: "Bob", LastName: "Stone", DisplayName: "Bob Stone"}
	moved := user
	moved.Email = "bob.stone@example.com"
	cases := []struct {
		name string
		ops  []state.PlatformOp
		want []opView
	}{
		{"device created with its password", DeviceOps("pexip", nil, &dev), []opView{{"create", "device", "alice.ep@example.com", "", "",
			map[string]any{"alias": "alice.ep@example.com", "description": "", "username": "alice", "password": "pw1", "tag": "",
				"primary_owner_email_address": "alice@example.com"}}}},
		{"device password changed", DeviceOps("pexip", &dev, &newPW), []opView{{"patch", "device", "alice.ep@example.com", "", "",
			map[string]any{"password": "pw2"}}}},
		{"device tag changed: no password sent", DeviceOps("pexip", &dev, &retagged), []opView{{"patch", "device", "alice.ep@example.com", "", "",
			map[string]any{"tag": "lab"}}}},
		{"device unchanged", DeviceOps("pexip", &dev, &dev), nil},
		{"device deleted", DeviceOps("pexip", &dev, nil), []opView{{"delete", "device", "alice.ep@example.com", "", "", map[string]any{}}}},
		{"user created", UserOps("pexip", nil, &user), []opView{{"create", "end_user", "bob@example.com", "", "",
			map[string]any{"primary_email_address": "bob@example.com", "first_name": "Bob", "last_name": "Stone", "display_name": "Bob Stone"}}}},
		{"user's email changed", UserOps("pexip", &user, &moved), []opView{{"patch", "end_user", "bob.stone@example.com", "bob@example.com", "",
			map[string]any{"primary_email_address": "bob.stone@example.com"}}}},
		{"user unchanged", UserOps("pexip", &user, &user), nil},
	}
	for _, tc := range cases {
		if got := view(tc.ops); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestOrder(t *testing.T) {
	x := VMR{Name: "X", Aliases: []string{"a", "x"}}
	x2 := VMR{Name: "X", Aliases: []string{"x"}}
	y := VMR{Name: "Y", Aliases: []string{"a"}}
	// Y (new) takes the alias X gives up; enqueued in the order an apply meets them.
	ops := append(VMROps("pexip", nil, &y), VMROps("pexip", &x, &x2)...)
	ops = append(ops, DeviceOps("pexip", &Device{Alias: "d"}, &Device{Alias: "d", Tag: "t"})...)
	Order(ops)
	var got []string
	for _, o := range ops {
		got = append(got, o.Op+" "+o.ObjectKey)
	}
	want := []string{"delete a", "patch d", "create Y"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %q, want %q", got, want)
	}
}
