package schema

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"cuelang.org/go/cue"
)

// ---- tracking codes ----

// trackRule is a tracking group prepared for checking many user rows.
type trackRule struct {
	g      *TrackingGroup
	active map[string]bool
	def    string
}

func (l *loader) trackingBySlot() *[10]*trackRule {
	var out [10]*trackRule
	for _, g := range l.repo.TrackingCodes {
		i := slotIndex(g.Slot)
		if i < 0 {
			continue
		}
		r := &trackRule{g: g, active: map[string]bool{}}
		for _, c := range g.Codes {
			if c.Active {
				r.active[c.Code] = true
				if c.Default {
					r.def = c.Code
				}
			}
		}
		out[i] = r
	}
	return &out
}

func (l *loader) trackingGroup(slot string) *TrackingGroup {
	for _, g := range l.repo.TrackingCodes {
		if g.Slot == slot {
			return g
		}
	}
	return nil
}

func slotIndex(slot string) int {
	for i, s := range TrackingSlots {
		if s == slot {
			return i
		}
	}
	return -1
}

// loadOne reads the top-level file base.yaml, .yml or .cue, checks it against def and
// decodes it into dst; ok is false when there is no such file or it has errors (recorded).
func (l *loader) loadOne(base, def string, dst any) (data cue.Value, display string, ok bool) {
	rel := l.findOne(base)
	if rel == "" {
		return data, "", false
	}
	display = l.display(rel)
	v, data, ok := l.parseFile(rel, def)
	return data, display, ok && l.decode(v, display, dst)
}

func (l *loader) loadTrackingCodes() {
	var tc struct {
		Groups []*TrackingGroup `json:"groups"`
	}
	data, display, ok := l.loadOne("tracking-codes", "#TrackingCodes", &tc)
	if !ok {
		return
	}
	if len(tc.Groups) > 10 {
		l.errorf(l.at(data, display, "groups"), "groups: %d groups; WebEx has at most 10 tracking code groups (one per slot)", len(tc.Groups))
	}
	slots := map[string]Pos{}
	names := map[string]Pos{}
	reserved := map[string]bool{}
	for _, r := range ReservedFieldNames {
		reserved[r] = true
	}
	var good []*TrackingGroup
	for i, g := range tc.Groups {
		p := fmt.Sprintf("groups[%d]", i)
		g.Pos = l.at(data, display, p)
		ok := true
		bad := func(pos Pos, format string, args ...any) {
			l.errorf(pos, p+"."+format, args...)
			ok = false
		}
		if prev, dup := slots[g.Slot]; dup {
			bad(l.valAt(data, display, p+".slot"), "slot: %s is already used at line %d; each slot at most once", g.Slot, prev.Line)
		}
		slots[g.Slot] = g.Pos
		up := strings.ToUpper(strings.TrimSpace(g.Name))
		if reserved[up] {
			bad(l.valAt(data, display, p+".name"), "name: %q is a reserved user field name (%s)", g.Name, strings.Join(ReservedFieldNames, ", "))
		} else if prev, dup := names[up]; dup {
			bad(l.valAt(data, display, p+".name"), "name: %q is already used at line %d; group names must be unique", g.Name, prev.Line)
		}
		names[up] = g.Pos
		if len(g.Codes) > 500 {
			bad(l.at(data, display, p+".codes"), "codes: %d codes; at most 500 per group", len(g.Codes))
		}
		if g.InputMode == "dropdown" && g.Usage != "not_used" && len(g.Codes) == 0 {
			bad(l.at(data, display, p+".input_mode"), "codes: a dropdown group in use (usage %s) needs at least one code", g.Usage)
		}
		defaults := 0
		codes := map[string]int{}
		for j, c := range g.Codes {
			cp := fmt.Sprintf("codes[%d]", j)
			if n := utf8.RuneCountInString(c.Code); n < 1 || n > 128 {
				bad(l.valAt(data, display, p+"."+cp+".code"), "%s.code: %d characters; want 1 to 128", cp, n)
			}
			if prev, dup := codes[c.Code]; dup {
				bad(l.valAt(data, display, p+"."+cp+".code"), "%s.code: %q repeats codes[%d]", cp, c.Code, prev)
			}
			codes[c.Code] = j
			if c.Default {
				defaults++
				if defaults == 2 {
					bad(l.valAt(data, display, p+"."+cp+".default"), "%s.default: a group may have at most one default code", cp)
				}
				if !c.Active {
					bad(l.valAt(data, display, p+"."+cp+".default"), "%s.default: an inactive code cannot be the default", cp)
				}
			}
		}
		if ok {
			good = append(good, g)
		}
	}
	sort.SliceStable(good, func(i, j int) bool { return slotIndex(good[i].Slot) < slotIndex(good[j].Slot) })
	l.repo.TrackingCodes = good
}

