package directory

import (
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseLDIF(t *testing.T) {
	data, err := os.ReadFile("testdata/people.ldif")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseLDIF(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 {
		t.Fatalf("got %d records, want 6", len(recs))
	}
	alice := recs[2]
	if alice.DN != "uid=alice,ou=people,dc=example,dc=com" || alice.Line != 15 {
		t.Errorf("alice: dn %q line %d", alice.DN, alice.Line)
	}
	if got := alice.Values("description"); !reflect.DeepEqual(got, []string{"a long description that is folded over two lines"}) {
		t.Errorf("folded description = %q", got)
	}
	if got := alice.Values("OBJECTGUID"); !reflect.DeepEqual(got, []string{"\x00\x01\x02\x03\xff\x10\xff"}) {
		t.Errorf("objectGUID = %q", got)
	}
	if got := alice.Values("objectclass"); !reflect.DeepEqual(got, []string{"inetOrgPerson", "person"}) {
		t.Errorf("objectClass = %q", got)
	}
	zoe := recs[3]
	if zoe.DN != "uid=zoe,ou=people,dc=example,dc=com" {
		t.Errorf("base64 dn = %q", zoe.DN)
	}
	if got := zoe.Values("cn"); !reflect.DeepEqual(got, []string{"Zoë Ångström"}) {
		t.Errorf("base64 cn = %q", got)
	}
	if got := zoe.Values("sn"); !reflect.DeepEqual(got, []string{"Ångström"}) {
		t.Errorf("utf-8 sn = %q", got)
	}
	if got := zoe.Values("mail"); !reflect.DeepEqual(got, []string{"zoe@example.com", "zoe.alias@example.com"}) {
		t.Errorf("multi-valued mail with mixed case = %q", got)
	}
}

func TestParseLDIFErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"changetype", "dn: cn=a,dc=x\nchangetype: add\ncn: a\n", 2, "change records are not supported"},
		{"control", "dn: cn=a,dc=x\ncontrol: 1.2.3\n", 2, "change records"},
		{"url value", "dn: cn=a,dc=x\njpegPhoto:< file:///etc/passwd\n", 2, "URL values"},
		{"bad base64", "dn: cn=a,dc=x\n\ncn: a\n", 3, "must start with"},
		{"bad base64 value", "dn: cn=a,dc=x\ncn:: !!!\n", 2, "invalid base64"},
		{"no colon", "dn: cn=a,dc=x\njunk line\n", 2, "expected"},
		{"no dn", "# c\ncn: a\n", 2, "must start with \"dn:\""},
		{"two dns", "dn: cn=a,dc=x\ncn: a\ndn: cn=b,dc=x\n", 3, "second \"dn:\""},
		{"bad version", "version: 2\n\ndn: cn=a\n", 1, "unsupported LDIF version"},
		{"invalid utf-8", "dn: cn=a,dc=x\ncn: \xff\xfe\n", 2, "not valid UTF-8"},
		{"bad attribute name", "dn: cn=a,dc=x\nc n: a\n", 2, "invalid attribute description"},
		{"folded error line", "dn: cn=a,dc=x\ncn: a\n b\nsn:: %%\n", 4, "invalid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLDIF([]byte(tt.in))
			var le *LDIFError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want *LDIFError", err)
			}
			if le.Line != tt.line || !strings.Contains(le.Msg, tt.msg) {
				t.Errorf("err = %v, want line %d containing %q", err, tt.line, tt.msg)
			}
		})
	}
}

func TestParseLDIFCRLFAndEmpty(t *testing.T) {
	recs, err := ParseLDIF([]byte("dn: cn=a,dc=x\r\ncn: a\r\n b\r\ndescription:\r\n\r\n\r\ndn: cn=b,dc=x\r\ncn: b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Values("cn")[0] != "ab" || recs[1].Values("cn")[0] != "b" {
		t.Fatalf("records = %+v", recs)
	}
	if got := recs[0].Values("description"); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("empty value = %q", got)
	}
	recs, err = ParseLDIF(nil)
	if err != nil || len(recs) != 0 {
		t.Errorf("empty input: %v, %d records", err, len(recs))
	}
}

