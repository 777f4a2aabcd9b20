package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// FormatVersion is the version of the plan's JSON shape (SPEC §4).
const FormatVersion = 1

// Plan is what a reconcile would do. It is a value: computing it writes nothing.
type Plan struct {
	FormatVersion int     `json:"format_version"`
	Commit        string  `json:"commit"`
	StateVersion  int64   `json:"state_version"`
	Summary       Summary `json:"summary"`
	// changes are the plan's changes but the creations held in created; read them all,
	// in order, with All.
	changes []*Change
	created created
	// emails are the plan's emails, most held as records of creations (planemails.go);
	// read them with AllEmails.
	emails    emailList
	Warnings  []Warning  `json:"warnings"`
	Errors    []Problem  `json:"errors,omitempty"`
	Safety    Safety     `json:"safety"`
	Templates []Template `json:"templates"`
	Licenses  *Licenses  `json:"licenses,omitempty"`
	// Fingerprint is a hash of every change and email with secrets included: a saved plan
	// is applied only if planning again gives the same fingerprint.
	Fingerprint string `json:"fingerprint"`

	loaded int // objects the plan loaded in full (Engine.Plan): what the tests check hydrate by
	cached int // entries the render cache marked unchanged unrendered (rendercache.go)
	late   int // reads of digests the index left out (latedigest.go)

	reminders []string // reminder ids carried out by this plan

	// syncWrites are the cookies and entry ids of the incremental reads (sync.go), written
	// in the apply's transaction; syncReads say how each template was read.
	syncWrites []state.SyncWrite
	syncReads  []SyncRead
	// applied, set on an incremental plan, is called once the plan is committed: own says
	// the state is then the plan's state and its changes alone, at state version (the
	// engine refreshes its cached index instead of reloading it), and the engine's
	// entries of the incremental searches take what the plan wrote (syncentries.go).
	applied func(ctx context.Context, version int64, own bool)

	// Announcements are the announcements this plan sends (announce.go); JSON only when any.
	Announcements []*Announcement `json:"-"`
}

// SyncReads says how each synced template's directory was read (nil when the plan read
// every directory in full, as commands do).
func (p *Plan) SyncReads() []SyncRead { return p.syncReads }

// Licenses is the paid-licence budget after the plan.
type Licenses struct {
	Paid      int `json:"paid"`
	Used      int `json:"used"`
	Remaining int `json:"remaining"`
}

// Summary counts the plan's changes.
type Summary struct {
	Create     int `json:"create"`
	Update     int `json:"update"`
	Delete     int `json:"delete"`
	Deactivate int `json:"deactivate"`
	Reactivate int `json:"reactivate"`
	Unchanged  int `json:"unchanged"`
	Emails     int `json:"emails"`
}

// Change is one object to create, update, delete, deactivate or reactivate.
type Change struct {
	Kind     account.Kind   `json:"kind"`
	Action   account.Action `json:"action"`
	Key      string         `json:"key"`
	Template string         `json:"template"`
	// Fields lists the fields that differ, for the text and markdown formats.
	Fields []FieldChange `json:"-"`
	rank   int           // sort order: kind, then action

	// The objects before and after: what apply writes, and what the output shows as
	// "before" and "after" (built only when written, so a plan of 400,000 changes stays
	// small). newObj is nil for a creation's old side and oldObj nil for a creation; a
	// deletion may carry a newObj (a revoked invitation) that the output does not show.
	// Each holds one of *account.VMR, *account.Device, *account.User, *account.Invite or
	// *account.TrackingGroup: read them with the accessors below (newVMR, oldVMR, …). Two
	// interfaces instead of a pointer pair per kind keep a Change in the 128-byte size
	// class: a first apply holds 1.2 million of them.
	newObj, oldObj any
}

func (c *Change) newVMR() *account.VMR { v, _ := c.newObj.(*account.VMR); return v }
func (c *Change) oldVMR() *account.VMR { v, _ := c.oldObj.(*account.VMR); return v }

func (c *Change) newDevice() *account.Device { v, _ := c.newObj.(*account.Device); return v }
func (c *Change) oldDevice() *account.Device { v, _ := c.oldObj.(*account.Device); return v }

func (c *Change) newUser() *account.User { v, _ := c.newObj.(*account.User); return v }
func (c *Change) oldUser() *account.User { v, _ := c.oldObj.(*account.User); return v }

func (c *Change) newInvite() *account.Invite { v, _ := c.newObj.(*account.Invite); return v }
func (c *Change) oldInvite() *account.Invite { v, _ := c.oldObj.(*account.Invite); return v }

func (c *Change) newGroup() *account.TrackingGroup {
	v, _ := c.newObj.(*account.TrackingGroup)
	return v
}
func (c *Change) oldGroup() *account.TrackingGroup {
	v, _ := c.oldObj.(*account.TrackingGroup)
	return v
}

