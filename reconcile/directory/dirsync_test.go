package directory

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// DirSync and the uSNChanged mode are tested against fakeAD, a loopback LDAP responder that
// answers as MS-ADTS describes AD's DirSync (changed objects since a watermark cookie, with
// objectGUID and only what changed; tombstones with isDeleted TRUE under CN=Deleted Objects;
// the "more data" flag; <GUID=hex> base DNs; insufficientAccessRights to an account without
// Replicating Directory Changes) and its USNs (uSNChanged on each object, the root DSE's
// highestCommittedUSN and dsServiceName, the nTDSDSA object's invocationId), with messages
// built with go-asn1-ber and decoded by go-ldap, as a real exchange would be. The same
// scenarios run against a real Samba AD DC in samba_test.go.

type adObject struct {
	guid    [16]byte
	dn      string
	attrs   map[string][]string // lower-case names
	deleted bool
	usn     int // of its last change
}

type fakeAD struct {
	t        testing.TB
	ln       net.Listener
	nc       string // the naming context
	pageSize int    // objects per DirSync answer

	mu         sync.Mutex
	objects    []*adObject
	usn        int
	cookies    []string   // cookies of the DirSync requests, in order ("" = none)
	attrs      [][]string // attribute lists of the DirSync requests
	noDirSync  bool       // the bind account lacks Replicating Directory Changes
	invocation [16]byte   // the DC's invocationId: another value is another DC
	filters    []string   // filters of the plain subtree searches, in order
}

// dsService is the DN of the fake DC's nTDSDSA object.
func (f *fakeAD) dsService() string {
	return "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration," + f.nc
}

func startFakeAD(t testing.TB) *fakeAD {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAD{t: t, ln: ln, nc: "DC=ad,DC=example", pageSize: 3, invocation: [16]byte{0: 0x1c, 15: 1}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

// sent returns the cookies and attribute lists of the DirSync requests so far, and forgets them.
func (f *fakeAD) sent() ([]string, [][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, a := f.cookies, f.attrs
	f.cookies, f.attrs = nil, nil
	return c, a
}

func (f *fakeAD) url() string { return "ldap://" + f.ln.Addr().String() }

// put adds or changes an object (attrs nil: deleted), bumping the USN.
func (f *fakeAD) put(guid byte, dn string, attrs map[string][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usn++
	id := [16]byte{15: guid, 0: 0xa0}
	for _, o := range f.objects {
		if o.guid == id {
			o.usn = f.usn
			if attrs == nil {
				o.deleted = true
				o.dn = "CN=x\\0ADEL:" + hex.EncodeToString(id[:]) + ",CN=Deleted Objects," + f.nc
				return
			}
			o.dn, o.attrs = dn, attrs
			return
		}
	}
	f.objects = append(f.objects, &adObject{guid: id, dn: dn, attrs: attrs, usn: f.usn})
}

func guidHex(guid byte) string {
	id := [16]byte{15: guid, 0: 0xa0}
	return hex.EncodeToString(id[:])
}

func person(name string, extra ...string) map[string][]string {
	a := map[string][]string{"objectclass": {"top", "person", "user"}, "cn": {name}, "name": {name},
		"samaccountname": {strings.ToLower(name)}, "mail": {strings.ToLower(name) + "@ad.example"}, "useraccountcontrol": {"512"}}
	for i := 0; i+1 < len(extra); i += 2 {
		a[strings.ToLower(extra[i])] = []string{extra[i+1]}
	}
	return a
}

func (f *fakeAD) serve(c net.Conn) {
	defer c.Close()
	for {
		p, err := ber.ReadPacket(c)
		if err != nil {
			return
		}
		id := p.Children[0].Value.(int64)
		op := p.Children[1]
		var controls []*ber.Packet
		if len(p.Children) > 2 {
			controls = p.Children[2].Children
		}
		switch op.Tag {
		case ldap.ApplicationBindRequest:
			f.write(c, id, result(ber.Tag(ldap.ApplicationBindResponse), 0, ""))
		case ldap.ApplicationUnbindRequest:
			return
		case ldap.ApplicationSearchRequest:
			f.search(c, id, op, controls)
		case ldap.ApplicationAbandonRequest:
		default:
			f.t.Errorf("fake AD: unexpected request tag %d", op.Tag)
			return
		}
	}
}

func (f *fakeAD) write(c net.Conn, id int64, op *ber.Packet, controls ...*ber.Packet) {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	p.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
		for _, ctl := range controls {
			cs.AppendChild(ctl)
		}
		p.AppendChild(cs)
	}
	_, _ = c.Write(p.Bytes())
}

func result(tag ber.Tag, code int64, msg string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, msg, ""))
	return op
}

func entryPacket(dn string, attrs map[string][]string, names []string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, n := range names {
		vals, ok := attrs[strings.ToLower(n)]
		if !ok {
			continue
		}
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, n, ""))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		for _, v := range vals {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, ""))
		}
		a.AppendChild(set)
		list.AppendChild(a)
	}
	op.AppendChild(list)
	return op
}