func TestFilter(t *testing.T) {
	data, err := os.ReadFile("testdata/people.ldif")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseLDIF(data)
	if err != nil {
		t.Fatal(err)
	}
	uids := func(f *Filter) string {
		var out []string
		for i := range recs {
			if f.Match(&recs[i]) {
				if u := recs[i].Values("uid"); u != nil {
					out = append(out, u[0])
				} else {
					out = append(out, "-")
				}
			}
		}
		return strings.Join(out, ",")
	}
	tests := []struct{ filter, want string }{
		{"", "-,-,alice,zoe,bob,carol"},
		{"(objectClass=inetOrgPerson)", "alice,zoe,bob,carol"},
		{"(OBJECTCLASS=INETORGPERSON)", "alice,zoe,bob,carol"},
		{"(uid=ALICE)", "alice"},
		{"(mail=*)", "alice,zoe,carol"},
		{"(!(mail=*))", "-,-,bob"},
		{"(&(objectClass=person)(mail=*))", "alice"},
		{"(|(uid=bob)(uid=carol))", "bob,carol"},
		{"(cn=a*)", "alice"},
		{"(cn=*an*en)", "alice"},
		{"(cn=*ström)", "zoe"},
		{"(cn=zoë*)", "zoe"},
		{"(sn=ÅNGSTRÖM)", "zoe"}, // Unicode case folding
		{"(mail=zoe.alias@example.com)", "zoe"},
		{"(employeeNumber>=40)", "carol"},
		{"(employeeNumber<=41)", ""},
		{"(employeeNumber>=100)", ""}, // numeric, not string, comparison
		{"(sn<=C)", "alice,bob"},
		{"(cn~=bob brown)", "bob"},
		{"(userAccountControl:1.2.840.113556.1.4.803:=2)", "zoe"},
		{"(!(userAccountControl:1.2.840.113556.1.4.803:=2))", "-,-,alice,bob,carol"},
		{"(userAccountControl:1.2.840.113556.1.4.803:=65538)", ""},
		{"(userAccountControl:1.2.840.113556.1.4.804:=65538)", "zoe,bob"},
		{"(memberOf:1.2.840.113556.1.4.1941:=cn=vmr users,ou=groups,dc=example,dc=com)", "alice"},
		{"(memberOf=CN=VMR Users,OU=Groups,DC=example,DC=com)", "alice"},
		{"(uid:=bob)", "bob"},
		{"(objectGUID=\\00\\01\\02\\03\\ff\\10\\ff)", "alice"},
		{"(cn=Bob \\42rown)", "bob"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := CompileFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(f); got != tt.want {
				t.Errorf("matches = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	for _, f := range []string{"(cn=a", "cn=a)", "(&(cn=a)", "(cn:1.2.3.4:=x)", "(:dn:2.5.13.5:=x)",
		"(userAccountControl:1.2.840.113556.1.4.803:=abc)", "(cn=\\zz)"} {
		if _, err := CompileFilter(f); err == nil {
			t.Errorf("CompileFilter(%q) succeeded, want an error", f)
		}
	}
}

func TestNormalizeDN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"uid=a,dc=x", "uid=a,dc=x"},
		{"UID=A, DC=X", "uid=a,dc=x"},
		{" ou = People ,dc=Example", "ou=people,dc=example"},
		{"cn=Zoë,dc=x", "cn=zoë,dc=x"},
		{"cn=a\\,b,dc=x", "cn=a\\,b,dc=x"},
	}
	for _, tt := range tests {
		if got := normalizeDN(tt.in); got != tt.want {
			t.Errorf("normalizeDN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLDIFSearch(t *testing.T) {
	data, err := os.ReadFile("testdata/people.ldif")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewLDIF(data, "DC=Example, dc=com")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tests := []struct {
		name string
		req  Request
		want []Entry
	}{
		{
			name: "people subtree, projection, disabled",
			req: Request{SearchDN: "ou=People", Filter: "(objectClass=inetOrgPerson)",
				DisabledFilter: "(userAccountControl:1.2.840.113556.1.4.803:=2)",
				KeyAttribute:   "entryuuid", Attributes: []string{"Mail", "cn", "objectGUID", "missing"}},
			want: []Entry{
				{DN: "uid=alice,ou=people,dc=example,dc=com", Key: "0b3c1c8e-1111-4d5e-8f00-000000000001",
					Attrs: map[string][]string{"Mail": {"alice@example.com"}, "cn": {"Alice Andersen"}, "objectGUID": {"\x00\x01\x02\x03\xff\x10\xff"}}},
				{DN: "uid=zoe,ou=people,dc=example,dc=com", Key: "0b3c1c8e-1111-4d5e-8f00-000000000002", Disabled: true,
					Attrs: map[string][]string{"Mail": {"zoe@example.com", "zoe.alias@example.com"}, "cn": {"Zoë Ångström"}}},
				{DN: "uid=bob,ou=people,dc=example,dc=com", Key: "0b3c1c8e-1111-4d5e-8f00-000000000003",
					Attrs: map[string][]string{"cn": {"Bob Brown"}}},
			},
		},
		{
			name: "key is the DN, base entry itself included",
			req:  Request{SearchDN: "uid=carol,ou=contractors", Attributes: []string{}},
			want: []Entry{{DN: "uid=carol,ou=contractors,dc=example,dc=com", Key: "uid=carol,ou=contractors,dc=example,dc=com", Attrs: map[string][]string{}}},
		},
		{
			name: "nil attributes means all",
			req:  Request{Filter: "(uid=bob)"},
			want: []Entry{{DN: "uid=bob,ou=people,dc=example,dc=com", Key: "uid=bob,ou=people,dc=example,dc=com", Attrs: map[string][]string{
				"objectClass": {"inetOrgPerson"}, "uid": {"bob"}, "cn": {"Bob Brown"}, "sn": {"Brown"},
				"userAccountControl": {"66048"}, "memberOf": {"cn=other,ou=groups,dc=example,dc=com"},
				"entryUUID": {"0b3c1c8e-1111-4d5e-8f00-000000000003"}}}},
		},
		{
			name: "no match is success with zero entries",
			req:  Request{SearchDN: "ou=nowhere", Filter: "(uid=*)"},
		},
		{
			name: "suffix is not a subtree match",
			req:  Request{SearchDN: "ople", Filter: "(uid=*)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Entry
			err := d.Search(context.Background(), tt.req, func(e Entry) error { got = append(got, e); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLDIFSearchErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/people.ldif")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewLDIF(data, "dc=example,dc=com")
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	tests := []struct {
		name       string
		req        Request
		fn         func(Entry) error
		failClosed bool
		want       string
	}{
		{"missing key attribute", Request{Filter: "(objectClass=inetOrgPerson)", KeyAttribute: "mail"}, nil, true, `"uid=bob,ou=people,dc=example,dc=com" has no key attribute "mail"`},
		{"bad filter", Request{Filter: "(uid=bob"}, nil, true, "compile filter"},
		{"bad disabled filter", Request{DisabledFilter: "uid"}, nil, true, "disabled filter"},
		{"callback error", Request{}, func(Entry) error { return stop }, false, "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := tt.fn
			if fn == nil {
				fn = func(Entry) error { return nil }
			}
			err := d.Search(context.Background(), tt.req, fn)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrFailClosed) != tt.failClosed {
				t.Errorf("err = %v, want containing %q (fail closed %v)", err, tt.want, tt.failClosed)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Search(ctx, Request{}, func(Entry) error { return nil }); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrFailClosed) {
		t.Errorf("cancelled search: err = %v", err)
	}
	if _, err := NewLDIF([]byte("dn: a\nchangetype: delete\n"), ""); err == nil {
		t.Error("NewLDIF accepted a change record")
	}
}

func TestGeneratePeople(t *testing.T) {
	var a, b bytes.Buffer
	if err := GeneratePeople(&a, 120, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	if err := GeneratePeople(&b, 120, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("GeneratePeople is not deterministic")
	}
	d, err := NewLDIF(a.Bytes(), "dc=example,dc=com")
	if err != nil {
		t.Fatal(err)
	}
	var n, disabled, nonASCII int
	keys := map[string]bool{}
	err = d.Search(context.Background(), Request{SearchDN: "ou=people", Filter: "(objectClass=inetOrgPerson)",
		DisabledFilter: "(employeeType=disabled)", KeyAttribute: "entryUUID",
		Attributes: []string{"uid", "cn", "givenName", "sn", "mail", "telephoneNumber", "departmentNumber", "employeeType"}},
		func(e Entry) error {
			n++
			if e.Disabled {
				disabled++
			}
			if len(e.Attrs) != 8 {
				t.Errorf("%s has %d attributes", e.DN, len(e.Attrs))
			}
			for _, r := range e.Attrs["cn"][0] {
				if r > 127 {
					nonASCII++
					break
				}
			}
			keys[e.Key] = true
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if n != 120 || disabled != 2 || len(keys) != 120 || nonASCII == 0 {
		t.Errorf("n=%d disabled=%d distinct keys=%d non-ASCII names=%d", n, disabled, len(keys), nonASCII)
	}
}

// BenchmarkLDIFSearch measures NewLDIF plus one full search over 400,000 generated people
// (about 120 MB of LDIF). Besides time and allocations per op it reports live-heap-MB, the
// live heap after construction and a GC, with the LDIF bytes themselves included (the
// caller keeps them), data-MB, the size of those bytes, and construct-s, the time of NewLDIF
// alone (its validation pass).
func BenchmarkLDIFSearch(b *testing.B) {
	const n = 400_000
	var buf bytes.Buffer
	if err := GeneratePeople(&buf, n, "dc=example,dc=com"); err != nil {
		b.Fatal(err)
	}
	data := bytes.Clone(buf.Bytes()) // exactly len(data) bytes, no spare capacity
	buf = bytes.Buffer{}
	b.SetBytes(int64(len(data)))
	benchSearch(b, n, func() (Directory, error) { return NewLDIF(data, "dc=example,dc=com") })
	b.ReportMetric(float64(len(data))/(1<<20), "data-MB")
	runtime.KeepAlive(data)
}

// benchSearch runs b.N times a construction (open) and one full search of the n people
// GeneratePeople makes, and reports ns/entry, construct-s (open alone), live-heap-MB (after
// the first construction and a GC) and max-heap-MB (the heap in use during the first search).
func benchSearch(b *testing.B, n int, open func() (Directory, error)) {
	req := Request{SearchDN: "ou=people", Filter: "(&(objectClass=inetOrgPerson)(mail=*))",
		DisabledFilter: "(employeeType=disabled)", KeyAttribute: "entryUUID",
		Attributes: []string{"uid", "cn", "givenName", "sn", "mail"}}
	var live, maxHeap uint64
	var construct time.Duration
	var ms runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		d, err := open()
		if err != nil {
			b.Fatal(err)
		}
		construct += time.Since(t0)
		if i == 0 {
			b.StopTimer()
			live = liveHeap()
			b.StartTimer()
		}
		count, disabled := 0, 0
		if err := d.Search(context.Background(), req, func(e Entry) error {
			count++
			if e.Disabled {
				disabled++
			}
			if i == 0 && count%20000 == 0 {
				runtime.ReadMemStats(&ms)
				maxHeap = max(maxHeap, ms.HeapInuse)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if count != n || disabled != n/50 {
			b.Fatalf("got %d entries (%d disabled), want %d (%d)", count, disabled, n, n/50)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
	b.ReportMetric(construct.Seconds()/float64(b.N), "construct-s")
	b.ReportMetric(float64(live)/(1<<20), "live-heap-MB")
	b.ReportMetric(float64(maxHeap)/(1<<20), "max-heap-MB")
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
