package push

import (
	"encoding/json"
	"slices"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/state"
)

// VMR is what the platform gets of one of roster's VMRs: plain values, so that an apply
// can map its own types (a zero call rate or participant limit means "no limit").
type VMR struct {
	Name, Description, PIN, GuestPIN string
	AllowGuests                      bool
	MaxCallrateIn, MaxCallrateOut    int
	ParticipantLimit                 int
	Tag, OwnerEmail                  string
	Aliases                          []string
}

// Device is what the platform gets of one of roster's devices.
type Device struct {
	Alias, Description, Username, Password, Tag, OwnerEmail string
}

// User is what the platform gets of one of roster's users (an end user).
type User struct {
	Email, FirstName, LastName, DisplayName string
}

// Kinds of roster objects the operations deliver; emails of an object wait for its
// operations (state.DB.PlatformWaiting).
const (
	KindVMR    = "vmr"
	KindDevice = "device"
	KindUser   = "user"
)

// VMROps maps one applied change of a VMR (old nil: created; new nil: deleted) to the
// platform operations that carry it, in order: a new VMR is one create of its conference
// with its aliases; a changed one a patch of only the changed fields (a rename names the
// old key), then its removed aliases deleted and its added ones created; a deleted one
// its aliases deleted, then the conference (roster does not rely on Pexip's cascade).
// An unchanged VMR gives none.
func VMROps(platform string, old, new *VMR) []state.PlatformOp {
	conf := func(op string, v *VMR, payload map[string]any) state.PlatformOp {
		return state.PlatformOp{Platform: platform, Op: op, Resource: string(pexip.Conferences), ObjectKey: v.Name,
			Kind: KindVMR, OwnerKey: v.Name, Payload: encode(payload)}
	}
	alias := func(op, a string, v *VMR) state.PlatformOp {
		p := map[string]any{}
		if op == state.OpCreate {
			p["alias"] = a
		}
		return state.PlatformOp{Platform: platform, Op: op, Resource: string(pexip.ConferenceAliases), ObjectKey: a,
			Kind: KindVMR, OwnerKey: v.Name, Payload: encode(p), DepResource: string(pexip.Conferences), DepKey: v.Name}
	}
	switch {
	case old == nil && new == nil:
		return nil
	case old == nil:
		p := conferenceFields(new)
		p["service_type"] = "conference"
		aliases := []map[string]any{}
		for _, a := range new.Aliases {
			aliases = append(aliases, map[string]any{"alias": a})
		}
		p["aliases"] = aliases
		return []state.PlatformOp{conf(state.OpCreate, new, p)}
	case new == nil:
		var ops []state.PlatformOp
		for _, a := range old.Aliases {
			ops = append(ops, alias(state.OpDelete, a, old))
		}
		return append(ops, conf(state.OpDelete, old, map[string]any{}))
	}
	var ops []state.PlatformOp
	if diff := changed(conferenceFields(old), conferenceFields(new)); len(diff) > 0 {
		op := conf(state.OpPatch, new, diff)
		if old.Name != new.Name {
			op.FromKey = old.Name
		}
		ops = append(ops, op)
	}
	for _, a := range old.Aliases {
		if !slices.Contains(new.Aliases, a) {
			ops = append(ops, alias(state.OpDelete, a, new))
		}
	}
	for _, a := range new.Aliases {
		if !slices.Contains(old.Aliases, a) {
			ops = append(ops, alias(state.OpCreate, a, new))
		}
	}
	return ops
}

func conferenceFields(v *VMR) map[string]any {
	return map[string]any{
		"name": v.Name, "description": v.Description, "pin": v.PIN, "guest_pin": v.GuestPIN,
		"allow_guests": v.AllowGuests, "max_callrate_in": nullable(v.MaxCallrateIn),
		"max_callrate_out": nullable(v.MaxCallrateOut), "participant_limit": nullable(v.ParticipantLimit),
		"tag": v.Tag, "primary_owner_email_address": v.OwnerEmail,
	}
}

// nullable: roster's 0 is "not set", Pexip's null "no limit" (its 0 participant limit
// would let nobody in).
func nullable(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// DeviceOps maps one applied change of a device to its operations. The password is sent
// when the device is made and when it changed, never otherwise (it is write-only on
// Pexip, so it cannot be compared there).
func DeviceOps(platform string, old, new *Device) []state.PlatformOp {
	fields := func(d *Device) (string, map[string]any) {
		if d == nil {
			return "", nil
		}
		return d.Alias, map[string]any{"alias": d.Alias, "description": d.Description, "username": d.Username,
			"password": d.Password, "tag": d.Tag, "primary_owner_email_address": d.OwnerEmail}
	}
	oldKey, oldFields := fields(old)
	newKey, newFields := fields(new)
	return objectOps(platform, pexip.Devices, KindDevice, oldKey, newKey, oldFields, newFields)
}

// UserOps maps one applied change of a user to its end user operations.
func UserOps(platform string, old, new *User) []state.PlatformOp {
	fields := func(u *User) (string, map[string]any) {
		if u == nil {
			return "", nil
		}
		return u.Email, map[string]any{"primary_email_address": u.Email, "first_name": u.FirstName,
			"last_name": u.LastName, "display_name": u.DisplayName}
	}
	oldKey, oldFields := fields(old)
	newKey, newFields := fields(new)
	return objectOps(platform, pexip.EndUsers, KindUser, oldKey, newKey, oldFields, newFields)
}

// objectOps is the operation of one object without parts (a device, an end user) whose
// unique value is key and whose fields are fields, before (oldKey "": it is new) and
// after (newKey "": it is gone): a create of every field, a patch of the changed ones
// (naming the old key when it changed), or a delete.
func objectOps(platform string, res pexip.Resource, kind, oldKey, newKey string, oldFields, newFields map[string]any) []state.PlatformOp {
	op := state.PlatformOp{Platform: platform, Resource: string(res), ObjectKey: newKey, Kind: kind, OwnerKey: newKey}
	switch {
	case oldKey == "" && newKey == "":
		return nil
	case oldKey == "":
		op.Op, op.Payload = state.OpCreate, encode(newFields)
	case newKey == "":
		op.Op, op.ObjectKey, op.OwnerKey, op.Payload = state.OpDelete, oldKey, oldKey, encode(map[string]any{})
	default:
		diff := changed(oldFields, newFields)
		if len(diff) == 0 {
			return nil
		}
		op.Op, op.Payload = state.OpPatch, encode(diff)
		if oldKey != newKey {
			op.FromKey = oldKey
		}
	}
	return []state.PlatformOp{op}
}

// changed is the fields of b that differ from a.
func changed(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range b {
		if a[k] != v {
			out[k] = v
		}
	}
	return out
}

// Order sorts one apply's operations so that each can succeed: deletes first (an alias
// or name freed by one object may be taken by another in the same apply), then patches,
// then creates; the order within each group, and so between the operations of one
// object, is kept.
func Order(ops []state.PlatformOp) {
	rank := map[string]int{state.OpDelete: 0, state.OpPatch: 1, state.OpCreate: 2}
	slices.SortStableFunc(ops, func(a, b state.PlatformOp) int { return rank[a.Op] - rank[b.Op] })
}

func encode(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil { // only plain values go in
		panic(err)
	}
	return string(b)
}