// ---- invites ----

func (l *loader) loadInvites() {
	files := l.listDir("invites", func(n string) bool { return strings.HasSuffix(strings.ToLower(n), ".csv") }, "Pexip Service bulk invitations in .csv files (name;email;username)")
	emails := map[string]Pos{}
	users := map[string]Pos{}
	for _, rel := range files {
		l.loadInviteFile(rel, emails, users)
	}
	if paid := l.repo.Settings.Licenses.Paid; paid > 0 && len(l.repo.Invites) > paid {
		l.errorf(Pos{Path: l.repo.Settings.Pos.Path, Line: 1}, "licenses.paid: %d invitations exceed the %d paid licences", len(l.repo.Invites), paid)
	}
}

func (l *loader) loadInviteFile(rel string, emails, users map[string]Pos) {
	br, _, fe, done := l.openCSV(rel)
	defer done()
	if br == nil {
		return
	}
	display := fe.display
	r := csv.NewReader(br)
	r.Comma = ';'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	first := true
	for {
		rec, line, ok := fe.next(r)
		if !ok {
			break
		}
		if first {
			first = false
			if len(rec) == 3 && strings.EqualFold(strings.TrimSpace(rec[0]), "name") &&
				strings.EqualFold(strings.TrimSpace(rec[1]), "email") && strings.EqualFold(strings.TrimSpace(rec[2]), "username") {
				continue // header
			}
		}
		if len(rec) != 3 {
			hint := ""
			if len(rec) == 1 && strings.ContainsAny(rec[0], ",\t") {
				hint = " (the delimiter must be a semicolon)"
			}
			fe.add(line, 0, "want 3 fields name;email;username, found %d%s", len(rec), hint)
			continue
		}
		ok = true
		bad := func(i int, format string, args ...any) {
			_, col := r.FieldPos(i)
			fe.add(line, col, format, args...)
			ok = false
		}
		for i, f := range rec {
			if !utf8.ValidString(f) {
				bad(i, "not valid UTF-8 (save the file as UTF-8)")
				rec[i] = ""
			}
		}
		inv := &InviteRow{Name: strings.TrimSpace(rec[0]), Email: strings.TrimSpace(rec[1]), Username: strings.TrimSpace(rec[2]), Pos: Pos{Path: display, Line: line}}
		if inv.Name == "" {
			bad(0, "name: required")
		} else if utf8.RuneCountInString(inv.Name) > 250 {
			bad(0, "name: at most 250 characters")
		}
		if !validEmail(inv.Email) {
			bad(1, "email: %q is not a valid email address", inv.Email)
		} else if prev, dup := emails[strings.ToLower(inv.Email)]; dup {
			bad(1, "email: %s is already invited at %s:%d", inv.Email, prev.Path, prev.Line)
		}
		local := inv.Username
		if i := strings.IndexByte(local, '@'); i >= 0 {
			local = local[:i]
		}
		switch {
		case inv.Username == "":
			bad(2, "username: required")
		case strings.ContainsAny(inv.Username, " \t"):
			bad(2, "username: %q must not contain spaces", inv.Username)
		case utf8.RuneCountInString(local) < 6 && !l.repo.Settings.DomainHosting:
			bad(2, "username: %q has %d characters before \"@\"; at least 6 are needed unless settings.domain_hosting is true", inv.Username, utf8.RuneCountInString(local))
		default:
			if prev, dup := users[strings.ToLower(inv.Username)]; dup {
				bad(2, "username: %s is already invited at %s:%d", inv.Username, prev.Path, prev.Line)
			}
		}
		if ok {
			emails[strings.ToLower(inv.Email)] = inv.Pos
			users[strings.ToLower(inv.Username)] = inv.Pos
			l.repo.Invites = append(l.repo.Invites, inv)
		}
	}
}

