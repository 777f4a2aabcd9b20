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

// benchTemplatePatterns are the patterns of reconcile's benchTemplate (a
// VMR, a device and a user per entry), literals included.
var benchTemplatePatterns = []struct{ field, src string }{
	{"vmr.name", "{{cn}} VMR"},
	{"vmr.description", "Personal room of {{cn}}"},
	{"vmr.aliases[0]", "{{uid}}@vc.example.com"},
	{"vmr.aliases[1]", "{{telephoneNumber|pex_clean_phone_number|pex_tail(7)}}"},
	{"vmr.pin", "{{ ''|pex_random_pin(6) }}"},
	{"vmr.tag", "staff"},
	{"vmr.primary_owner_email_address", "{{mail}}"},
	{"device.alias", "{{mail|replace('@example.com', '@dev.example.com')}}"},
	{"device.description", "Soft client of {{cn}}"},
	{"device.username", "{{uid}}"},
	{"device.password", "{{ ''|pex_random_pin(12) }}"},
	{"device.tag", "staff"},
	{"device.primary_owner_email_address", "{{mail}}"},
	{"user.first_name", "{{givenName}}"},
	{"user.last_name", "{{sn}}"},
	{"user.email", "{{mail}}"},
	{"user.language", "en-us"},
	{"user.time_zone", "London"},
	{"user.license", "paid"},
}

// benchEntries are directory entries shaped like reconcile/directory's
// generated people.
func benchEntries(n int) ([]map[string][]string, []string) {
	attrs := make([]map[string][]string, n)
	keys := make([]string, n)
	for i := range attrs {
		uid := fmt.Sprintf("u%d", i)
		keys[i] = fmt.Sprintf("entry-uuid-%08d", i)
		attrs[i] = map[string][]string{
			"objectClass":      {"inetOrgPerson"},
			"uid":              {uid},
			"cn":               {fmt.Sprintf("Given%d Surname%d %s", i%97, i%89, uid)},
			"givenName":        {fmt.Sprintf("Given%d", i%97)},
			"sn":               {fmt.Sprintf("Surname%d", i%89)},
			"mail":             {uid + "@example.com"},
			"telephoneNumber":  {fmt.Sprintf("+1 555 %07d", i)},
			"departmentNumber": {"42"},
			"employeeType":     {"staff"},
			"entryUUID":        {keys[i]},
		}
	}
	return attrs, keys
}

func compileBench(b *testing.B, e *Env, set []struct{ field, src string }) []*Template {
	tpls := make([]*Template, len(set))
	for i, p := range set {
		t, err := e.Compile(p.field, p.src)
		if err != nil {
			b.Fatal(err)
		}
		tpls[i] = t
	}
	return tpls
}

