package reconcile

import (
	"iter"
	"slices"

	"github.com/roster-dev/roster/schema/account"
)

// emailList holds a plan's emails in the order the diff made them. The email of a
// creation — all but a few of a first apply's 1.2 million — is a 16-byte record without
// pointers: its recipient, key and template are those of the created object, read from
// the packed desired lists when the email is read, and its mail spec a number in a
// per-plan table. As *Email values they took 128 bytes each (157 MB at 400,000 people),
// all traced by the garbage collector. Other emails (updates, reminders, invitations)
// are held as they are.
type emailList struct {
	recs   []emailRec
	held   []*Email
	mails  []*MailSpec
	mailAt map[*MailSpec]uint16
}

// emailRec is one email: a held one (kind recHeld, at its index in held), or the email
// of the creation at (created.vmr's or created.device's value, or a desired user's
// index with seq its USERID).
type emailRec struct {
	seq  int64
	at   int32
	mail uint16
	kind uint8
}

const (
	recHeld = iota
	recVMR
	recDevice
	recActivation
)

// maxMails bounds the mail spec table; an email past it is held.
const maxMails = 1 << 16

func (l *emailList) add(e *Email) {
	l.recs = append(l.recs, emailRec{kind: recHeld, at: int32(len(l.held))})
	l.held = append(l.held, e)
}

// addCreation records the email of a creation; e is what email() made for it.
func (l *emailList) addCreation(e *Email, at int32, seq int64) {
	var kind uint8
	switch e.Kind {
	case account.KindVMR:
		kind = recVMR
	case account.KindDevice:
		kind = recDevice
	case account.KindActivation:
		kind = recActivation
	}
	m, ok := l.mailAt[e.mail]
	if !ok && len(l.mails) < maxMails {
		if l.mailAt == nil {
			l.mailAt = map[*MailSpec]uint16{}
		}
		m, ok = uint16(len(l.mails)), true
		l.mailAt[e.mail] = m
		l.mails = append(l.mails, e.mail)
	}
	if kind == recHeld || !ok || e.Action != account.EmailCreated {
		h := *e
		h.ofCreation(at, seq)
		l.add(&h)
		return
	}
	l.recs = append(l.recs, emailRec{seq: seq, at: at, mail: m, kind: kind})
}

// email makes record r's Email into e (which it overwrites).
func (l *emailList) email(c *created, r emailRec, e *Email) *Email {
	if r.kind == recHeld {
		return l.held[r.at]
	}
	*e = Email{Action: account.EmailCreated, mail: l.mails[r.mail], at: r.at, seq: r.seq}
	switch r.kind {
	case recVMR:
		e.Kind = account.KindVMR
		e.Key, e.To, e.Template = ownedHead(listOf(c.vmrs, &c.ownVMRs, r.at))
	case recDevice:
		e.Kind = account.KindDevice
		e.Key, e.To, e.Template = ownedHead(listOf(c.devices, &c.ownDevices, r.at))
	default:
		e.Kind = account.KindActivation
		e.To, e.Template = userHead(c.users, int(r.at))
		e.Key = e.To
	}
	return e
}

// EmailCount is the number of emails the plan enqueues (announcements aside).
func (p *Plan) EmailCount() int { return len(p.emails.recs) }

// AllEmails yields the plan's emails in order. The email of a creation is made as it is
// yielded, into one Email reused for the next: copy it to keep it.
func (p *Plan) AllEmails() iter.Seq2[int, *Email] {
	return func(yield func(int, *Email) bool) {
		var scratch Email
		for i, r := range p.emails.recs {
			if !yield(i, p.emails.email(&p.created, r, &scratch)) {
				return
			}
		}
	}
}

// Emails returns every email of the plan in order, each its own value (for small plans
// and tests).
func (p *Plan) Emails() []*Email {
	out := make([]*Email, 0, p.EmailCount())
	for _, r := range p.emails.recs {
		out = append(out, p.emails.email(&p.created, r, &Email{}))
	}
	return out
}

// DropEmails removes the emails drop reports true for.
func (p *Plan) DropEmails(drop func(*Email) bool) {
	var scratch Email
	p.emails.recs = slices.DeleteFunc(p.emails.recs, func(r emailRec) bool {
		return drop(p.emails.email(&p.created, r, &scratch))
	})
}

// ownedHead reads a packed VMR's or device's key, owner email and sync tag without
// decoding the rest (see appendOwned).
func ownedHead[T, X any, C codec[T, X]](l *packedList[T, X, C], i int) (key, owner, syncTag string) {
	r := reader{s: l.rec(i)}
	key = r.str()
	r.byte() // flags
	r.uv()   // id
	r.str()  // description
	r.str()  // PIN or username
	r.str()  // guest PIN or password
	owner = r.str()
	r.str() // entry key
	r.sym() // tag
	return key, owner, r.sym()
}

// userHead reads a packed user's email and sync tag without decoding the rest (see
// userCodec.encode).
func userHead(l *UserList, i int) (email, syncTag string) {
	r := reader{s: l.rec(i)}
	email = r.str()
	r.byte() // flags
	r.uv()   // id
	for range 5 {
		r.str()
	}
	for range 5 {
		r.sym()
	}
	return email, r.sym()
}