// ---- overrides ----

// VMROverrideFields and DeviceOverrideFields are the field names overrides.yaml may use,
// and the `overridable` names that allow them.
var (
	vmrOverridable = map[string][]string{
		"name": {"name"}, "description": {"description"}, "aliases": {"aliases"},
		"pin_settings":      {"pin", "guest_pin", "allow_guests"},
		"callrate":          {"max_callrate_in", "max_callrate_out"},
		"participant_limit": {"participant_limit"}, "tag": {"tag"},
		"primary_owner_email_address": {"primary_owner_email_address"},
	}
)

func (l *loader) loadOverrides() {
	var raw struct {
		VMRs    map[string]map[string]any `json:"vmrs"`
		Devices map[string]map[string]any `json:"devices"`
	}
	data, display, ok := l.loadOne("overrides", "#Overrides", &raw)
	if !ok {
		return
	}
	vmrAllowed, devAllowed := map[string]bool{}, map[string]bool{}
	for _, t := range l.repo.Templates {
		if t.VMR != nil {
			for _, o := range t.VMR.Overridable {
				for _, f := range vmrOverridable[o] {
					vmrAllowed[f] = true
				}
			}
			if t.Emails.AllowEmailOverride {
				vmrAllowed["primary_owner_email_address"] = true
			}
		}
		if t.Device != nil {
			for _, o := range t.Device.Overridable {
				devAllowed[o] = true
			}
			if t.Emails.AllowEmailOverride {
				devAllowed["primary_owner_email_address"] = true
			}
		}
	}
	declVMR, declDev := map[string]bool{}, map[string]bool{}
	for _, d := range l.repo.VMRs {
		declVMR[d.Name] = true
	}
	for _, d := range l.repo.Devices {
		declDev[strings.ToLower(d.Alias)] = true
	}
	conv := func(kind string, in map[string]map[string]any, allowed map[string]bool, declared func(string) bool, dir string) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, key := range sortedKeys(in) {
			kp := kind + "." + quoteLabel(key)
			if declared(key) {
				l.errorf(l.at(data, display, kp), "%s.%q: declared in %s/; edit it there instead of overriding it", kind, key, dir)
				continue
			}
			fields := map[string]string{}
			for _, f := range sortedKeys(in[key]) {
				fp := kp + "." + quoteLabel(f)
				if !allowed[f] && !l.templatesBroken {
					var names []string
					for n := range allowed {
						names = append(names, n)
					}
					sort.Strings(names)
					hint := "no template lists any overridable field"
					if len(names) > 0 {
						hint = "overridable fields: " + strings.Join(names, ", ")
					}
					l.errorf(l.at(data, display, fp), "%s.%q.%s: no template allows overriding %s (%s)", kind, key, f, f, hint)
					continue
				}
				s, err := overrideValue(f, in[key][f])
				if err != nil {
					l.errorf(l.valAt(data, display, fp), "%s.%q.%s: %v", kind, key, f, err)
					continue
				}
				fields[f] = s
			}
			out[key] = fields
		}
		return out
	}
	l.repo.Overrides.VMRs = conv("vmrs", raw.VMRs, vmrAllowed, func(k string) bool { return declVMR[k] }, "vmrs")
	l.repo.Overrides.Devices = conv("devices", raw.Devices, devAllowed, func(k string) bool { return declDev[strings.ToLower(k)] }, "devices")
}