func dirsyncControl(flags int64, cookie string) *ber.Packet {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, flags, ""))
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	seq.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, cookie, ""))
	ctl := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	ctl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, ldap.ControlTypeDirSync, ""))
	ctl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(seq.Bytes()), ""))
	return ctl
}

func hasControl(controls []*ber.Packet, oid string) bool {
	for _, c := range controls {
		if string(c.Children[0].Data.Bytes()) == oid {
			return true
		}
	}
	return false
}

// requestCookie returns the cookie of a request's DirSync control, and whether it has one.
func requestCookie(controls []*ber.Packet) (string, bool) {
	for _, c := range controls {
		if string(c.Children[0].Data.Bytes()) != ldap.ControlTypeDirSync {
			continue
		}
		v := c.Children[len(c.Children)-1]
		seq, err := ber.DecodePacketErr(v.Data.Bytes())
		if err != nil || len(seq.Children) != 3 {
			return "", true
		}
		return string(seq.Children[2].Data.Bytes()), true
	}
	return "", false
}

func (f *fakeAD) search(c net.Conn, id int64, op *ber.Packet, controls []*ber.Packet) {
	base := string(op.Children[0].Data.Bytes())
	filter, err := ldap.DecompileFilter(op.Children[6])
	if err != nil {
		f.t.Errorf("fake AD: filter: %v", err)
	}
	var attrs []string
	for _, a := range op.Children[7].Children {
		attrs = append(attrs, string(a.Data.Bytes()))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	done := ber.Tag(ldap.ApplicationSearchResultDone)
	switch cookie, dirsync := requestCookie(controls); {
	case hasControl(controls, ldap.ControlTypeSyncRequest):
		// An RFC 4533 server that cannot serve the cookie: e-syncRefreshRequired.
		f.write(c, id, result(done, ldap.LDAPResultSyncRefreshRequired, "refresh required"))
	case base == "":
		f.write(c, id, entryPacket("", map[string][]string{
			"supportedcontrol":    {ldap.ControlTypeDirSync, ldap.ControlTypePaging},
			"namingcontexts":      {f.nc, "CN=Configuration," + f.nc},
			"highestcommittedusn": {strconv.Itoa(f.usn)},
			"dsservicename":       {f.dsService()},
		}, attrs))
		f.write(c, id, result(done, 0, ""))
	case dirsync && f.noDirSync:
		f.write(c, id, result(done, ldap.LDAPResultInsufficientAccessRights, "00000005: SecErr: DSID-03152857, problem 4003 (INSUFF_ACCESS_RIGHTS)"))
	case base == f.dsService():
		f.write(c, id, entryPacket(base, map[string][]string{"invocationid": {string(f.invocation[:])}}, attrs))
		f.write(c, id, result(done, 0, ""))
	case dirsync:
		f.cookies = append(f.cookies, cookie)
		f.attrs = append(f.attrs, attrs)
		from := 0
		if cookie != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(cookie, "usn="))
			if err != nil || !strings.HasPrefix(cookie, "usn=") {
				f.write(c, id, result(done, ldap.LDAPResultUnwillingToPerform, "00002024: SvcErr: DSID-03100, problem 5003 (WILL_NOT_PERFORM)"))
				return
			}
			from = n
		}
		changed := slices.DeleteFunc(slices.Clone(f.objects), func(o *adObject) bool { return o.usn <= from })
		slices.SortFunc(changed, func(a, b *adObject) int { return a.usn - b.usn })
		more := int64(0)
		if len(changed) > f.pageSize {
			changed, more = changed[:f.pageSize], 1
		}
		last := from
		if len(changed) > 0 {
			last = changed[len(changed)-1].usn
		} else {
			last = f.usn
		}
		for _, o := range changed {
			// As AD: objectGUID, and only what changed (here: name), or the tombstone.
			a := map[string][]string{"objectguid": {string(o.guid[:])}, "name": o.attrs["name"], "instancetype": {"4"}}
			if o.deleted {
				a = map[string][]string{"objectguid": {string(o.guid[:])}, "isdeleted": {"TRUE"}, "instancetype": {"4"}}
			}
			f.write(c, id, entryPacket(o.dn, a, []string{"objectGUID", "instanceType", "name", "isDeleted"}))
		}
		f.write(c, id, result(done, 0, ""), dirsyncControl(more, "usn="+strconv.Itoa(last)))
	case strings.HasPrefix(base, "<GUID="):
		var found *adObject
		for _, o := range f.objects {
			if "<GUID="+hex.EncodeToString(o.guid[:])+">" == base && !o.deleted {
				found = o
			}
		}
		if found == nil {
			f.write(c, id, result(done, ldap.LDAPResultNoSuchObject, "0000208D: NameErr: DSID-0310028C, problem 2001 (NO_OBJECT)"))
			return
		}
		if matches(f.t, filter, found) {
			f.write(c, id, entryPacket(found.dn, found.attrs, attrs))
		}
		f.write(c, id, result(done, 0, ""))
	case under(base, f.nc) && op.Children[1].Value == int64(ldap.ScopeWholeSubtree):
		// A plain subtree search (paged or not: all in one page, as AD's last page).
		f.filters = append(f.filters, filter)
		for _, o := range f.objects {
			if !o.deleted && under(o.dn, base) && matches(f.t, filter, o) {
				a := maps.Clone(o.attrs)
				a["objectguid"] = []string{string(o.guid[:])}
				a["usnchanged"] = []string{strconv.Itoa(o.usn)}
				f.write(c, id, entryPacket(o.dn, a, attrs))
			}
		}
		f.write(c, id, result(done, 0, ""))
	default:
		f.t.Errorf("fake AD: unexpected search of %q %s", base, filter)
		f.write(c, id, result(done, ldap.LDAPResultUnwillingToPerform, "unexpected"))
	}
}

