package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// beforeCommit, when set, runs as the apply's transaction is about to commit (the crash
// test kills the process there).
var beforeCommit func()

// bulkCreations is how many creations make a first apply (state version 0) write in bulk
// (state.DB.InBulkTx): from there its new pages outweigh the journal-mode switches.
var bulkCreations = 5000

// ErrStale means the state database changed since the plan was made.
var ErrStale = errors.New("the plan is stale")

// ApplyOptions say who applies and when.
type ApplyOptions struct {
	Actor string    // "cli:apply", "daemon", …
	Now   time.Time // stamps rows and the outbox
	// Push names the platforms in push mode (SPEC §8) whose queue gets the operations of
	// every applied VMR, device and user change, in the same transaction; none on a
	// replica or without platforms.
	Push []string
	// Repair are the operations that repair recorded platform drift (`roster platform
	// check`), queued before the plan's own; RepairDone names the meta key of the record,
	// cleared in the same transaction.
	Repair     []state.PlatformOp
	RepairDone string
	// Adopted are objects taken over on the platform (`roster platform adopt --apply`):
	// by AdoptKey, the operations that replace a creation's; AdoptedObjects their ids,
	// recorded in the same transaction.
	Adopted        map[string][]state.PlatformOp
	AdoptedObjects []state.PlatformObject
}

// ApplyResult reports what an apply wrote.
type ApplyResult struct {
	StateVersion int64
	Changes      int
	Emails       int
}

// Apply writes the plan in ONE transaction: objects (deletes first, so freed names and
// aliases can be reused), the audit log, the outbox, sync status and the state version.
// It refuses (ErrStale) when the state version moved since the plan was made. A plan with
// nothing to do writes nothing, except sync status when recordStatus is set.
func Apply(ctx context.Context, db *state.DB, p *Plan, opts ApplyOptions, recordStatus bool) (ApplyResult, error) {
	res := ApplyResult{StateVersion: p.StateVersion}
	if !p.HasChanges() && !recordStatus && opts.RepairDone == "" && len(opts.AdoptedObjects) == 0 && len(opts.Repair) == 0 && len(p.syncWrites) == 0 {
		return res, nil
	}
	inTx := db.InTx
	if p.StateVersion == 0 && p.created.len() >= bulkCreations {
		inTx = db.InBulkTx // a first apply into an empty database: write its pages once
	}
	err := inTx(ctx, func(tx *sqlx.Tx) error {
		w, err := state.NewWriter(ctx, tx, opts.Now)
		if err != nil {
			return err
		}
		defer w.Close()
		if cur := w.StateVersion(); cur != p.StateVersion {
			return fmt.Errorf("%w: it was made at state version %d, the database is now at %d; plan again", ErrStale, p.StateVersion, cur)
		}
		if err := state.PutPlatformObjects(ctx, tx, opts.Now, opts.AdoptedObjects); err != nil {
			return err
		}
		if len(opts.Repair) > 0 {
			if err := w.EnqueuePlatform(opts.Repair); err != nil {
				return err
			}
		}
		if opts.RepairDone != "" {
			if err := state.SetMeta(ctx, tx, opts.RepairDone, ""); err != nil {
				return err
			}
		}
		if p.HasChanges() {
			var pq *platformQueue
			if len(opts.Push) > 0 {
				pq = &platformQueue{w: w, platforms: opts.Push, commit: p.Commit, adopted: opts.Adopted}
			}
			if err := applyChanges(w, p, opts, pq); err != nil {
				return err
			}
			if err := enqueue(w, p, opts); err != nil {
				return err
			}
			if err := w.Flush(); err != nil { // the plan's emails before the announcements'
				return err
			}
			if err := enqueueAnnouncements(ctx, w, p, opts); err != nil {
				return err
			}
			for _, id := range p.reminders {
				if err := w.ReminderDone(id, p.Commit); err != nil {
					return err
				}
				if err := w.Audit(p.Commit, opts.Actor, account.KindReminder, account.ActionDone, id, ""); err != nil {
					return err
				}
			}
			if res.StateVersion, err = w.BumpStateVersion(p.Commit); err != nil {
				return err
			}
		}
		if recordStatus {
			if err := putStatus(w, p, opts); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		for _, s := range p.syncWrites { // SPEC §7: the cookie with the changes it led to
			if err := state.PutSync(ctx, tx, opts.Now, s); err != nil {
				return err
			}
		}
		if beforeCommit != nil {
			beforeCommit()
		}
		return nil
	})
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply plan: %w", err)
	}
	res.Changes, res.Emails = p.Len(), p.EmailCount()+p.announcementEmails()
	if p.applied != nil {
		bump := int64(0)
		if p.HasChanges() {
			bump = 1
		}
		own := res.StateVersion == p.StateVersion+bump && len(opts.Repair) == 0 && len(opts.AdoptedObjects) == 0 && opts.RepairDone == ""
		p.applied(ctx, res.StateVersion, own)
	}
	return res, nil
}

