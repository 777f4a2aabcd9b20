package pipeline

// `roster platform adopt [--apply]` (SPEC §8): moving an existing estate to roster.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/push"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// Adoption is one platform object that matches what roster would own (same conference
// name, device alias or end-user email), and the fields roster would still change.
type Adoption struct {
	Kind   string   `json:"kind"`
	Key    string   `json:"key"`
	ID     int      `json:"id"`
	Fields []string `json:"fields,omitempty"`
	// Conflict says why the object is not adopted: it belongs to someone else (another
	// roster installation's marker). It is left alone; the push reports it again.
	Conflict string `json:"conflict,omitempty"`

	ops  []state.PlatformOp
	objs []state.PlatformObject
}

// AdoptResult is what adoption found, and applied when asked.
type AdoptResult struct {
	Adopted   []Adoption
	Conflicts []Adoption // matching objects that belong to someone else, left alone
	Applied   bool
	Plan      *reconcile.Plan
}

// Adopt lists the platform objects that match roster's objects not yet owned: those in
// the state and those the plan of repo would create. With apply it takes ownership in ONE
// transaction — the plan applied with the adopted objects' creations replaced by patches
// of only their differing fields (the marker set on the way), their ids recorded, and no
// `created` email for them; the queue then pushes just the differences.
func (p *Pipeline) Adopt(ctx context.Context, repo *schema.Repo, commit string, apply bool) (AdoptResult, error) {
	var out AdoptResult
	d, err := p.Pusher(ctx, nil)
	if err != nil {
		return out, err
	}
	plan, err := p.Plan(ctx, repo, commit)
	if err != nil {
		return out, err
	}
	out.Plan = plan
	view, err := readPlatform(ctx, d.Client, d.Marker)
	if err != nil {
		return out, fmt.Errorf("platform adopt: %w", err)
	}
	ids, err := listIDs(ctx, d.Client)
	if err != nil {
		return out, fmt.Errorf("platform adopt: %w", err)
	}
	objs, err := d.DB.PlatformObjects(ctx, PexipPlatform)
	if err != nil {
		return out, err
	}
	owned := map[string]bool{}
	for _, o := range objs {
		owned[o.Resource+"\x00"+o.Key] = true
	}
	held := aliasHolders(view)
	rosters := map[string]bool{} // names of roster's VMRs, owned or to be created
	candidate := func(x any) {
		if v, ok := x.(*account.VMR); ok {
			out.Conflicts = append(out.Conflicts, aliasConflicts(v, view, held, ids, owned, rosters)...)
		}
		a, ok := adoption(x, view, ids, owned, d.Marker)
		switch {
		case !ok:
		case a.Conflict != "":
			out.Conflicts = append(out.Conflicts, a)
		default:
			out.Adopted = append(out.Adopted, a)
		}
	}
	actual, err := d.DB.LoadActual(ctx)
	if err != nil {
		return out, err
	}
	for _, v := range actual.VMRs {
		rosters[v.Name] = true
	}
	for _, c := range plan.All() {
		if _, n := c.Objects(); c.Action == account.ActionCreate {
			if v, ok := n.(*account.VMR); ok {
				rosters[v.Name] = true
			}
		}
	}
	for _, v := range actual.VMRs {
		candidate(v)
	}
	for _, dv := range actual.Devices {
		candidate(dv)
	}
	for _, u := range actual.Users {
		candidate(u)
	}
	inState := len(out.Adopted)
	for _, c := range plan.All() {
		if c.Action == account.ActionCreate {
			_, n := c.Objects()
			candidate(n)
		}
	}
	if !apply || len(out.Adopted) == 0 {
		return out, nil
	}
	opts := reconcile.ApplyOptions{Actor: "cli:platform-adopt", Now: time.Now().UTC(), Push: PushPlatforms(p.Config),
		Adopted: map[string][]state.PlatformOp{}}
	for i, a := range out.Adopted {
		opts.AdoptedObjects = append(opts.AdoptedObjects, a.objs...)
		if i < inState {
			opts.Repair = append(opts.Repair, a.ops...)
		} else {
			opts.Adopted[reconcile.AdoptKey(account.Kind(a.Kind), a.Key)] = a.ops
		}
	}
	plan.DropEmails(func(e *reconcile.Email) bool {
		_, adopted := opts.Adopted[reconcile.AdoptKey(e.Kind, e.Key)]
		return adopted && e.Action == account.EmailCreated
	})
	if _, err := p.Apply(ctx, plan, opts, true); err != nil {
		return out, err
	}
	out.Applied = true
	return out, nil
}