func matches(t testing.TB, filter string, o *adObject) bool {
	fl, err := CompileFilter(filter)
	if err != nil {
		t.Errorf("fake AD: compile %s: %v", filter, err)
		return false
	}
	r := &Record{DN: o.dn}
	for n, v := range o.attrs {
		r.Attrs = append(r.Attrs, Attribute{Name: n, Values: v, lower: n})
	}
	r.Attrs = append(r.Attrs, Attribute{Name: "uSNChanged", Values: []string{strconv.Itoa(o.usn)}, lower: "usnchanged"})
	return fl.Match(r)
}

var adReq = Request{
	SearchDN:       "OU=Staff",
	Filter:         "(&(objectClass=user)(mail=*))",
	DisabledFilter: "(userAccountControl:1.2.840.113556.1.4.803:=2)",
	KeyAttribute:   "sAMAccountName",
	Attributes:     []string{"cn", "mail"},
}

// openStaff puts User1..7 under OU=Staff of the fake AD and one person elsewhere, and
// opens the directory.
func openStaff(t *testing.T, f *fakeAD) (Directory, Syncer) {
	t.Helper()
	for i := byte(1); i <= 7; i++ {
		name := fmt.Sprintf("User%d", i)
		f.put(i, "CN="+name+",OU=Staff,"+f.nc, person(name))
	}
	f.put(8, "CN=Elsewhere,OU=Other,"+f.nc, person("Elsewhere"))
	d, err := NewLDAP(Config{URL: f.url(), BaseDN: f.nc, BindDN: "CN=reader," + f.nc, BindPassword: "x", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, d.(Syncer)
}

// changeStaff makes, at USNs 9 to 17, the changes every mode must report: a modify, a
// delete, a move out of the base, a disable, an object leaving the filter, one changed
// twice and renamed, an add, and a change outside the base.
func changeStaff(f *fakeAD) {
	staff := "OU=Staff," + f.nc
	f.put(1, "CN=User1,"+staff, person("User1", "mail", "first@ad.example"))                     // modify
	f.put(2, "", nil)                                                                            // delete
	f.put(3, "CN=User3,OU=Other,"+f.nc, person("User3"))                                         // moved out of the base
	f.put(4, "CN=User4,"+staff, person("User4", "userAccountControl", "514"))                    // disabled
	f.put(5, "CN=User5,"+staff, map[string][]string{"objectclass": {"user"}, "name": {"User5"}}) // left the filter (no mail)
	f.put(6, "CN=User6,"+staff, person("User6", "mail", "once@ad.example"))
	f.put(6, "CN=Renamed6,"+staff, person("Renamed6", "mail", "twice@ad.example")) // twice, and renamed
	f.put(9, "CN=New9,"+staff, person("New9"))                                     // added
	f.put(8, "CN=Elsewhere,OU=Other,"+f.nc, person("Elsewhere", "sn", "x"))        // outside the base all along
}

// staffChanges is what Changes must report after changeStaff, by UUID.
func staffChanges() map[string]string {
	return map[string]string{
		guidHex(1): "CN=User1,OU=Staff,DC=ad,DC=example key=user1 mail=[first@ad.example] cn=[User1] disabled=false",
		guidHex(2): "deleted",
		guidHex(3): "deleted",
		guidHex(4): "CN=User4,OU=Staff,DC=ad,DC=example key=user4 mail=[user4@ad.example] cn=[User4] disabled=true",
		guidHex(5): "deleted",
		guidHex(6): "CN=Renamed6,OU=Staff,DC=ad,DC=example key=renamed6 mail=[twice@ad.example] cn=[Renamed6] disabled=false",
		guidHex(9): "CN=New9,OU=Staff,DC=ad,DC=example key=new9 mail=[new9@ad.example] cn=[New9] disabled=false",
	}
}

// checkChanges compares changes, each UUID at most once, with want.
func checkChanges(t *testing.T, changes []Change, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, c := range changes {
		if _, dup := got[c.UUID]; dup {
			t.Errorf("%s twice", c.UUID)
		}
		if c.Entry == nil {
			got[c.UUID] = "deleted"
			continue
		}
		got[c.UUID] = fmt.Sprintf("%s key=%s mail=%s cn=%s disabled=%v", c.Entry.DN, c.Entry.Key, c.Entry.Attrs["mail"], c.Entry.Attrs["cn"], c.Entry.Disabled)
	}
	for u, w := range want {
		if got[u] != w {
			t.Errorf("%s: got %q, want %q", u, got[u], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d changes, want %d: %v", len(got), len(want), got)
	}
}

func TestDirSyncLoopback(t *testing.T) {
	f := startFakeAD(t)
	_, sy := openStaff(t, f)
	ctx := context.Background()
	if mode, err := sy.Mode(ctx); err != nil || mode != ModeDirSync {
		t.Fatalf("mode %q, %v", mode, err)
	}
	// The probe of the bind account's right: one DirSync request from no cookie.
	if cookies, _ := f.sent(); !slices.Equal(cookies, []string{""}) {
		t.Fatalf("probe cookies sent %q", cookies)
	}
	cookie, err := sy.Baseline(ctx, adReq)
	if err != nil {
		t.Fatal(err)
	}
	// 8 objects in pages of 3: three passes, each carrying the previous answer's cookie.
	cookies, attrs := f.sent()
	if want := []string{"", "usn=3", "usn=6"}; !slices.Equal(cookies, want) {
		t.Fatalf("baseline cookies sent %q, want %q", cookies, want)
	}
	if !slices.Equal(attrs[0], []string{"objectGUID"}) {
		t.Errorf("baseline asked for %q", attrs[0])
	}
	res, err := sy.Changes(ctx, adReq, cookie, nil)
	if err != nil || res.Refresh || len(res.Changes) != 0 {
		t.Fatalf("no change: %d changes, refresh %v, %v", len(res.Changes), res.Refresh, err)
	}
	cookie = res.Cookie

	changeStaff(f)
	f.sent()
	res, err = sy.Changes(ctx, adReq, cookie, nil)
	if err != nil || res.Refresh {
		t.Fatalf("changes: refresh %v, %v", res.Refresh, err)
	}
	cookies, attrs = f.sent()
	// Changes at usn 9..17, User6's two at 14 and 15: passes of 3 objects end at 11 and 15.
	if want := []string{"usn=8", "usn=11", "usn=15"}; !slices.Equal(cookies, want) {
		t.Errorf("dirsync cookies sent %q, want %q", cookies, want)
	}
	last := strings.ToLower(strings.Join(attrs[len(attrs)-1], " ")) + " "
	for _, a := range []string{"isdeleted", "name", "useraccountcontrol", "mail", "objectclass"} {
		if !strings.Contains(last, a+" ") {
			t.Errorf("dirsync attributes %q lack %s", attrs[len(attrs)-1], a)
		}
	}
	want := staffChanges()
	want[guidHex(8)] = "deleted" // outside the base: the caller drops what it never had
	checkChanges(t, res.Changes, want)
	// The new cookie is current.
	res2, err := sy.Changes(ctx, adReq, res.Cookie, nil)
	if err != nil || res2.Refresh || len(res2.Changes) != 0 {
		t.Errorf("after: %d changes, refresh %v, %v", len(res2.Changes), res2.Refresh, err)
	}
	// A cookie AD will not use (unwillingToPerform) means a full read.
	res3, err := sy.Changes(ctx, adReq, tagCookie(dirsyncTag, []byte("from-another-domain")), nil)
	if err != nil || !res3.Refresh {
		t.Errorf("rejected cookie: refresh %v, %v", res3.Refresh, err)
	}
	// DirSync has no persistent mode.
	err = sy.Persist(ctx, adReq, res.Cookie, nil, func(SyncResult) error { return nil })
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("persist with dirsync: %v", err)
	}
}

// TestSyncRefreshRequired: e-syncRefreshRequired (4096) from an RFC 4533 server means a full
// read, from Changes and from Persist, not an error.
func TestSyncRefreshRequired(t *testing.T) {
	f := startFakeAD(t)
	d, err := NewLDAP(Config{URL: f.url(), BaseDN: f.nc, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sy := d.(Syncer)
	cookie := tagCookie(syncreplTag, []byte("rid=000,csn=20261202130116.101128Z#000000#000#000000"))
	res, err := sy.Changes(context.Background(), adReq, cookie, nil)
	if err != nil || !res.Refresh {
		t.Errorf("changes: refresh %v, %v", res.Refresh, err)
	}
	calls := 0
	err = sy.Persist(context.Background(), adReq, cookie, nil, func(r SyncResult) error {
		calls++
		if !r.Refresh {
			t.Errorf("persist batch without refresh: %d changes", len(r.Changes))
		}
		return nil
	})
	if err != nil || calls != 1 {
		t.Errorf("persist: %d calls, %v", calls, err)
	}
}