// before and after are the objects as the plan shows them: before is nil for a
// creation, after nil for a deletion.
func (c *Change) before() []field {
	return fieldsOf(c.oldObj)
}

func (c *Change) after() []field {
	if c.Action == account.ActionDelete {
		return nil
	}
	return fieldsOf(c.newObj)
}

// FieldChange is one field of an update: old → new.
type FieldChange struct {
	Name     string
	Old, New any
}

// Email is an email the plan would enqueue.
type Email struct {
	To       string         `json:"to"`
	Kind     account.Kind   `json:"kind"`   // vmr | device | activation | invite | admin_summary
	Action   account.Action `json:"action"` // created | updated | reminder
	Key      string         `json:"key"`
	Template string         `json:"template,omitempty"`

	mail *MailSpec
	// The variables are made when they are read (Plan.emailVars), not held: a first apply
	// has 1.2 million emails, and a map of variables each took most of its memory. obj is
	// the object they come from (*account.VMR, *account.Device, *account.User or
	// *account.Invite); for a creation's email it is nil and the object is found among
	// the plan's creations: at is a VMR's or device's creation position (created.vmr,
	// created.device), or a user's position in the desired users with seq its USERID.
	obj any
	at  int32
	seq int64
}

// ofCreation makes e's variables come from the plan's creation at (with seq a user's USERID).
func (e *Email) ofCreation(at int32, seq int64) {
	e.obj, e.at, e.seq = nil, at, seq
}

// emailVars appends the variables of e to buf: what its template is rendered with.
func (p *Plan) emailVars(buf []state.Var, e *Email) []state.Var {
	c := &p.created
	switch x := e.obj.(type) {
	case *account.VMR:
		return state.AppendVMRVars(buf, x, string(e.Action))
	case *account.Device:
		return state.AppendDeviceVars(buf, x, string(e.Action))
	case *account.User:
		return state.AppendUserVars(buf, x, string(e.Action))
	case *account.Invite:
		return appendInviteVars(buf, x, e.Action)
	case nil:
		// The creation is decoded into a pooled scratch: the variables hold its strings
		// (in the packed lists, never rewritten) and its list of aliases, which the
		// scratch then lets go; nothing else of it. A first apply reads 1.2 million
		// creations so, twice.
		sc := scratchPool.Get().(*scratch)
		defer scratchPool.Put(sc)
		switch e.Kind {
		case account.KindVMR:
			l, i := listOf(c.vmrs, &c.ownVMRs, e.at)
			l.into(i, &sc.vmr)
			buf = state.AppendVMRVars(buf, &sc.vmr.VMR, string(e.Action))
			sc.vmr.Aliases = nil // aliases_list holds it: the next decode makes its own
			return buf
		case account.KindDevice:
			l, i := listOf(c.devices, &c.ownDevices, e.at)
			l.into(i, &sc.device)
			return state.AppendDeviceVars(buf, &sc.device.Device, string(e.Action))
		case account.KindActivation:
			c.users.into(int(e.at), &sc.user)
			u := &sc.user.User
			u.UserID = strconv.FormatInt(e.seq, 10)
			return state.AppendUserVars(buf, u, string(e.Action))
		}
	}
	panic(fmt.Sprintf("plan: %s email %s %q has no object", e.Kind, e.Action, e.Key))
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Warning is something the operator should see; the object concerned is skipped.
type Warning struct {
	Code     string `json:"code"`
	Key      string `json:"key"`
	Template string `json:"template,omitempty"`
	Message  string `json:"message"`
}

// Problem is an error that stops a template's changes (directory failure, render error)
// or, without Template, the whole plan (a limit crossed).
type Problem struct {
	Template string `json:"template,omitempty"`
	Message  string `json:"message"`
}

// Template is one sync template's part of the plan, for sync status.
type Template struct {
	Name        string `json:"name"`
	Entries     int    `json:"entries"`
	Owned       int    `json:"owned"`
	Created     int    `json:"created"`
	Updated     int    `json:"updated"`
	Deleted     int    `json:"deleted"`
	Deactivated int    `json:"deactivated"`
	Unchanged   int    `json:"unchanged"`
	Warnings    int    `json:"warnings"`
	Error       string `json:"error,omitempty"`
}

// HasChanges reports whether applying the plan would write anything.
func (p *Plan) HasChanges() bool {
	return p.Len() > 0 || p.EmailCount() > 0 || len(p.reminders) > 0 || len(p.Announcements) > 0
}

// finish sorts the plan, counts it and computes its fingerprint.
func (p *Plan) finish() {
	order := map[account.Action]int{account.ActionDelete: 0, account.ActionDeactivate: 1, account.ActionUpdate: 2, account.ActionReactivate: 3, account.ActionCreate: 4}
	kinds := map[account.Kind]int{account.KindTrackingGroup: 0, account.KindVMR: 1, account.KindDevice: 2, account.KindUser: 3, account.KindInvite: 4}
	for i, c := range p.changes {
		c.rank = (kinds[c.Kind]*8+order[c.Action])<<32 | i // the position breaks ties: a total, stable order
		if p.created.group(c.rank>>32) > 0 {
			// segments puts a group's creations in one run; one held as a Change too would
			// be out of key order. The diff records every creation of a kind one way.
			panic(fmt.Sprintf("plan: %s %s %q held as a change beside recorded creations", c.Action, c.Kind, c.Key))
		}
	}
	sortChanges(p.changes)
	p.created.sort()
	s := Summary{Unchanged: p.Summary.Unchanged, Create: p.created.len()}
	for _, c := range p.changes {
		switch c.Action {
		case account.ActionCreate:
			s.Create++
		case account.ActionUpdate:
			s.Update++
		case account.ActionDelete:
			s.Delete++
		case account.ActionDeactivate:
			s.Deactivate++
		case account.ActionReactivate:
			s.Reactivate++
		}
	}
	s.Emails = p.EmailCount() + p.announcementEmails()
	p.Summary = s
	if p.Warnings == nil {
		p.Warnings = []Warning{}
	}
	p.Fingerprint = p.fingerprint()
}

// sortChanges orders changes by rank group (kind, then action), then key, then position.
// The groups are split first (changes arrive grouped by kind already) and sorted by key
// side by side: a first apply sorts 1.2 million changes in three big groups.
func sortChanges(cs []*Change) {
	sizes := map[int]int{}
	var ranks []int
	for _, c := range cs {
		g := c.rank >> 32
		if _, ok := sizes[g]; !ok {
			ranks = append(ranks, g)
		}
		sizes[g]++
	}
	groups := make(map[int][]*Change, len(ranks))
	for g, n := range sizes {
		groups[g] = make([]*Change, 0, n)
	}
	for _, c := range cs {
		g := c.rank >> 32
		groups[g] = append(groups[g], c)
	}
	slices.Sort(ranks)
	byKey := func(a, b *Change) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return a.rank - b.rank
	}
	parallel(len(ranks), func(i int) { slices.SortFunc(groups[ranks[i]], byKey) })
	cs = cs[:0]
	for _, g := range ranks {
		cs = append(cs, groups[g]...)
	}
}