// applyOrder: deletions and deactivations free names and aliases before anything claims them.
var applyOrder = []account.Action{account.ActionDelete, account.ActionDeactivate, account.ActionUpdate, account.ActionReactivate, account.ActionCreate}

func applyChanges(w *state.Writer, p *Plan, opts ApplyOptions, pq *platformQueue) error {
	if err := materializeEmails(w, p); err != nil {
		return err
	}
	// Names and aliases may move between objects within one plan (renames, swaps): first
	// park every updated VMR and device on a temporary unique name without aliases.
	for _, c := range p.changes { // creations are never updates
		if c.Action != account.ActionUpdate {
			continue
		}
		if v, old := c.newVMR(), c.oldVMR(); v != nil && old != nil {
			park := *old
			park.Aliases = nil
			if old.Name != v.Name {
				park.Name = fmt.Sprintf("\x00renaming-%d", old.ID)
			}
			if err := w.UpdateVMR(&park); err != nil {
				return err
			}
		}
		if d, old := c.newDevice(), c.oldDevice(); d != nil && old != nil && old.Alias != d.Alias {
			park := *old
			park.Alias = fmt.Sprintf("\x00renaming-%d", old.ID)
			if err := w.UpdateDevice(&park); err != nil {
				return err
			}
		}
	}
	for _, action := range applyOrder {
		changes := slices.Values(p.changes)
		if action == account.ActionCreate {
			// Deletes, deactivations and updates are queued first, as one ordered group.
			if err := pq.flush(); err != nil {
				return err
			}
			// Only creations are made as they are read: make them once, in this pass.
			changes = func(yield func(*Change) bool) {
				for _, c := range p.All() {
					if !yield(c) {
						return
					}
				}
			}
		}
		created := map[account.Kind]int{} // creations of each kind so far: their position k
		for c := range changes {
			if c.Action != action {
				continue
			}
			if err := applyChange(w, c); err != nil {
				return fmt.Errorf("%s %s %q: %w", c.Action, c.Kind, c.Key, err)
			}
			if action == account.ActionCreate {
				if id := rowID(c.newObj); id != 0 {
					p.created.setID(c.Kind, created[c.Kind], id)
					created[c.Kind]++
				}
			}
			if err := w.Audit(p.Commit, opts.Actor, c.Kind, c.Action, c.Key, auditDetail(c)); err != nil {
				return err
			}
			pq.add(c)
			if action == account.ActionCreate && pq != nil && len(pq.ops) >= flushEvery {
				if err := pq.flush(); err != nil {
					return err
				}
			}
		}
	}
	return pq.flush()
}

// materializeEmails gives the emails that reference the objects the plan updates or
// deletes their variables, in a few statements, before any of them changes (the writer's
// updates would otherwise do it one object at a time).
func materializeEmails(w *state.Writer, p *Plan) error {
	ids := map[string][]int64{}
	for _, c := range p.changes { // only creations are not held, and they reference nothing yet
		if c.Action == account.ActionCreate {
			continue
		}
		kind := string(c.Kind)
		if c.Kind == account.KindUser {
			kind = string(account.KindActivation)
		}
		if id := rowID(c.oldObj); id != 0 && state.RefKind(kind) {
			ids[kind] = append(ids[kind], id)
		}
	}
	for kind, list := range ids {
		if err := w.MaterializeEmails(kind, list); err != nil {
			return err
		}
	}
	return nil
}