// BenchmarkRenderBenchTemplate renders every pattern of one entry per
// iteration, starting from its directory attributes (as reconcile does).
func BenchmarkRenderBenchTemplate(b *testing.B) {
	e := NewEnv(Options{SecretKey: []byte("bench-key")})
	tpls := compileBench(b, e, benchTemplatePatterns)
	const entries = 1000
	attrs, keys := benchEntries(entries)
	b.Run("FromAttrs+Render", func(b *testing.B) {
		b.ReportAllocs()
		for n := 0; n < b.N; n++ {
			i := n % entries
			vars := FromAttrs(attrs[i])
			for k, t := range tpls {
				if _, err := t.Render(vars, Seed{Template: "staff", EntryKey: keys[i], Field: benchTemplatePatterns[k].field}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/entry")
	})
}

// BenchmarkRenderBenchTemplateAttrs is BenchmarkRenderBenchTemplate through
// RenderAttrs, which reconcile uses: no Vars are built.
func BenchmarkRenderBenchTemplateAttrs(b *testing.B) {
	e := NewEnv(Options{SecretKey: []byte("bench-key")})
	tpls := compileBench(b, e, benchTemplatePatterns)
	const entries = 1000
	attrs, keys := benchEntries(entries)
	b.ReportAllocs()
	for n := 0; n < b.N; n++ {
		i := n % entries
		for k, t := range tpls {
			if _, err := t.RenderAttrs(attrs[i], Seed{Template: "staff", EntryKey: keys[i], Field: benchTemplatePatterns[k].field}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/entry")
}

// BenchmarkRenderBenchTemplateAttrsDN adds the entry's dn as an extra value,
// as reconcile does.
func BenchmarkRenderBenchTemplateAttrsDN(b *testing.B) {
	e := NewEnv(Options{SecretKey: []byte("bench-key")})
	tpls := compileBench(b, e, benchTemplatePatterns)
	const entries = 1000
	attrs, keys := benchEntries(entries)
	b.ReportAllocs()
	for n := 0; n < b.N; n++ {
		i := n % entries
		extra := Vars{"dn": "uid=" + attrs[i]["uid"][0] + ",ou=people,dc=example,dc=com"}
		for k, t := range tpls {
			if _, err := t.RenderAttrsWith(attrs[i], extra, Seed{Template: "staff", EntryKey: keys[i], Field: benchTemplatePatterns[k].field}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/entry")
}

// realisticPatterns are the patterns of a Pexip-style estate's template (the
// realistic profile of issue 17): format(), pex_regex_replace, default(),
// truncate, pex_clean_phone_number|pex_tail, lower and upper, PINs, three
// aliases, a device and a directory user with tracking codes.
var realisticPatterns = []struct{ field, src string }{
	{"vmr.name", `{{ "%s %s"|format(givenName, sn)|truncate(40) }} VMR`},
	{"vmr.description", `Personal room of {{ cn|default("a colleague") }}`},
	{"vmr.aliases[0]", `{{ "%s.%s"|format(givenName, sn)|lower|pex_regex_replace("[^a-z0-9.]", "") }}@vc.example.com`},
	{"vmr.aliases[1]", `{{ mail|default(uid)|lower }}`},
	{"vmr.aliases[2]", `{{ telephoneNumber|pex_clean_phone_number|pex_tail(7) }}`},
	{"vmr.pin", `{{ ''|pex_random_pin(6) }}`},
	{"vmr.guest_pin", `{{ ''|pex_random_pin(4) }}`},
	{"vmr.tag", `{{ departmentNumber|default("staff")|upper }}`},
	{"vmr.primary_owner_email_address", `{{ mail|default("") }}`},
	{"device.alias", `{{ mail|default(uid)|pex_regex_replace("@.*$", "") }}.soft@dev.example.com`},
	{"device.description", `Soft client of {{ cn|truncate(30) }}`},
	{"device.username", `{{ uid|lower }}`},
	{"device.password", `{{ ''|pex_random_pin(12) }}`},
	{"device.tag", "staff"},
	{"device.primary_owner_email_address", `{{ mail }}`},
	{"user.first_name", `{{ givenName|default("-") }}`},
	{"user.last_name", `{{ sn|upper }}`},
	{"user.email", `{{ mail }}`},
	{"user.language", "en-us"},
	{"user.time_zone", "London"},
	{"user.host_privilege", "HOST"},
	{"user.license", "paid"},
	{"user.tracking.DIVISION", `{{ departmentNumber|default("0") }}`},
	{"user.tracking.DEPARTMENT", `{{ '%s-%s'|format(departmentNumber, employeeType)|upper }}`},
	{"user.tracking.PROJECT", `{{ title|default("none")|truncate(20, True, "") }}`},
}

// realisticEntries are people of a realistic estate: about 2 % without mail,
// some without a telephone number or a title, names with accents,
// apostrophes and spaces, some long common names.
func realisticEntries(n int) ([]map[string][]string, []string) {
	given := []string{"Alice", "Bjørn", "Chloé", "Dónal", "Eve", "Fatima", "Günther", "Hiro", "Ingrid", "José María"}
	sur := []string{"Parkes", "O'Brien", "Ünal-Ñúñez", "Smith", "van der Berg", "Featherstonehaugh-Cholmondeley", "Li", "Nakamura"}
	attrs, keys := benchEntries(n)
	for i, a := range attrs {
		g, s := given[i%len(given)], sur[i%len(sur)]
		a["givenName"], a["sn"] = []string{g}, []string{s}
		a["cn"] = []string{fmt.Sprintf("%s %s (%s)", g, s, a["uid"][0])}
		a["departmentNumber"] = []string{fmt.Sprintf("D%03d", i%120)}
		if i%50 == 7 {
			delete(a, "mail")
		}
		if i%10 == 3 {
			delete(a, "telephoneNumber")
		}
		if i%4 != 0 {
			a["title"] = []string{fmt.Sprintf("Senior engineer, platform team %d", i%17)}
		}
	}
	return attrs, keys
}

// BenchmarkRenderRealistic renders every pattern of the realistic template
// for one entry per iteration, from its directory attributes and dn, as
// reconcile does; ns/op and allocs/op are per entry.
func BenchmarkRenderRealistic(b *testing.B) {
	e := NewEnv(Options{SecretKey: []byte("bench-key")})
	tpls := compileBench(b, e, realisticPatterns)
	const entries = 1000
	attrs, keys := realisticEntries(entries)
	dns := make([]Vars, entries)
	for i := range dns {
		dns[i] = Vars{"dn": "uid=" + attrs[i]["uid"][0] + ",ou=people,dc=example,dc=com"}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		i := n % entries
		for k, t := range tpls {
			if _, err := t.RenderAttrsWith(attrs[i], dns[i], Seed{Template: "staff", EntryKey: keys[i], Field: realisticPatterns[k].field}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
