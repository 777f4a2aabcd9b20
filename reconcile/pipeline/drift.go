package pipeline

// `roster platform check` (SPEC §8): drift between SQLite and Pexip for the objects roster
// owns, and its repair by the next apply.
//
// The check lists every conference, alias, device and end user through the list API (page
// by page) and compares the owned ones with the state: changed (a field differs), missing
// (pushed once, gone from the platform) and extra (carries this roster's marker, but the
// state has no such object). It records what it found in the meta table; the next apply
// turns each finding into its repair — a patch of the differing fields, a create, a
// delete — written to the platform queue in the apply's transaction, before the plan's own
// operations (which are diffs from the state the repair restores), and clears the record.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/jmoiron/sqlx"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/push"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// Drift kinds.
const (
	DriftChanged = "changed"
	DriftMissing = "missing"
	DriftExtra   = "extra"
)

// Drift is one owned object that differs between SQLite and the platform. Got is what the
// platform holds (nil when missing), in roster's terms.
type Drift struct {
	Kind   string       `json:"kind"` // vmr, device, user
	Key    string       `json:"key"`
	Status string       `json:"status"` // changed, missing, extra
	Fields []string     `json:"fields,omitempty"`
	VMR    *push.VMR    `json:"vmr,omitempty"`
	Device *push.Device `json:"device,omitempty"`
	User   *push.User   `json:"user,omitempty"`
}

// driftMeta is the meta key of a platform's recorded drift.
func driftMeta(platform string) string { return "platform_drift:" + platform }

// platformView is what the platform holds, by unique value, in roster's terms.
type platformView struct {
	vmrs    map[string]push.VMR
	devices map[string]push.Device
	users   map[string]push.User
	ours    map[string]bool // resource + "\x00" + key of the objects carrying this roster's marker
	// theirs maps resource + "\x00" + key of the objects carrying another roster's marker
	// to that installation's instance.
	theirs map[string]string
}

// see records in ours the platform's object key of res when its description carries
// roster's marker, in theirs when it carries another installation's.
func (v *platformView) see(m pexip.Marker, res pexip.Resource, key, description string) {
	inst, ok := pexip.Owner(description)
	switch {
	case !ok:
	case inst == m.Instance:
		v.ours[string(res)+"\x00"+key] = true
	default:
		v.theirs[string(res)+"\x00"+key] = inst
	}
}

// readPlatform lists every conference, alias, device and end user, page by page.
func readPlatform(ctx context.Context, c *pexip.Client, m pexip.Marker) (*platformView, error) {
	v := &platformView{vmrs: map[string]push.VMR{}, devices: map[string]push.Device{}, users: map[string]push.User{},
		ours: map[string]bool{}, theirs: map[string]string{}}
	confs, err := pexip.ListAll[pexip.Conference](ctx, c, pexip.Conferences, nil)
	if err != nil {
		return nil, err
	}
	aliases, err := pexip.ListAll[pexip.ConferenceAlias](ctx, c, pexip.ConferenceAliases, nil)
	if err != nil {
		return nil, err
	}
	byURI := map[string][]pexip.ConferenceAlias{}
	for _, a := range aliases {
		byURI[a.Conference] = append(byURI[a.Conference], a)
	}
	for _, cf := range confs {
		cf.Aliases = byURI[pexip.Conferences.URI(cf.ID)]
		v.vmrs[cf.Name] = push.FromConference(cf)
		v.see(m, pexip.Conferences, cf.Name, cf.Description)
	}
	devices, err := pexip.ListAll[pexip.Device](ctx, c, pexip.Devices, nil)
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		v.devices[d.Alias] = push.FromDevice(d, "")
		v.see(m, pexip.Devices, d.Alias, d.Description)
	}
	users, err := pexip.ListAll[pexip.EndUser](ctx, c, pexip.EndUsers, nil)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		v.users[u.PrimaryEmailAddress] = push.FromEndUser(u)
	}
	return v, nil
}

