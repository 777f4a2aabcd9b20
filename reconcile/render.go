package reconcile

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// Workers renders entries in parallel (default GOMAXPROCS, or SetParallelism's cap).
	Workers int
	// refs, when set, gives the index of the actual state when Render first needs it (so
	// the caller can load it while the directory search starts); Render then marks each
	// object its entry renders unchanged instead of keeping it (see Engine.Plan). The plan
	// is the same either way.
	refs func() (*refIndex, error)
	// sync, when set, reads the templates it holds incrementally (sync.go).
	sync *syncPlan
	// cache, when set, skips the entries it holds settled and records the others
	// (rendercache.go).
	cache *renderCache
	// ahead, when set, lets the cache skip entries while the index is still loading
	// (rendercache_ahead.go).
	ahead *indexAhead
}

// Render searches the directory for each sync template and renders desired objects. A
// template whose search or patterns fail gets TemplateResult.Err and contributes nothing;
// the diff then leaves its objects alone (fail closed). Other templates proceed.
func Render(ctx context.Context, in Inputs) (*Desired, error) {
	repo := in.Repo
	d := &Desired{
		Commit: in.Commit, Now: in.Now, Settings: repo.Settings, Reminders: repo.Reminders,
		Announcements: repo.Announcements, UserRows: repo.Users,
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
		if errors.Is(err, errAheadMiss) {
			return nil, err // the caller plans again
		}
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
	if err := in.cache.checkAbsent(&remote); err != nil {
		return nil, err
	}
	d.Users = mergeUsers(d, &remote, repo.Users)
	return d, nil
}

// compiled holds a template's patterns, compiled once per reconcile.
type compiled struct {
	t                                                  *schema.Template
	vmr, device                                        []*pattern.Template // by field of account.VMRFields, DeviceFields (patternField)
	vAliases                                           []*pattern.Template
	vAliasNames                                        []string // "vmr.aliases[0]", … (render errors' field names)
	uFirst, uLast, uEmail, uLang, uTZ, uHost, uLicense *pattern.Template
	uTracking                                          [10]*pattern.Template
	hasTracking                                        bool
	vmrOverridable, devOverridable                     map[string]bool
	tracking                                           []*account.TrackingGroup
}

var identRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_-]*`)
var tagRE = regexp.MustCompile(`\{\{.*?\}\}|\{%.*?%\}`)
var quotedRE = regexp.MustCompile(`'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"`)