// maxWorkers caps the goroutines a plan computes with (0: GOMAXPROCS); see SetParallelism.
var maxWorkers atomic.Int32

// SetParallelism caps the goroutines a plan's CPU-bound stages (render, fingerprints) run
// on at n (0: GOMAXPROCS, the default). The daemon in policy mode runs with two Ps more
// than CPUs and sets this to the CPUs, so that a policy request always finds a P free
// instead of waiting up to Go's 10 ms preemption slice behind the render.
func SetParallelism(n int) { maxWorkers.Store(int32(max(n, 0))) }

// parallelism is how many goroutines a CPU-bound stage uses.
func parallelism() int {
	if n := int(maxWorkers.Load()); n > 0 {
		return min(n, runtime.GOMAXPROCS(0))
	}
	return runtime.GOMAXPROCS(0)
}

// parallel calls fn(0) … fn(n-1) on up to parallelism() goroutines and waits for them.
func parallel(n int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(n, parallelism()); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// fingerprintChunk is how many changes one goroutine hashes: the fingerprint hashes the
// digests of fixed chunks, so it is the same on any number of cores.
const fingerprintChunk = 1 << 15

// fingerprint hashes every change and email with secrets included, so `apply --plan`
// can tell that planning again gives exactly the saved plan. Times (an invitation's
// expiry) depend on when the plan was made, not on its inputs: they stay out. Changes
// are hashed in chunks in parallel; the fingerprint hashes the chunks' digests in order.
func (p *Plan) fingerprint() string {
	n, segs := p.Len(), p.segments()
	chunks := make([][sha256.Size]byte, (n+fingerprintChunk-1)/fingerprintChunk)
	parallel(len(chunks), func(i int) {
		chunks[i] = p.hashChanges(segs, i*fingerprintChunk, min((i+1)*fingerprintChunk, n))
	})
	h := sha256.New()
	w := &fpWriter{buf: make([]byte, 0, 1024)}
	w.s(p.Commit)
	w.i(p.StateVersion)
	w.i(int64(len(chunks)))
	for _, c := range chunks {
		w.buf = append(w.buf, c[:]...)
	}
	p.fingerprintRest(h, w)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// hashChanges is the digest of changes [lo, hi) of the plan.
func (p *Plan) hashChanges(segs []segment, lo, hi int) [sha256.Size]byte {
	h := sha256.New()
	w := &fpWriter{buf: make([]byte, 0, 1024)}
	p.eachIn(segs, lo, hi, func(c *Change) {
		w.s(string(c.Kind))
		w.s(string(c.Action))
		w.s(c.Key)
		if c.Action != account.ActionDelete {
			switch {
			case c.newVMR() != nil:
				fpFields(w, account.VMRFields, c.newVMR())
			case c.newDevice() != nil:
				fpFields(w, account.DeviceFields, c.newDevice())
			case c.newUser() != nil:
				u := c.newUser()
				for _, x := range []string{u.UserID, u.Email, u.FirstName, u.LastName, u.Language, u.HostPrivilege, u.TimeZone,
					u.Origin, u.License, u.SyncTag, u.EntryKey} {
					w.s(x)
				}
				tr := u.Tracking.Values()
				w.strs(tr[:])
				w.b(u.Active)
				w.b(u.Notified)
			case c.newInvite() != nil:
				in := c.newInvite() // times depend on when the plan was made, not on its inputs: left out
				w.s(in.Email)
				w.s(in.Name)
				w.s(in.Username)
				w.s(in.Status)
			case c.newGroup() != nil:
				for _, f := range trackingFields(c.newGroup()) {
					w.s(fmt.Sprint(f.value))
				}
			}
		}
		if len(w.buf) > 512 {
			h.Write(w.buf)
			w.buf = w.buf[:0]
		}
	})
	h.Write(w.buf)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// fpFields writes every field of x: strings, then lists, then booleans, then integers,
// each in the field list's order (the order fingerprints have always had).
func fpFields[T any](w *fpWriter, fields []account.Field[T], x *T) {
	for _, t := range []account.Type{account.String, account.Strings, account.Bool, account.Int} {
		for i := range fields {
			switch f := &fields[i]; {
			case f.Type != t:
			case t == account.String:
				w.s(*f.Str(x))
			case t == account.Strings:
				w.strs(*f.List(x))
			case t == account.Bool:
				w.b(*f.Flag(x))
			default:
				w.i(int64(*f.Num(x)))
			}
		}
	}
}

// fingerprintRest hashes what follows the changes: the emails, the reminders and the
// announcements.
func (p *Plan) fingerprintRest(h hash.Hash, w *fpWriter) {
	var vars []state.Var
	var order varOrder
	for _, e := range p.AllEmails() {
		for _, x := range []string{e.To, string(e.Kind), string(e.Action), e.Key} {
			w.s(x)
		}
		vars = p.emailVars(vars[:0], e)
		for _, k := range order.of(vars) {
			if v := vars[k]; v.Name != "expires_at" {
				w.s(v.Name)
				w.s(sprint(v.Value))
			}
		}
		if len(w.buf) > 512 {
			h.Write(w.buf)
			w.buf = w.buf[:0]
		}
	}
	w.strs(p.reminders)
	p.fingerprintAnnouncements(w)
	h.Write(w.buf)
}

// varOrder remembers the order that sorts a list of variables by name: an email of a
// kind has the same names in the same order every time, so one sort serves them all.
type varOrder struct {
	names []string
	perm  []int
}

// of returns the positions of vars in name order (a stable sort, as the fingerprint
// always had).
func (o *varOrder) of(vars []state.Var) []int {
	same := len(vars) == len(o.names)
	for i := 0; same && i < len(vars); i++ {
		same = vars[i].Name == o.names[i]
	}
	if !same {
		o.names, o.perm = o.names[:0], o.perm[:0]
		for i, v := range vars {
			o.names, o.perm = append(o.names, v.Name), append(o.perm, i)
		}
		slices.SortStableFunc(o.perm, func(a, b int) int { return strings.Compare(vars[a].Name, vars[b].Name) })
	}
	return o.perm
}

// sprint is fmt.Sprint(x) without its reflection for the types of email variables.
func sprint(x any) string {
	switch v := x.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case []string: // a VMR's aliases_list: fmt prints "[a b]"
		return "[" + strings.Join(v, " ") + "]"
	}
	return fmt.Sprint(x)
}

// fpWriter serialises values unambiguously (length-prefixed strings) for the fingerprint.
type fpWriter struct{ buf []byte }

func (w *fpWriter) s(x string) {
	w.buf = append(append(strconv.AppendInt(w.buf, int64(len(x)), 10), ':'), x...)
}
func (w *fpWriter) i(x int64) { w.buf = append(strconv.AppendInt(w.buf, x, 10), ';') }
func (w *fpWriter) b(x bool)  { w.buf = append(strconv.AppendBool(w.buf, x), ';') }
func (w *fpWriter) strs(xs []string) {
	w.i(int64(len(xs)))
	for _, x := range xs {
		w.s(x)
	}
}
