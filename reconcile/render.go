package reconcile

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/schema/pattern"
)

// Inputs are what one reconcile renders from.
type Inputs struct {
	Config *schema.Config
	Repo   *schema.Repo
	Commit string
	Env    *pattern.Env
	// Directory returns the directory a template's `source` names; the caller owns and
	// closes it.
	Directory func(name string) (directory.Directory, error)
	Now       time.Time
	// DefaultEmails are the built-in activation, invite and admin_summary emails, used where
	// settings.yaml gives none.
	DefaultEmails map[string]MailSpec
	// Workers renders entries in parallel (default GOMAXPROCS).
	Workers int
	// refs, when set, gives the index of the actual state when Render first needs it (so
	// the caller can load it while the directory search starts); Render then marks each
	// object its entry renders unchanged instead of keeping it (see Engine.Plan). The plan
	// is the same either way.
	refs func() (*refIndex, error)
}

// Render searches the directory for each sync template and renders desired objects. A
// template whose search or patterns fail gets TemplateResult.Err and contributes nothing;
// the diff then leaves its objects alone (fail closed). Other templates proceed.
func Render(ctx context.Context, in Inputs) (*Desired, error) {
	repo := in.Repo
	d := &Desired{
		Commit: in.Commit, Now: in.Now, Settings: repo.Settings, Reminders: repo.Reminders,
		Invites: repo.Invites, Mail: map[string]*TemplateMail{},
		UserLimit: repo.Settings.LifetimeUserLimit, PaidLicenses: repo.Settings.Licenses.Paid,
		InviteTTL: repo.Settings.InviteTTL.Duration, Keep: map[owner]bool{},
	}
	var once sync.Once
	var idx *refIndex
	var idxErr error
	index := func() (*refIndex, error) {
		once.Do(func() {
			if in.refs != nil {
				idx, idxErr = in.refs()
			}
		})
		return idx, idxErr
	}
	if d.InviteTTL <= 0 {
		d.InviteTTL = 336 * time.Hour
	}
	d.Mail = MailFromRepo(repo, in.DefaultEmails)
	for _, g := range repo.TrackingCodes {
		sg := &account.TrackingGroup{Slot: g.Slot, Name: g.Name, InputMode: g.InputMode, Usage: g.Usage, Sort: g.Sort}
		for _, c := range g.Codes {
			sg.Codes = append(sg.Codes, account.TrackingCode{Code: c.Code, Active: c.Active, Default: c.Default})
		}
		d.Tracking = append(d.Tracking, sg)
	}
	declared(d, in)
	var remote UserList
	for _, t := range repo.Templates {
		res := &TemplateResult{Name: t.Name}
		d.Templates = append(d.Templates, res)
		out, err := renderTemplate(ctx, in, t, index, d.Tracking)
		if err != nil {
			res.Err = err
			continue
		}
		res.Entries = out.entries
		d.VMRs.appendList(&out.vmrs)
		d.Devices.appendList(&out.devices)
		remote.appendList(&out.users)
		d.Warnings = append(d.Warnings, out.warnings...)
		for k := range out.keep {
			d.Keep[k] = true
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var err error
	if d.refs, err = index(); err != nil {
		return nil, err
	}
	d.Users = mergeUsers(d, &remote, repo.Users)
	return d, nil
}

func isHTML(path string) bool {
	p := strings.ToLower(path)
	return strings.HasSuffix(p, ".html") || strings.HasSuffix(p, ".htm")
}

func mailSpec(repo *schema.Repo, smtp string, e *schema.EmailPattern) *MailSpec {
	if e == nil {
		return nil
	}
	return &MailSpec{SMTPServer: smtp, Subject: e.Subject, Body: repo.EmailBodies[e.BodyFile], BodyPath: e.BodyFile, HTML: isHTML(e.BodyFile)}
}

func templateMail(t *schema.Template, repo *schema.Repo) *TemplateMail {
	m := &TemplateMail{Send: t.Emails.Send, AllowEmailOverride: t.Emails.AllowEmailOverride, NotifyOn: map[string]bool{},
		VMR: mailSpec(repo, t.Emails.SMTPServer, t.Emails.VMR), Device: mailSpec(repo, t.Emails.SMTPServer, t.Emails.Device)}
	for _, f := range t.Emails.NotifyOn {
		m.NotifyOn[f] = true
	}
	return m
}

// MailFromRepo is how every object's owner is emailed, from the repo: per sync template
// (by name), per declared object ("manual\x00" + key), and the org-wide activation, invite
// and admin_summary emails (from settings.yaml, else the built-in defaults; their spec sits
// in the VMR slot).
func MailFromRepo(repo *schema.Repo, defaults map[string]MailSpec) map[string]*TemplateMail {
	m := map[string]*TemplateMail{}
	for _, t := range repo.Templates {
		m[t.Name] = templateMail(t, repo)
	}
	for _, v := range repo.VMRs {
		if v.Emails != nil && v.Emails.Email != nil {
			m[mailKey(account.ManualTag, v.Name)] = &TemplateMail{Send: v.Emails.Send, VMR: mailSpec(repo, v.Emails.SMTPServer, v.Emails.Email)}
		}
	}
	for _, v := range repo.Devices {
		if v.Emails != nil && v.Emails.Email != nil {
			m[mailKey(account.ManualTag, v.Alias)] = &TemplateMail{Send: v.Emails.Send, Device: mailSpec(repo, v.Emails.SMTPServer, v.Emails.Email)}
		}
	}
	se := repo.Settings.Emails
	for name, e := range map[string]*schema.EmailPattern{"activation": se.Activation, "invite": se.Invite, "admin_summary": se.AdminSummary, "sync_error": nil} {
		spec := mailSpec(repo, se.SMTPServer, e)
		if spec == nil {
			if def, ok := defaults[name]; ok {
				def.SMTPServer = se.SMTPServer
				spec = &def
			}
		}
		if spec != nil {
			m[name] = &TemplateMail{Send: true, VMR: spec}
		}
	}
	return m
}

// declared adds the VMRs and devices declared by hand (sync tag "manual").
func declared(d *Desired, in Inputs) {
	repo := in.Repo
	for _, v := range repo.VMRs {
		dv := &DesiredVMR{VMR: v.VMR}
		dv.SyncTag = account.ManualTag
		// Declared values are literal, but the same limits hold as for rendered ones.
		if msg := invalidRendered(&entryOutput{vmr: dv}); msg != "" {
			d.Warnings = append(d.Warnings, Warning{Code: "invalid", Key: v.Name, Template: account.ManualTag,
				Message: fmt.Sprintf("%s:%d: %s; left unchanged", v.Pos.Path, v.Pos.Line, msg)})
			d.Keep[ownerKey(account.ManualTag, "", v.Name)] = true
			continue
		}
		d.VMRs.Add(dv)
	}
	for _, v := range repo.Devices {
		dd := &DesiredDevice{Device: v.Device}
		dd.SyncTag = account.ManualTag
		if msg := invalidRendered(&entryOutput{device: dd}); msg != "" {
			d.Warnings = append(d.Warnings, Warning{Code: "invalid", Key: v.Alias, Template: account.ManualTag,
				Message: fmt.Sprintf("%s:%d: %s; left unchanged", v.Pos.Path, v.Pos.Line, msg)})
			d.Keep[ownerKey(account.ManualTag, "", v.Alias)] = true
			continue
		}
		d.Devices.Add(dd)
	}
}

func mailKey(syncTag, key string) string { return syncTag + "\x00" + key }

// mailFor finds how an object's owner is emailed: per object (declared), else per template.
func (d *Desired) mailFor(syncTag, key string) *TemplateMail {
	if m := d.Mail[mailKey(syncTag, key)]; m != nil {
		return m
	}
	return d.Mail[syncTag]
}

// compiled holds a template's patterns, compiled once per reconcile.
type compiled struct {
	t                                                  *schema.Template
	vName, vDesc, vPIN, vGuestPIN, vTag, vOwner        *pattern.Template
	vAliases                                           []*pattern.Template
	dAlias, dDesc, dUser, dPass, dTag, dOwner          *pattern.Template
	uFirst, uLast, uEmail, uLang, uTZ, uHost, uLicense *pattern.Template
	uTracking                                          [10]*pattern.Template
	hasTracking                                        bool
	vmrOverridable, devOverridable                     map[string]bool
	tracking                                           []*account.TrackingGroup
}

var identRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_-]*`)
var tagRE = regexp.MustCompile(`\{\{.*?\}\}|\{%.*?%\}`)

// attributesOf lists the directory attributes a set of patterns may read: every name
// inside {{ }} and {% %}. Extra names (filters, keywords) cost nothing; a missing one
// would render empty, so the list errs on the side of more.
func attributesOf(srcs []string, extra ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		n = strings.TrimSuffix(n, "_list")
		if n != "" && !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			out = append(out, n)
		}
	}
	for _, s := range srcs {
		for _, tag := range tagRE.FindAllString(s, -1) {
			for _, id := range identRE.FindAllString(tag, -1) {
				add(id)
			}
		}
	}
	for _, e := range extra {
		add(e)
	}
	sort.Strings(out)
	return out
}

func compileTemplate(env *pattern.Env, t *schema.Template) (*compiled, []string, error) {
	c := &compiled{t: t, vmrOverridable: map[string]bool{}, devOverridable: map[string]bool{}}
	var srcs []string
	var firstErr error
	comp := func(field, src string) *pattern.Template {
		srcs = append(srcs, src)
		p, err := env.Compile(t.Name+"."+field, src)
		if err != nil && firstErr == nil {
			pos := t.FieldPos[field]
			firstErr = fmt.Errorf("%s: pattern %s: %w", pos.Path, field, err)
		}
		return p
	}
	if t.SyncVMRs && t.VMR != nil {
		v := t.VMR
		c.vName, c.vDesc = comp("vmr.name", v.Name), comp("vmr.description", v.Description)
		c.vPIN, c.vGuestPIN = comp("vmr.pin", v.PIN), comp("vmr.guest_pin", v.GuestPIN)
		c.vTag, c.vOwner = comp("vmr.tag", v.Tag), comp("vmr.primary_owner_email_address", v.PrimaryOwnerEmailAddress)
		for i, a := range v.Aliases {
			c.vAliases = append(c.vAliases, comp(fmt.Sprintf("vmr.aliases[%d]", i), a))
		}
		for _, f := range v.Overridable {
			c.vmrOverridable[f] = true
		}
	}
	if t.SyncDevices && t.Device != nil {
		v := t.Device
		c.dAlias, c.dDesc = comp("device.alias", v.Alias), comp("device.description", v.Description)
		c.dUser, c.dPass = comp("device.username", v.Username), comp("device.password", v.Password)
		c.dTag, c.dOwner = comp("device.tag", v.Tag), comp("device.primary_owner_email_address", v.PrimaryOwnerEmailAddress)
		for _, f := range v.Overridable {
			c.devOverridable[f] = true
		}
	}
	if t.SyncUsers && t.User != nil {
		u := t.User
		c.uFirst, c.uLast, c.uEmail = comp("user.first_name", u.FirstName), comp("user.last_name", u.LastName), comp("user.email", u.Email)
		c.uLang, c.uTZ = comp("user.language", u.Language), comp("user.time_zone", u.TimeZone)
		c.uHost, c.uLicense = comp("user.host_privilege", u.HostPrivilege), comp("user.license", u.License)
		for slot, src := range u.Tracking {
			if i := account.SlotIndex(slot); i < 10 {
				c.uTracking[i] = comp("user.tracking."+slot, src)
				c.hasTracking = true
			}
		}
	}
	return c, srcs, firstErr
}

type templateOutput struct {
	entries  int
	vmrs     VMRList
	devices  DeviceList
	users    UserList
	warnings []Warning
	keep     map[owner]bool
}

// entryOutput is what one entry renders to.
type entryOutput struct {
	vmr    *DesiredVMR
	device *DesiredDevice
	user   *DesiredUser
	// The actual objects this entry renders unchanged, instead of vmr, device, user: their
	// position in the refIndex plus one (0: none).
	sameVMR, sameDevice, sameUser int32
	warn                          *Warning
	keep                          []owner // owner keys whose objects must stay untouched (the entry failed to render)
}

func renderTemplate(ctx context.Context, in Inputs, t *schema.Template, index func() (*refIndex, error), tracking []*account.TrackingGroup) (*templateOutput, error) {
	c, srcs, err := compileTemplate(in.Env, t)
	if err != nil {
		return nil, err
	}
	c.tracking = tracking
	dir, err := in.Directory(t.Source)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", t.Source, err)
	}
	req := directory.Request{SearchDN: t.UserSearchDN, Filter: t.UserFilter, DisabledFilter: t.DisabledFilter,
		KeyAttribute: t.KeyAttribute, Attributes: attributesOf(srcs, t.KeyAttribute)}
	workers := in.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := &templateOutput{keep: map[owner]bool{}}
	// A pipeline: the directory fills batches while one goroutine renders them in order,
	// so decoding directory responses and rendering overlap on the two cores, and the
	// search runs ahead (up to queued batches) while the state is still loading.
	const chunk, queued = 2048, 8
	collect := func(idx *refIndex, batch []directory.Entry, results []entryOutput) {
		for i := range batch {
			r := &results[i]
			if r.sameVMR != 0 {
				idx.markVMR(r.sameVMR - 1)
			}
			if r.sameDevice != 0 {
				idx.markDevice(r.sameDevice - 1)
			}
			if r.sameUser != 0 {
				idx.markUser(r.sameUser - 1)
			}
			if r.vmr != nil {
				out.vmrs.Add(r.vmr)
			}
			if r.device != nil {
				out.devices.Add(r.device)
			}
			if r.user != nil {
				out.users.Add(r.user)
			}
			if r.warn != nil {
				out.warnings = append(out.warnings, *r.warn)
			}
			for _, k := range r.keep {
				out.keep[k] = true
			}
			results[i] = entryOutput{}
		}
	}
	jobs := make(chan []directory.Entry, queued)
	free := make(chan []directory.Entry, queued+2)
	done := make(chan struct{})
	var renderErr error // written by the renderer, read after done
	var failed atomic.Bool
	go func() {
		defer close(done)
		results := make([]entryOutput, chunk)
		for b := range jobs {
			if renderErr == nil {
				if idx, err := index(); err != nil {
					renderErr = err
					failed.Store(true)
				} else {
					renderBatch(in, c, idx, b, results[:len(b)], workers)
					collect(idx, b, results[:len(b)])
				}
			}
			clear(b)
			select {
			case free <- b[:0]:
			default:
			}
		}
	}()
	newBatch := func() []directory.Entry {
		select {
		case b := <-free:
			return b
		default:
			return make([]directory.Entry, 0, chunk)
		}
	}
	batch := newBatch()
	err = dir.Search(ctx, req, func(e directory.Entry) error {
		out.entries++
		batch = append(batch, e)
		if len(batch) == chunk {
			jobs <- batch
			batch = newBatch()
		}
		if failed.Load() {
			return errors.New("rendering stopped")
		}
		return ctx.Err()
	})
	if err == nil && len(batch) > 0 {
		jobs <- batch
	}
	close(jobs)
	<-done
	if renderErr != nil {
		err = renderErr
	}
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", t.Source, err)
	}
	return out, nil
}

// renderBatch renders entries into results (same index) on several goroutines.
func renderBatch(in Inputs, c *compiled, idx *refIndex, entries []directory.Entry, results []entryOutput, workers int) {
	if workers <= 1 || len(entries) < 64 {
		for i := range entries {
			results[i] = renderEntry(in, c, idx, &entries[i])
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(entries) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, len(entries))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				results[i] = renderEntry(in, c, idx, &entries[i])
			}
		}()
	}
	wg.Wait()
}

// renderer renders one entry's fields, remembering the first error.
type renderer struct {
	attrs map[string][]string
	extra pattern.Vars
	seed  pattern.Seed
	err   error
	at    string
}

func (r *renderer) s(field string, p *pattern.Template) string {
	if p == nil || r.err != nil {
		return ""
	}
	r.seed.Field = field
	out, err := p.RenderAttrsWith(r.attrs, r.extra, r.seed)
	if err != nil {
		r.err, r.at = err, field
		return ""
	}
	return strings.TrimSpace(out)
}

func renderEntry(in Inputs, c *compiled, idx *refIndex, e *directory.Entry) entryOutput {
	t := c.t
	r := &renderer{attrs: e.Attrs, extra: pattern.Vars{"dn": e.DN}, seed: pattern.Seed{Template: t.Name, EntryKey: e.Key}}
	var out entryOutput
	if c.vName != nil {
		v := t.VMR
		dv := &DesiredVMR{VMR: account.VMR{
			Name: r.s("vmr.name", c.vName), Description: r.s("vmr.description", c.vDesc),
			PIN: r.s("vmr.pin", c.vPIN), GuestPIN: r.s("vmr.guest_pin", c.vGuestPIN),
			AllowGuests: v.AllowGuests, MaxCallrateIn: v.MaxCallrateIn, MaxCallrateOut: v.MaxCallrateOut,
			ParticipantLimit: v.ParticipantLimit, Tag: r.s("vmr.tag", c.vTag),
			OwnerEmail: r.s("vmr.primary_owner_email_address", c.vOwner), SyncTag: t.Name, EntryKey: e.Key,
		}, Overridable: c.vmrOverridable}
		seen := map[string]bool{}
		for i, p := range c.vAliases {
			a := r.s(fmt.Sprintf("vmr.aliases[%d]", i), p)
			if a != "" && !seen[a] {
				seen[a] = true
				dv.Aliases = append(dv.Aliases, a)
			}
		}
		if dv.Name != "" {
			dv.Overrides = allowedOverrides(in.Repo.Overrides.VMRs[dv.Name], c.vmrOverridable, t.Emails.AllowEmailOverride)
			out.vmr = dv
		}
	}
	if c.dAlias != nil && (!e.Disabled || t.Device.SyncIfAccountDisabled) {
		dd := &DesiredDevice{Device: account.Device{
			Alias: r.s("device.alias", c.dAlias), Description: r.s("device.description", c.dDesc),
			Username: r.s("device.username", c.dUser), Password: r.s("device.password", c.dPass),
			Tag: r.s("device.tag", c.dTag), OwnerEmail: r.s("device.primary_owner_email_address", c.dOwner),
			SyncTag: t.Name, EntryKey: e.Key,
		}, Overridable: c.devOverridable}
		if dd.Alias != "" {
			dd.Overrides = allowedOverrides(in.Repo.Overrides.Devices[dd.Alias], c.devOverridable, t.Emails.AllowEmailOverride)
			out.device = dd
		}
	}
	if c.uEmail != nil {
		u := &DesiredUser{User: account.User{
			FirstName: r.s("user.first_name", c.uFirst), LastName: r.s("user.last_name", c.uLast),
			Email: strings.ToLower(r.s("user.email", c.uEmail)), Language: r.s("user.language", c.uLang),
			TimeZone: r.s("user.time_zone", c.uTZ), HostPrivilege: strings.ToUpper(r.s("user.host_privilege", c.uHost)),
			License: strings.ToLower(r.s("user.license", c.uLicense)), Active: !e.Disabled, Origin: "remote",
			SyncTag: t.Name, EntryKey: e.Key,
		}, Disabled: e.Disabled}
		if c.hasTracking {
			var tr [10]string
			for i, p := range c.uTracking {
				if p != nil {
					tr[i] = r.s("user.tracking."+trackingSlots[i], p)
				}
			}
			u.Tracking = account.MakeTracking(tr)
		}
		if u.HostPrivilege == "" {
			u.HostPrivilege = "HOST"
		}
		if u.License == "" {
			u.License = "paid"
		}
		if u.Email == "" {
			out.warn = &Warning{Code: "no_email", Key: e.DN, Template: t.Name, Message: "entry has no email address; user not imported"}
		} else {
			out.user = fillTracking(c.tracking, u)
		}
	}
	if r.err == nil {
		if msg := invalidRendered(&out); msg != "" {
			return entryOutput{
				warn: &Warning{Code: "invalid", Key: e.DN, Template: t.Name, Message: msg + "; this entry's objects are left unchanged"},
				keep: []owner{ownerKey(t.Name, e.Key, "")},
			}
		}
		if idx != nil {
			dropUnchanged(&out, idx)
		}
	}
	if r.err != nil {
		// Keep whatever this entry already has: a render error must never delete.
		pos := t.FieldPos[r.at]
		return entryOutput{
			warn: &Warning{Code: "render_error", Key: e.DN, Template: t.Name,
				Message: fmt.Sprintf("%s:%d:%d: pattern %s: %v; this entry's objects are left unchanged", pos.Path, pos.Line, pos.Col, r.at, r.err)},
			keep: []owner{ownerKey(t.Name, e.Key, "")},
		}
	}
	return out
}

// dropUnchanged replaces each rendered object whose digest is its actual counterpart's by
// the counterpart's position: the diff would plan no change for it (see digester). An
// object with overrides.yaml values is always compared in full by the diff.
func dropUnchanged(o *entryOutput, idx *refIndex) {
	if v := o.vmr; v != nil && len(v.Overrides) == 0 {
		if i, ok := idx.vmr(vmrIdent(&v.VMR).owner()); ok && idx.dg.vmr(&v.VMR) == idx.ix.VMRs[i].Digest {
			o.vmr, o.sameVMR = nil, i+1
		}
	}
	if d := o.device; d != nil && !d.Disabled && len(d.Overrides) == 0 {
		if i, ok := idx.device(deviceIdent(&d.Device).owner()); ok && idx.dg.device(&d.Device) == idx.ix.Devices[i].Digest {
			o.device, o.sameDevice = nil, i+1
		}
	}
	if u := o.user; u != nil {
		if i, ok := idx.user(u.Email); ok {
			if ref := &idx.ix.Users[i]; ref.SyncTag() == u.SyncTag && ref.EntryKey() == u.EntryKey && idx.userDigest(u) == ref.Digest {
				o.user, o.sameUser = nil, i+1
			}
		}
	}
}

// userDigest is the digest of the account du would leave (what userUpdate compares).
func (idx *refIndex) userDigest(du *DesiredUser) uint64 {
	u := du.User
	u.Active = du.Active && !du.Disabled
	return idx.dg.user(&u)
}

// allowedOverrides keeps the overrides.yaml fields the template allows (SPEC §5.4).
func allowedOverrides(ov map[string]string, overridable map[string]bool, emailOverride bool) map[string]string {
	if len(ov) == 0 {
		return nil
	}
	out := map[string]string{}
	for f, v := range ov {
		ok := overridable[f] || (f == "primary_owner_email_address" && emailOverride)
		if !ok && (f == "pin" || f == "guest_pin" || f == "allow_guests") {
			ok = overridable["pin_settings"]
		}
		if ok {
			out[f] = v
		}
	}
	return out
}

// mergeUsers makes one account per email: directory ("remote") users win over CSV
// ("local") ones; two directory entries with one email are both skipped with a warning.
func mergeUsers(d *Desired, remote *UserList, local []*schema.UserRow) UserList {
	// Users rendered unchanged take part in the duplicate check by email and entry key.
	sameByEmail := map[string]int32{} // position in d.refs
	if ri := d.refs; ri != nil {
		sameByEmail = make(map[string]int32, ri.sameUsers)
		for i := range ri.ix.Users {
			if ri.sameUser[i] {
				sameByEmail[ri.ix.Users[i].Email()] = int32(i)
			}
		}
	}
	// first is where each email's first directory entry is in remote; more holds the
	// entries after the first, for the few emails that have several. No per-user slice
	// or list: a first apply merges 400,000 users here while holding all of them.
	first := make(map[string]int32, remote.Len())
	var more map[string][]*DesiredUser
	for i := range remote.Len() {
		email := remote.Key(i)
		if _, ok := first[email]; !ok {
			first[email] = int32(i)
			continue
		}
		if more == nil {
			more = map[string][]*DesiredUser{}
		}
		more[email] = append(more[email], remote.At(i))
	}
	var out UserList
	for i := range remote.Len() {
		email := remote.Key(i)
		if first[email] != int32(i) {
			continue
		}
		u := remote.At(i)
		// us is the email's entries in order; an unchanged user's entry stands first, so
		// a changed entry with its email but another key is a duplicate.
		head, rest, isPhantom := u, more[email], false
		if j, ok := sameByEmail[email]; ok {
			s := &d.refs.ix.Users[j]
			head = &DesiredUser{User: account.User{Email: email, SyncTag: s.SyncTag(), EntryKey: s.EntryKey()}}
			rest, isPhantom = append([]*DesiredUser{u}, rest...), true
		}
		var distinct []*DesiredUser
		for _, v := range rest {
			if v.EntryKey != head.EntryKey {
				if distinct == nil {
					distinct = []*DesiredUser{head}
				}
				distinct = append(distinct, v)
			}
		}
		if len(distinct) > 1 {
			keys := make([]string, len(distinct))
			for i, u := range distinct {
				keys[i] = u.SyncTag + ":" + u.EntryKey
			}
			d.Warnings = append(d.Warnings, Warning{Code: "duplicate_email", Key: email, Template: distinct[0].SyncTag,
				Message: fmt.Sprintf("directory entries %s share this email; both skipped (accounts are unique by email)", strings.Join(keys, " and "))})
			d.Keep[userOwner(email)] = true
			if j, ok := sameByEmail[email]; ok {
				// Not unchanged after all: kept as it is, like any ambiguous account.
				d.refs.unmarkUser(j)
			}
			continue
		}
		if !isPhantom {
			out.Add(head) // tracking defaults were filled at render
		}
	}
	// An email taken by a directory entry, changed or unchanged, is the directory's.
	taken := func(email string) bool {
		_, remote := first[email]
		_, same := sameByEmail[email]
		return remote || same
	}
	for _, row := range local {
		email := strings.ToLower(row.Email)
		if taken(email) {
			continue // the directory's values win; the account becomes remote
		}
		u := &DesiredUser{User: account.User{Email: email, FirstName: row.FirstName, LastName: row.LastName,
			Language: row.Language, HostPrivilege: row.HostPrivilege, TimeZone: row.TimeZone, Tracking: account.MakeTracking(row.Tracking),
			Active: row.Active, Origin: "local", License: "paid"}, CSV: &CSVRow{Pos: row.Pos, GivenUserID: row.UserID}}
		if u.HostPrivilege == "" {
			u.HostPrivilege = "HOST"
		}
		u = fillTracking(d.Tracking, u)
		// A row that is exactly its local account is only marked unchanged, as unchanged
		// directory entries are (a 200,000-row CSV holds no second copy of its users).
		if ri := d.refs; ri != nil {
			if i, ok := ri.user(email); ok {
				if old := &ri.ix.Users[i]; old.Local && (u.givenUserID() == "" || strings.EqualFold(u.givenUserID(), old.UserID())) &&
					ri.userDigest(u) == old.Digest {
					ri.markUser(i)
					continue
				}
			}
		}
		out.Add(u)
	}
	return out
}

// fillTracking gives an absent optional dropdown value the group's default code.
func fillTracking(groups []*account.TrackingGroup, u *DesiredUser) *DesiredUser {
	var tr [10]string
	unpacked, filled := false, false
	for _, g := range groups {
		i := account.SlotIndex(g.Slot)
		if i >= 10 || g.InputMode != "dropdown" || g.Usage == "not_used" {
			continue
		}
		if !unpacked {
			tr, unpacked = u.Tracking.Values(), true
		}
		if tr[i] != "" {
			continue
		}
		for _, c := range g.Codes {
			if c.Default && c.Active {
				tr[i], filled = c.Code, true
			}
		}
	}
	if filled {
		u.Tracking = account.MakeTracking(tr)
	}
	return u
}

// Pexip and WebEx limits that only rendered values can be checked against.
const (
	maxNameLen  = 250
	maxAliases  = 8
	maxUserName = 32
	maxEmailLen = 192
)

// hasControl reports a control character (CR, LF, …): directory values carrying them
// would otherwise reach one-line fields, plan lines and email subjects.
func hasControl(fields ...string) bool {
	for _, f := range fields {
		if strings.ContainsFunc(f, unicode.IsControl) {
			return true
		}
	}
	return false
}

// invalidRendered checks one entry's rendered objects against the platform's limits.
func invalidRendered(o *entryOutput) string {
	if v := o.vmr; v != nil {
		switch {
		case hasControl(v.Name, v.Description, v.Tag, v.OwnerEmail):
			return fmt.Sprintf("VMR %q: name, description, tag or owner email contains a control character (line break?)", v.Name)
		case utf8.RuneCountInString(v.Name) > maxNameLen:
			return fmt.Sprintf("VMR name %.40q… is longer than %d characters", v.Name, maxNameLen)
		case utf8.RuneCountInString(v.Description) > maxNameLen:
			return fmt.Sprintf("VMR description of %q is longer than %d characters", v.Name, maxNameLen)
		case len(v.Aliases) > maxAliases:
			return fmt.Sprintf("VMR %q has %d aliases; Pexip allows %d", v.Name, len(v.Aliases), maxAliases)
		}
		for _, a := range v.Aliases {
			if utf8.RuneCountInString(a) > maxNameLen || strings.ContainsAny(a, " \t\r\n") || hasControl(a) {
				return fmt.Sprintf("VMR %q alias %q is longer than %d characters or contains white space or a control character", v.Name, a, maxNameLen)
			}
		}
	}
	if d := o.device; d != nil && (utf8.RuneCountInString(d.Alias) > maxNameLen || strings.ContainsAny(d.Alias, " \t\r\n") || hasControl(d.Alias)) {
		return fmt.Sprintf("device alias %q is longer than %d characters or contains white space", d.Alias, maxNameLen)
	}
	if d := o.device; d != nil && hasControl(d.Description, d.Username, d.Tag, d.OwnerEmail) {
		return fmt.Sprintf("device %q: description, username, tag or owner email contains a control character (line break?)", d.Alias)
	}
	if u := o.user; u != nil {
		switch {
		case hasControl(u.FirstName, u.LastName):
			return fmt.Sprintf("user %q: first or last name contains a control character (line break?)", u.Email)
		case len(u.Email) > maxEmailLen || !schema.ValidEmail(u.Email):
			return fmt.Sprintf("user email %q is not a valid address of at most %d characters", u.Email, maxEmailLen)
		case utf8.RuneCountInString(u.FirstName) > maxUserName || utf8.RuneCountInString(u.LastName) > maxUserName:
			return fmt.Sprintf("user %s: first and last names must be at most %d characters", u.Email, maxUserName)
		case !schema.IsLanguage(u.Language) && u.Language != "":
			return fmt.Sprintf("user %s: language %q is not a WebEx LANGUAGE value", u.Email, u.Language)
		case !schema.IsTimeZone(u.TimeZone) && u.TimeZone != "":
			return fmt.Sprintf("user %s: time zone %q is not a WebEx TIMEZONE value", u.Email, u.TimeZone)
		case u.HostPrivilege != "HOST" && u.HostPrivilege != "ADMN":
			return fmt.Sprintf("user %s: host privilege %q must be HOST or ADMN", u.Email, u.HostPrivilege)
		case u.License != "paid" && u.License != "free":
			return fmt.Sprintf("user %s: license %q must be paid or free", u.Email, u.License)
		}
	}
	return ""
}