// attributesOf lists the directory attributes a set of patterns may read: every name
// inside {{ }} and {% %}, but inside quoted strings ('Staff member' is no attribute).
// Extra names (filters, keywords) cost little; a missing one would render empty, so the
// list errs on the side of more.
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
			for _, id := range identRE.FindAllString(quotedRE.ReplaceAllString(tag, " "), -1) {
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

// patternField says whether a field of a template's VMR or device is a pattern: its
// strings but the ownership fields, which render sets.
func patternField[T any](f *account.Field[T]) bool { return f.Type == account.String && !f.Owned }

// patternNames are the names render errors give the fields: "vmr.name", …
func patternNames[T any](prefix string, fields []account.Field[T]) []string {
	names := make([]string, len(fields))
	for i := range fields {
		names[i] = prefix + fields[i].Name
	}
	return names
}

var (
	trackingPatternNames = func() (f [10]string) {
		for i, slot := range trackingSlots {
			f[i] = "user.tracking." + slot
		}
		return f
	}()
	vmrPatternNames    = patternNames("vmr.", account.VMRFields)
	devicePatternNames = patternNames("device.", account.DeviceFields)
)

// compileFields compiles the pattern fields of src, whose strings are pattern sources.
func compileFields[T any](comp func(field, src string) *pattern.Template, names []string, fields []account.Field[T], src *T) []*pattern.Template {
	ps := make([]*pattern.Template, len(fields))
	for i := range fields {
		if f := &fields[i]; patternField(f) {
			ps[i] = comp(names[i], *f.Str(src))
		}
	}
	return ps
}

// renderFields renders the pattern fields of x.
func renderFields[T any](r *renderer, names []string, fields []account.Field[T], ps []*pattern.Template, x *T) {
	for i := range fields {
		if f := &fields[i]; patternField(f) {
			*f.Str(x) = r.s(names[i], ps[i])
		}
	}
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
		c.vmr = compileFields(comp, vmrPatternNames, account.VMRFields, &v.VMR)
		for i, a := range v.Aliases {
			name := fmt.Sprintf("vmr.aliases[%d]", i)
			c.vAliases, c.vAliasNames = append(c.vAliases, comp(name, a)), append(c.vAliasNames, name)
		}
		for _, f := range v.Overridable {
			c.vmrOverridable[f] = true
		}
	}
	if t.SyncDevices && t.Device != nil {
		v := t.Device
		c.device = compileFields(comp, devicePatternNames, account.DeviceFields, &v.Device)
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
				c.uTracking[i] = comp(trackingPatternNames[i], src)
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
	cached                        bool    // from the render cache, not rendered (rendercache.go)
	absent                        string  // cached: the email of its disabled user, who has no account
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
	req := templateRequest(t, attributesOf(srcs, t.KeyAttribute))
	search, sr, err := in.sync.search(t, dir, &req)
	if err != nil {
		return nil, err
	}
	workers := in.Workers
	if workers <= 0 {
		workers = parallelism()
	}
	out := &templateOutput{keep: map[owner]bool{}}
	tc := in.cache.forTemplate(t, sr)
	// A pipeline: the directory fills batches while one goroutine renders them in order,
	// so decoding directory responses and rendering overlap on the two cores, and the
	// search runs ahead (up to queued batches) while the state is still loading.
	const chunk, queued = 2048, 8
	collect := func(idx *refIndex, batch []directory.Entry, results []entryOutput, hashes []uint64) {
		for i := range batch {
			r := &results[i]
			tc.record(idx, &batch[i], hashes[i], r)
			if r.absent != "" {
				tc.rec.absent = append(tc.rec.absent, r.absent)
			}
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
			if sr != nil {
				sr.record(in.sync, idx, &batch[i], r)
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
	ahead := in.ahead
	if sr != nil || tc == nil {
		ahead = nil
	}
	go func() {
		defer close(done)
		results, hashes := make([]entryOutput, chunk), make([]uint64, chunk)
		var marks []aheadMark // by entry of a batch skipped ahead
		var pending aheadMarks
		for b := range jobs {
			if renderErr == nil {
				renderErr = func() error {
					n := len(b)
					if !ahead.loaded() {
						if marks == nil {
							marks = make([]aheadMark, chunk)
						}
						if tc.skipAhead(ahead, b, results[:n], hashes[:n], marks[:n], workers) {
							for i := range b {
								tc.recordAhead(&b[i], hashes[i], marks[i])
							}
							pending.marks = append(pending.marks, marks[:n]...)
							collect(nil, b, results[:n], hashes[:n])
							return nil
						}
					}
					idx, err := index()
					if err != nil {
						return err
					}
					if err := tc.resolve(idx, &pending); err != nil {
						return err
					}
					renderBatch(in, c, idx, tc, b, results[:n], hashes[:n], workers)
					collect(idx, b, results[:n], hashes[:n])
					return nil
				}()
				if renderErr != nil {
					failed.Store(true)
				}
			}
			if sr == nil { // no entry is kept past its batch: their maps serve the next ones
				for i := range b {
					directory.Recycle(&b[i])
				}
			}
			clear(b)
			select {
			case free <- b[:0]:
			default:
			}
		}
		if renderErr == nil && len(pending.marks) > 0 {
			idx, err := index()
			if err == nil {
				err = tc.resolve(idx, &pending)
			}
			renderErr = err
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
	err = search(ctx, func(e directory.Entry) error {
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
	if sr != nil {
		idx, err := index()
		if err == nil && idx != nil {
			err = in.sync.premark(ctx, sr, idx)
		}
		if err != nil {
			return nil, err
		}
		if sr.info.Mode == ReadIncremental {
			out.entries = sr.entryCount()
		}
	}
	return out, nil
}

// renderBatch renders entries into results (same index) on several goroutines, with
// their hashes for the render cache tc (which skips those it holds).
func renderBatch(in Inputs, c *compiled, idx *refIndex, tc *templateCache, entries []directory.Entry, results []entryOutput, hashes []uint64, workers int) {
	if workers <= 1 || len(entries) < 64 {
		var r renderer
		for i := range entries {
			results[i] = tc.render(in, c, idx, &r, &entries[i], &hashes[i])
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
			var r renderer
			for i := lo; i < hi; i++ {
				results[i] = tc.render(in, c, idx, &r, &entries[i], &hashes[i])
			}
		}()
	}
	wg.Wait()
}

// renderer renders one entry's fields, remembering the first error.
type renderer struct {
	// the objects of the entry being rendered (renderEntry copies out those it keeps)
	vmr     DesiredVMR
	aliases []string
	device  DesiredDevice
	user    DesiredUser
	attrs   map[string][]string
	extra   pattern.Vars
	seed    pattern.Seed
	err     error
	at      string
	near    near // the render cache's guesses (rendercache_record.go)
}

// reset readies r for entry e: its attributes, its dn (in a map r keeps: a pattern only
// reads it) and its seed; no error.
func (r *renderer) reset(template string, e *directory.Entry) {
	if r.extra == nil {
		r.extra = pattern.Vars{}
	}
	r.attrs, r.extra["dn"] = e.Attrs, e.DN
	r.seed = pattern.Seed{Template: template, EntryKey: e.Key}
	r.err, r.at = nil, ""
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

// Pexip and WebEx limits that only rendered values can be checked against.
const (
	maxUserName = 32
	maxEmailLen = 192
)