// overrideValue checks one override and writes it as a string: booleans "true"/"false",
// numbers in decimal, alias lists comma-separated.
func overrideValue(field string, v any) (string, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		s = x.String()
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = fmt.Sprint(p)
			if strings.Contains(parts[i], ",") {
				return "", fmt.Errorf("alias %q contains a comma", parts[i])
			}
		}
		if field != "aliases" {
			return "", fmt.Errorf("a list is only allowed for aliases")
		}
		s = strings.Join(parts, ",")
	default:
		return "", fmt.Errorf("unsupported value %v", v)
	}
	if check := overrideRules[field]; check != nil {
		if err := check(s); err != nil {
			return "", err
		}
	}
	return s, nil
}

// overrideRules check an override by its field: the value rules of rules.go.
var overrideRules = map[string]func(string) error{
	"primary_owner_email_address": func(s string) error {
		if !validEmail(s) {
			return fmt.Errorf("%q is not a valid email address", s)
		}
		return nil
	},
	"aliases": func(s string) error {
		if s == "" {
			return nil // no aliases
		}
		parts := strings.Split(s, ",")
		if err := CheckAliasCount(len(parts)); err != nil {
			return err
		}
		for i, a := range parts {
			if err := CheckAlias(a); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	},
	"allow_guests": func(s string) error {
		if s != "true" && s != "false" {
			return fmt.Errorf("want true or false")
		}
		return nil
	},
	"max_callrate_in":   wholeNumber(CheckCallrate),
	"max_callrate_out":  wholeNumber(CheckCallrate),
	"participant_limit": wholeNumber(CheckParticipantLimit),
	"pin":               CheckPIN,
	"guest_pin":         CheckPIN,
	"name":              CheckName,
	"description":       CheckDescription,
	"tag":               func(s string) error { return checkLength(s, MaxNameChars, "shorten it") },
	"username":          CheckDeviceUsername,
	"password":          CheckDevicePassword,
}

// wholeNumber adapts a rule on a number to an override written as text.
func wholeNumber(check func(int) error) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		return check(n)
	}
}

// ---- reminders ----

func (l *loader) loadReminders() {
	var rs []*Reminder
	data, display, ok := l.loadOne("reminders", "#Reminders", &rs)
	if !ok {
		return
	}
	templates := map[string]bool{}
	var tnames []string
	for _, t := range l.repo.Templates {
		templates[t.Name] = true
		tnames = append(tnames, t.Name)
	}
	ids := map[string]Pos{}
	for i, r := range rs {
		p := fmt.Sprintf("[%d]", i)
		r.Pos = l.at(data, display, p)
		if prev, dup := ids[r.ID]; dup {
			l.errorf(l.valAt(data, display, p+".id"), "%s.id: %q is already used at line %d; reminder ids are unique", p, r.ID, prev.Line)
			continue
		}
		ids[r.ID] = r.Pos
		if r.Template == "" && len(r.VMRs) == 0 && len(r.Devices) == 0 {
			l.errorf(r.Pos, "%s: reminder %q names no template, vmrs or devices", p, r.ID)
			continue
		}
		if r.Template != "" && !templates[r.Template] && !l.templateNames[r.Template] {
			known := "no templates are defined"
			if len(tnames) > 0 {
				known = "templates: " + strings.Join(tnames, ", ")
			}
			l.errorf(l.valAt(data, display, p+".template"), "%s.template: unknown template %q (%s)", p, r.Template, known)
			continue
		}
		l.repo.Reminders = append(l.repo.Reminders, r)
	}
}

// ---- LDIF files named by config.cue ----

func (l *loader) loadLDIF() {
	if l.cfg == nil {
		return
	}
	for _, name := range sortedKeys(l.cfg.Directories) {
		d := l.cfg.Directories[name]
		if d.LDIF == "" || hasDotDot(d.LDIF) || strings.HasPrefix(d.LDIF, "/") {
			continue
		}
		if st, err := fs.Stat(l.fsys, d.LDIF); err != nil || st.IsDir() {
			l.errorf(Pos{Path: l.display(d.LDIF)}, "not found in the repository (named by directories.%s.ldif in config.cue)", quoteLabel(name))
			continue
		}
		fsys, file := l.fsys, d.LDIF
		l.repo.LDIF[d.LDIF] = func() (io.ReadCloser, error) { return fsys.Open(file) }
	}
}