// rowID is the row id of a VMR, device or user account (0 for another object).
func rowID(obj any) int64 {
	switch x := obj.(type) {
	case *account.VMR:
		return x.ID
	case *account.Device:
		return x.ID
	case *account.User:
		return x.ID
	}
	return 0
}

// writeOwned creates or updates a VMR or device.
func writeOwned[T any](action account.Action, x *T, insert, update func(*T) error) error {
	if action == account.ActionCreate {
		return insert(x)
	}
	return update(x)
}

func applyChange(w *state.Writer, c *Change) error {
	switch c.Kind {
	case account.KindVMR:
		if c.Action == account.ActionDelete {
			return w.DeleteVMR(c.oldVMR().ID)
		}
		return writeOwned(c.Action, c.newVMR(), w.InsertVMR, w.UpdateVMR)
	case account.KindDevice:
		if c.Action == account.ActionDelete {
			return w.DeleteDevice(c.oldDevice().ID)
		}
		return writeOwned(c.Action, c.newDevice(), w.InsertDevice, w.UpdateDevice)
	case account.KindUser:
		if c.Action == account.ActionCreate {
			return w.InsertUser(c.newUser())
		}
		return w.UpdateUser(c.newUser())
	case account.KindInvite:
		return w.PutInvite(c.newInvite())
	case account.KindTrackingGroup:
		if c.Action == account.ActionDelete {
			return w.DeleteTrackingGroup(c.Key)
		}
		return w.PutTrackingGroup(c.newGroup())
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

// auditDetail names the fields an update changed; values are left out so secrets
// (PINs, passwords) never reach the audit log.
func auditDetail(c *Change) string {
	if len(c.Fields) == 0 {
		return ""
	}
	names := make([]string, len(c.Fields))
	for i, f := range c.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ",")
}

// emailsByValue makes enqueue write every email's variables and an audit row per email,
// as before migration 007: the differential tests compare the two ways.
var emailsByValue bool

// enqueue writes the plan's emails to the outbox one at a time. An email of a VMR, device
// or user account the apply created or updated references that row (state.Email.Ref): its
// variables are made from the row when it is read. Any other email stores the variables
// its template may read (state.MayRead), made here row by row and never held. Each email
// is its own audit record.
func enqueue(w *state.Writer, p *Plan, opts ApplyOptions) error {
	reads := map[*MailSpec]*mailReads{}
	var all, used []state.Var
	for _, e := range p.AllEmails() {
		if e.mail == nil {
			continue
		}
		ref := p.emailRef(e)
		used = nil
		if ref == 0 {
			r := reads[e.mail]
			if r == nil {
				r = &mailReads{mail: e.mail}
				reads[e.mail] = r
			}
			all, used = p.emailVars(all[:0], e), []state.Var{} // none: not Vars
			for i, v := range all {
				if r.reads(i, v.Name) {
					used = append(used, v)
				}
			}
		}
		if err := w.Enqueue(&state.Email{Kind: string(e.Kind), Action: string(e.Action), ObjectKey: e.Key, Template: e.Template,
			To: e.To, SMTPServer: e.mail.SMTPServer, Commit: p.Commit, Subject: e.mail.Subject, Body: e.mail.Body,
			BodyPath: e.mail.BodyPath, HTML: e.mail.HTML, VarList: used, Ref: ref,
			Audited: !emailsByValue, Actor: opts.Actor}); err != nil {
			return err
		}
		if emailsByValue {
			if err := w.Audit(p.Commit, opts.Actor, account.KindEmail, e.Action, string(e.Kind)+" "+e.Key, "to "+e.To); err != nil {
				return err
			}
		}
	}
	return nil
}

// emailRef is the row id e's variables are made from when it is read, or 0 when they are
// stored: only an email of a VMR, device or user account that this apply created or
// updated (a created or updated email, whose object is what the apply wrote) references
// its row; a reminder's object is the state before the apply, and keeps its variables.
func (p *Plan) emailRef(e *Email) int64 {
	if emailsByValue || (e.Action != account.EmailCreated && e.Action != account.EmailUpdated) {
		return 0
	}
	c := &p.created
	switch x := e.obj.(type) {
	case *account.VMR:
		return x.ID
	case *account.Device:
		return x.ID
	case *account.User:
		if e.Kind == account.KindActivation {
			return x.ID
		}
	case nil:
		switch e.Kind {
		case account.KindVMR:
			return c.vmrIDs.get(e.at)
		case account.KindDevice:
			return c.deviceIDs.get(e.at)
		case account.KindActivation:
			return c.userIDs.get(e.at)
		}
	}
	return 0
}

// mailReads remembers which variables a template may read, by their position in the
// list emailVars makes: an email template serves one kind of email, whose variables
// come in the same order every time.
type mailReads struct {
	mail  *MailSpec
	names []string
	read  []bool
}

func (r *mailReads) reads(i int, name string) bool {
	if i < len(r.names) && r.names[i] == name {
		return r.read[i]
	}
	read := mayRead(r.mail, name)
	if i <= len(r.names) {
		r.names, r.read = append(r.names[:i], name), append(r.read[:i], read)
	}
	return read
}

// mayRead reports whether m's template (subject and body) may read the variable name.
// An email is rendered with the pattern language (notify.PatternRenderer), where a
// variable is only ever read by its name, written out in the template: a variable whose
// name appears nowhere in the template's text cannot change what it renders, and is not
// stored.
func mayRead(m *MailSpec, name string) bool { return state.MayRead(m.Subject, m.Body, name) }

func putStatus(w *state.Writer, p *Plan, opts ApplyOptions) error {
	warns := map[string][]string{}
	for _, wr := range p.Warnings {
		if wr.Template != "" {
			warns[wr.Template] = append(warns[wr.Template], wr.Code+": "+wr.Message)
		}
	}
	for _, t := range p.Templates {
		s := state.SyncStatus{Template: t.Name, State: "succeeded", LastRun: opts.Now, Commit: p.Commit,
			Created: t.Created, Updated: t.Updated, Deleted: t.Deleted, Deactivated: t.Deactivated,
			Unchanged: t.Unchanged, Warnings: warns[t.Name], LastError: t.Error}
		if t.Error != "" {
			s.State = "failed"
		}
		if err := w.PutSyncStatus(s); err != nil {
			return err
		}
	}
	return nil
}

// MarshalPlanFile encodes the plan for `plan --out`; secrets masked, since `apply --plan`
// plans again and compares fingerprints rather than trusting the file's values.
func MarshalPlanFile(p *Plan) ([]byte, error) {
	var b strings.Builder
	if err := p.WriteJSON(&b, OutputOptions{}); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// SavedPlan is what `apply --plan FILE` reads back.
type SavedPlan struct {
	FormatVersion int    `json:"format_version"`
	Commit        string `json:"commit"`
	StateVersion  int64  `json:"state_version"`
	Fingerprint   string `json:"fingerprint"`
}

// ReadPlanFile parses a saved plan.
func ReadPlanFile(data []byte) (*SavedPlan, error) {
	var s SavedPlan
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read plan file: not a roster JSON plan (make it with `roster plan --out FILE`): %w", err)
	}
	if s.FormatVersion != FormatVersion || s.Fingerprint == "" {
		return nil, fmt.Errorf("read plan file: format_version %d with fingerprint %q is not a plan this roster can apply", s.FormatVersion, s.Fingerprint)
	}
	return &s, nil
}

// MatchSaved refuses a saved plan that differs from the plan made now: another commit,
// another state version, or different changes (the directory moved on).
func (p *Plan) MatchSaved(s *SavedPlan) error {
	switch {
	case s.Commit != p.Commit:
		return fmt.Errorf("%w: it was made for commit %s, the repo is now at %s; plan again", ErrStale, short(s.Commit), short(p.Commit))
	case s.StateVersion != p.StateVersion:
		return fmt.Errorf("%w: it was made at state version %d, the database is now at %d; plan again", ErrStale, s.StateVersion, p.StateVersion)
	case s.Fingerprint != p.Fingerprint:
		return fmt.Errorf("%w: the changes it lists are no longer what the repo and directory give (the directory changed?); plan again", ErrStale)
	}
	return nil
}
