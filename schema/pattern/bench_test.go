package pattern

import (
	"fmt"
	"testing"
)

// vmrPatternSet is one VMR's full pattern set, as in the SPEC's staff template.
var vmrPatternSet = []struct{ field, src string }{
	{"name", "{{givenName}} {{sn}} VMR"},
	{"description", "Personal room of {{cn}}"},
	{"alias0", "meet.{{givenName|lower}}.{{sn|lower}}@example.com"},
	{"alias1", "{{telephoneNumber|pex_clean_phone_number|pex_tail(6)}}"},
	{"alias2", "{{mail}}"},
	{"alias3", "{{ uid|lower }}@video.example.com"},
	{"pin", "{{ ''|pex_random_pin(6) }}"},
	{"guest_pin", "{{ ''|pex_random_pin(4) }}"},
	{"primary_owner_email_address", "{{mail}}"},
}

func BenchmarkRenderVMRPatternSet(b *testing.B) {
	e := NewEnv(Options{SecretKey: []byte("bench-key")})
	tpls := make([]*Template, len(vmrPatternSet))
	for i, p := range vmrPatternSet {
		t, err := e.Compile(p.field, p.src)
		if err != nil {
			b.Fatal(err)
		}
		tpls[i] = t
	}
	const entries = 1000
	vars := make([]Vars, entries)
	keys := make([]string, entries)
	for i := range vars {
		keys[i] = fmt.Sprintf("uid=user%d,ou=people,dc=example,dc=com", i)
		vars[i] = FromAttrs(map[string][]string{
			"givenName":        {fmt.Sprintf("Given%d", i)},
			"sn":               {fmt.Sprintf("Surname%d", i)},
			"cn":               {fmt.Sprintf("Given%d Surname%d", i, i)},
			"mail":             {fmt.Sprintf("user%d@example.com", i)},
			"uid":              {fmt.Sprintf("User%d", i)},
			"telephoneNumber":  {fmt.Sprintf("+44 20 7946 %04d", i)},
			"objectClass":      {"top", "person", "organizationalPerson", "inetOrgPerson"},
			"departmentNumber": {"42"},
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		i := n % entries
		for k, t := range tpls {
			if _, err := t.Render(vars[i], Seed{Template: "staff", EntryKey: keys[i], Field: vmrPatternSet[k].field}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(tpls)), "ns/pattern")
}

func BenchmarkRenderEach(b *testing.B) {
	e := NewEnv(Options{SecretKey: []byte("bench-key")})
	v := FromAttrs(map[string][]string{"givenName": {"Alice"}, "sn": {"Parkes"}, "cn": {"Alice Parkes"}, "mail": {"a@example.com"}, "uid": {"ap"}, "telephoneNumber": {"+44 20 7946 0958"}})
	for _, p := range vmrPatternSet {
		t, err := e.Compile(p.field, p.src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.field, func(b *testing.B) {
			b.ReportAllocs()
			for n := 0; n < b.N; n++ {
				if _, err := t.Render(v, Seed{"staff", "uid=a", p.field}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