// adoption decides whether roster's object x (*account.VMR, *account.Device or
// *account.User) is on the platform, not yet owned, and what adopting it takes.
func adoption(x any, view *platformView, ids map[string]int, owned map[string]bool, m pexip.Marker) (Adoption, bool) {
	var a Adoption
	var res pexip.Resource
	switch o := x.(type) {
	case *account.VMR:
		got, ok := view.vmrs[o.Name]
		res, a.Kind, a.Key = pexip.Conferences, push.KindVMR, o.Name
		if !ok {
			return a, false
		}
		a.ops = view.marked(push.VMROps(PexipPlatform, &got, reconcile.PushVMR(o)), res, push.KindVMR, o.Name, o.Description, m)
		for _, al := range got.Aliases {
			if slices.Contains(o.Aliases, al) {
				a.objs = append(a.objs, state.PlatformObject{Platform: PexipPlatform, Resource: string(pexip.ConferenceAliases),
					Key: al, RemoteID: int64(ids[string(pexip.ConferenceAliases)+"\x00"+al]), ParentKey: o.Name})
			}
		}
	case *account.Device:
		got, ok := view.devices[o.Alias]
		res, a.Kind, a.Key = pexip.Devices, push.KindDevice, o.Alias
		if !ok {
			return a, false
		}
		// The platform's password is unknown: it is sent, so the device logs in with roster's.
		a.ops = view.marked(push.DeviceOps(PexipPlatform, &got, reconcile.PushDevice(o)), res, push.KindDevice, o.Alias, o.Description, m)
	case *account.User:
		got, ok := view.users[o.Email]
		res, a.Kind, a.Key = pexip.EndUsers, push.KindUser, o.Email
		if !ok {
			return a, false
		}
		a.ops = push.UserOps(PexipPlatform, &got, reconcile.PushUser(o))
	default:
		return a, false
	}
	if owned[string(res)+"\x00"+a.Key] {
		return a, false
	}
	a.ID = ids[string(res)+"\x00"+a.Key]
	if inst, ok := view.theirs[string(res)+"\x00"+a.Key]; ok {
		a.ops, a.objs, a.Fields = nil, nil, nil
		a.Conflict = fmt.Sprintf("carries the marker of another roster installation (%s)", inst)
		return a, true
	}
	a.Fields = opFields(a.ops)
	a.objs = append(a.objs, state.PlatformObject{Platform: PexipPlatform, Resource: string(res), Key: a.Key, RemoteID: int64(a.ID)})
	return a, true
}

// aliasHolders maps every conference alias on the platform to its conference's name.
func aliasHolders(view *platformView) map[string]string {
	out := map[string]string{}
	for name, v := range view.vmrs {
		for _, a := range v.Aliases {
			out[a] = name
		}
	}
	return out
}

// aliasConflicts lists the aliases of roster's VMR v that another conference holds on
// the platform, one roster neither owns, marked nor would own (rosters: an alias moving
// between two of roster's rooms is no conflict): roster leaves them there, and the push
// of the alias reports the conflict.
func aliasConflicts(v *account.VMR, view *platformView, held map[string]string, ids map[string]int, owned, rosters map[string]bool) []Adoption {
	var out []Adoption
	for _, al := range v.Aliases {
		holder, ok := held[al]
		conf := string(pexip.Conferences) + "\x00" + holder
		if !ok || rosters[holder] || owned[string(pexip.ConferenceAliases)+"\x00"+al] || owned[conf] || view.ours[conf] {
			continue
		}
		out = append(out, Adoption{Kind: "alias", Key: al, ID: ids[string(pexip.ConferenceAliases)+"\x00"+al],
			Conflict: fmt.Sprintf("belongs to conference %q, not to %q", holder, v.Name)})
	}
	return out
}

// marked is ops with roster's marker added (markOp) unless the platform's object key of
// res already carries it.
func (v *platformView) marked(ops []state.PlatformOp, res pexip.Resource, kind, key, description string, m pexip.Marker) []state.PlatformOp {
	if v.ours[string(res)+"\x00"+key] {
		return ops
	}
	return markOp(ops, res, kind, key, description, m)
}

// markOp makes sure the object's patch sends its description, which carries the marker.
func markOp(ops []state.PlatformOp, res pexip.Resource, kind, key, description string, m pexip.Marker) []state.PlatformOp {
	for i, op := range ops {
		if op.Resource == string(res) && op.Op == state.OpPatch {
			var p map[string]any
			_ = json.Unmarshal([]byte(op.Payload), &p)
			p["description"] = description
			b, _ := json.Marshal(p)
			ops[i].Payload = string(b)
			return ops
		}
	}
	b, _ := json.Marshal(map[string]any{"description": description})
	patch := state.PlatformOp{Platform: PexipPlatform, Op: state.OpPatch, Resource: string(res), ObjectKey: key,
		Kind: kind, OwnerKey: key, Payload: string(b)}
	return append([]state.PlatformOp{patch}, ops...)
}

// listIDs maps resource + "\x00" + unique value to the object's id on the platform.
func listIDs(ctx context.Context, c *pexip.Client) (map[string]int, error) {
	out := map[string]int{}
	for res, field := range map[pexip.Resource]string{pexip.Conferences: "name", pexip.ConferenceAliases: "alias",
		pexip.Devices: "alias", pexip.EndUsers: "primary_email_address"} {
		err := c.List(ctx, res, nil, func(raw json.RawMessage) error {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			key, _ := m[field].(string)
			id, _ := m["id"].(float64)
			out[string(res)+"\x00"+key] = int(id)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
