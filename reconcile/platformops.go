package reconcile

// Push mode (SPEC §8): every applied change of a VMR, device or user becomes its platform
// operations, written to the platform queue in the apply's transaction, so that the
// platform gets exactly what SQLite committed, or nothing when the apply rolls back.

import (
	"strings"

	"github.com/roster-dev/roster/reconcile/platform/push"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// platformQueue gathers one apply's operations for the platforms pushed to.
type platformQueue struct {
	w         *state.Writer
	platforms []string
	commit    string
	ops       []state.PlatformOp
	adopted   map[string][]state.PlatformOp // AdoptKey → the adoption's operations instead
}

// AdoptKey names roster's object kind/key among ApplyOptions.Adopted.
func AdoptKey(kind account.Kind, key string) string { return string(kind) + "\x00" + key }

// Objects are the change's object before and after (nil for a creation's before, a
// deletion's after): *account.VMR, *account.Device, *account.User, ….
func (c *Change) Objects() (old, new any) { return c.oldObj, c.newObj }

// add maps one applied change to its operations on every platform pushed to. A user
// deactivated stays an end user on Pexip (roster never deletes users, SPEC §5); a VMR or
// device deleted is deleted there too.
func (q *platformQueue) add(c *Change) {
	if q == nil {
		return
	}
	if ops, ok := q.adopted[AdoptKey(c.Kind, c.Key)]; ok && c.Action == account.ActionCreate {
		q.ops = append(q.ops, ops...) // on the platform already: only its differences
		return
	}
	for _, name := range q.platforms {
		var ops []state.PlatformOp
		switch c.Kind {
		case account.KindVMR:
			ops = push.VMROps(name, pushVMR(c.oldVMR()), pushVMR(c.newVMR()))
		case account.KindDevice:
			ops = push.DeviceOps(name, pushDevice(c.oldDevice()), pushDevice(c.newDevice()))
		case account.KindUser:
			if c.Action == account.ActionCreate || c.Action == account.ActionUpdate {
				ops = push.UserOps(name, pushUser(c.oldUser()), pushUser(c.newUser()))
			}
		}
		for i := range ops {
			ops[i].Commit = q.commit
		}
		q.ops = append(q.ops, ops...)
	}
}

// flush writes the operations gathered so far, deletes before patches before creates
// (freed names and aliases are taken again only after they are free).
func (q *platformQueue) flush() error {
	if q == nil || len(q.ops) == 0 {
		return nil
	}
	push.Order(q.ops)
	err := q.w.EnqueuePlatform(q.ops)
	q.ops = q.ops[:0]
	return err
}

// flushEvery bounds the operations a first apply holds in memory before writing them.
const flushEvery = 4096

func pushVMR(v *account.VMR) *push.VMR {
	if v == nil || strings.HasPrefix(v.Name, "\x00") {
		return nil
	}
	return &push.VMR{Name: v.Name, Description: v.Description, PIN: v.PIN, GuestPIN: v.GuestPIN,
		AllowGuests: v.AllowGuests, MaxCallrateIn: v.MaxCallrateIn, MaxCallrateOut: v.MaxCallrateOut,
		ParticipantLimit: v.ParticipantLimit, Tag: v.Tag, OwnerEmail: v.OwnerEmail,
		Aliases: append([]string(nil), v.Aliases...)}
}

func pushDevice(d *account.Device) *push.Device {
	if d == nil {
		return nil
	}
	return &push.Device{Alias: d.Alias, Description: d.Description, Username: d.Username, Password: d.Password,
		Tag: d.Tag, OwnerEmail: d.OwnerEmail}
}

func pushUser(u *account.User) *push.User {
	if u == nil {
		return nil
	}
	return &push.User{Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		DisplayName: strings.TrimSpace(u.FirstName + " " + u.LastName)}
}

// PushVMR, PushDevice and PushUser are roster's objects as the platform gets them (for
// `roster platform check` and adoption, which compare them with what the platform holds).
func PushVMR(v *account.VMR) *push.VMR          { return pushVMR(v) }
func PushDevice(d *account.Device) *push.Device { return pushDevice(d) }
func PushUser(u *account.User) *push.User       { return pushUser(u) }