// CheckPlatform is `roster platform check`: the drift of the Pexip platform, recorded for
// the next apply to repair. Objects with operations not yet done are left out (their push
// is under way).
func (p *Pipeline) CheckPlatform(ctx context.Context) ([]Drift, error) {
	d, err := p.Pusher(ctx, nil)
	if err != nil {
		return nil, err
	}
	view, err := readPlatform(ctx, d.Client, d.Marker)
	if err != nil {
		return nil, fmt.Errorf("platform check: %w", err)
	}
	actual, err := d.DB.LoadActual(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := d.DB.PlatformObjects(ctx, PexipPlatform)
	if err != nil {
		return nil, err
	}
	owned := map[string]state.PlatformObject{}
	for _, o := range objs {
		owned[o.Resource+"\x00"+o.Key] = o
	}
	var out []Drift
	settled := func(kind, key string) bool {
		waiting, err2 := d.DB.PlatformWaiting(ctx, kind, key)
		if err2 != nil {
			err = err2
		}
		return !waiting
	}
	inState := map[string]bool{}
	for _, a := range actual.VMRs {
		want := reconcile.PushVMR(a)
		inState[string(pexip.Conferences)+"\x00"+a.Name] = true
		if _, ok := owned[string(pexip.Conferences)+"\x00"+a.Name]; !ok || !settled(push.KindVMR, a.Name) {
			continue
		}
		got, ok := view.vmrs[a.Name]
		switch {
		case !ok:
			out = append(out, Drift{Kind: push.KindVMR, Key: a.Name, Status: DriftMissing})
		default:
			if f := opFields(push.VMROps(PexipPlatform, &got, want)); len(f) > 0 {
				out = append(out, Drift{Kind: push.KindVMR, Key: a.Name, Status: DriftChanged, Fields: f, VMR: &got})
			}
		}
	}
	for _, a := range actual.Devices {
		want := reconcile.PushDevice(a)
		key := string(pexip.Devices) + "\x00" + a.Alias
		inState[key] = true
		obj, ok := owned[key]
		if !ok || !settled(push.KindDevice, a.Alias) {
			continue
		}
		got, ok := view.devices[a.Alias]
		if !ok {
			out = append(out, Drift{Kind: push.KindDevice, Key: a.Alias, Status: DriftMissing})
			continue
		}
		if obj.PasswordDigest == push.PasswordDigest(a.Alias, a.Password) {
			got.Password = a.Password // what roster pushed last: the platform keeps it unseen
		}
		if f := opFields(push.DeviceOps(PexipPlatform, &got, want)); len(f) > 0 {
			out = append(out, Drift{Kind: push.KindDevice, Key: a.Alias, Status: DriftChanged, Fields: f, Device: &got})
		}
	}
	for _, u := range actual.Users {
		if _, ok := owned[string(pexip.EndUsers)+"\x00"+u.Email]; !ok || !settled(push.KindUser, u.Email) {
			continue
		}
		got, ok := view.users[u.Email]
		if !ok {
			out = append(out, Drift{Kind: push.KindUser, Key: u.Email, Status: DriftMissing})
			continue
		}
		if f := opFields(push.UserOps(PexipPlatform, &got, reconcile.PushUser(u))); len(f) > 0 {
			out = append(out, Drift{Kind: push.KindUser, Key: u.Email, Status: DriftChanged, Fields: f, User: &got})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(view.vmrs)) {
		key := string(pexip.Conferences) + "\x00" + name
		if view.ours[key] && !inState[key] && settled(push.KindVMR, name) {
			got := view.vmrs[name]
			out = append(out, Drift{Kind: push.KindVMR, Key: name, Status: DriftExtra, VMR: &got})
		}
	}
	for _, alias := range slices.Sorted(maps.Keys(view.devices)) {
		key := string(pexip.Devices) + "\x00" + alias
		if view.ours[key] && !inState[key] && settled(push.KindDevice, alias) {
			got := view.devices[alias]
			out = append(out, Drift{Kind: push.KindDevice, Key: alias, Status: DriftExtra, Device: &got})
		}
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if err := d.DB.InTx(ctx, func(tx *sqlx.Tx) error { return state.SetMeta(ctx, tx, driftMeta(PexipPlatform), string(b)) }); err != nil {
		return nil, err
	}
	return out, nil
}

// opFields names the fields operations send (a conference's aliases as "aliases").
func opFields(ops []state.PlatformOp) []string {
	var out []string
	for _, op := range ops {
		if op.Resource == string(pexip.ConferenceAliases) {
			if !slices.Contains(out, "aliases") {
				out = append(out, "aliases")
			}
			continue
		}
		var m map[string]any
		_ = json.Unmarshal([]byte(op.Payload), &m)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// repairOps turns the recorded drift into the operations that repair it against the
// state as it is now (before the apply's own changes).
func (p *Pipeline) repairOps(ctx context.Context) ([]state.PlatformOp, error) {
	if len(PushPlatforms(p.Config)) == 0 {
		return nil, nil
	}
	db, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := db.Meta(ctx, driftMeta(PexipPlatform))
	if err != nil || raw == "" || raw == "null" || raw == "[]" {
		return nil, err
	}
	var drift []Drift
	if err := json.Unmarshal([]byte(raw), &drift); err != nil {
		return nil, fmt.Errorf("recorded platform drift: %w", err)
	}
	actual, err := db.LoadActual(ctx)
	if err != nil {
		return nil, err
	}
	vmrs, devices, users := map[string]*push.VMR{}, map[string]*push.Device{}, map[string]*push.User{}
	for _, v := range actual.VMRs {
		vmrs[v.Name] = reconcile.PushVMR(v)
	}
	for _, d := range actual.Devices {
		devices[d.Alias] = reconcile.PushDevice(d)
	}
	for _, u := range actual.Users {
		users[u.Email] = reconcile.PushUser(u)
	}
	var ops []state.PlatformOp
	for _, d := range drift {
		switch d.Kind {
		case push.KindVMR:
			ops = append(ops, push.VMROps(PexipPlatform, d.VMR, vmrs[d.Key])...)
		case push.KindDevice:
			if want := devices[d.Key]; want != nil || d.Device != nil {
				ops = append(ops, push.DeviceOps(PexipPlatform, d.Device, want)...)
			}
		case push.KindUser:
			if want := users[d.Key]; want != nil {
				ops = append(ops, push.UserOps(PexipPlatform, d.User, want)...)
			}
		}
	}
	push.Order(ops)
	return ops, nil
}

// guardRepair holds a drift repair to the deletion limit of config.cue (safety
// max_delete_count), like the plan's own deletions: deleting many objects that carry
// roster's marker but are unknown to the state needs --allow-deletions.
func guardRepair(ops []state.PlatformOp, sf schema.Safety, allow reconcile.Allowances) error {
	deletes := 0
	for _, op := range ops {
		if op.Op == state.OpDelete && op.Resource != string(pexip.ConferenceAliases) {
			deletes++
		}
	}
	if deletes <= sf.MaxDeleteCount || deletes <= allow.Deletions {
		return nil
	}
	return &reconcile.RefusalError{Reasons: []string{fmt.Sprintf(
		"repairing platform drift would delete %d objects on pexip (safety.max_delete_count %d); pass --allow-deletions %d",
		deletes, sf.MaxDeleteCount, deletes)}}
}
