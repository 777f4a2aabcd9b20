package schema

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"cuelang.org/go/cue"
)

// LoadOptions tune Load.
type LoadOptions struct {
	// CheckPattern, when set, is called with the source of every pattern (template
	// vmr/device/user fields, aliases, email subjects) and of every email body file. An
	// error becomes a repo error at the position of that value; when the error has a
	// method Position() (line, col int) giving a 1-based place inside the pattern, that
	// offset is added.
	CheckPattern func(src string) error
}

// MaxEmailBody is the largest email body file accepted, in bytes (Pexip's limit).
const MaxEmailBody = 24576

// maxErrorsPerFile bounds the errors reported for one CSV file, so a wrong file does not
// bury everything else.
const maxErrorsPerFile = 1000

// Load reads and validates the desired-state repository (SPEC §3) from fsys, the root of
// the repository (a Git tree or a working folder). The state is read from the folder
// cfg.Repo.Path inside it ("" or "." = the root); error paths are relative to the
// repository root, so they match what a reviewer sees. Email body files and LDIF files
// (config.cue `ldif:`) are paths relative to that state folder.
//
// cfg may be nil (no directories or SMTP servers are known then, and the checks that
// need them are skipped). Every problem is reported, as an ErrorList sorted by path, line
// and column; the Repo is returned as far as it could be built even when there are errors,
// for inspection only.
func Load(fsys fs.FS, cfg *Config, opts LoadOptions) (repo *Repo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = ErrorList{{Msg: fmt.Sprintf("internal error while loading the repository: %v\n%s", r, debug.Stack())}}
		}
	}()
	l := &loader{
		fsys: fsys,
		cfg:  cfg,
		opts: opts,
		raw:  map[string][]byte{},
		repo: &Repo{EmailBodies: map[string]string{}, LDIF: map[string]func() (io.ReadCloser, error){}},
	}
	if cfg != nil && cfg.Repo.Path != "" && path.Clean(cfg.Repo.Path) != "." {
		p := strings.Trim(path.Clean(strings.ReplaceAll(cfg.Repo.Path, "\\", "/")), "/")
		sub, err := fs.Sub(fsys, p)
		if err != nil {
			return nil, ErrorList{{Msg: fmt.Sprintf("repo.path %q: %v", cfg.Repo.Path, err)}}
		}
		if _, err := fs.Stat(fsys, p); err != nil {
			return nil, ErrorList{{Path: p, Msg: "repo.path of config.cue names a folder that does not exist in the repository"}}
		}
		l.fsys = sub
		l.prefix = p + "/"
	}
	s, err := newSchemaSet("repo.cue")
	if err != nil {
		return nil, err
	}
	l.s = s
	l.load()
	return l.repo, l.errs.Err()
}

type loader struct {
	fsys   fs.FS
	prefix string
	cfg    *Config
	opts   LoadOptions
	s      *schemaSet
	errs   ErrorList
	repo   *Repo
	raw    map[string][]byte // display path → content of YAML/CUE files, for pattern offsets

	// templatesBroken is set when a template file failed to load: checks that depend on
	// every template (overrides, reminders) are then relaxed to avoid cascading errors.
	templatesBroken bool
	templateNames   map[string]bool // names seen, including in files with errors
}

func (l *loader) display(rel string) string { return l.prefix + rel }

func (l *loader) errorf(pos Pos, format string, args ...any) {
	l.errs = append(l.errs, Errorf(pos, format, args...))
}

func (l *loader) load() {
	l.loadSettings()
	l.loadTrackingCodes()
	l.loadTemplates()
	l.loadDeclared()
	l.loadUsers()
	l.loadInvites()
	l.loadOverrides()
	l.loadReminders()
	l.loadAnnouncements()
	l.loadLDIF()
}

// ignorable reports whether a file name is documentation or hidden, never an error.
func ignorable(name string) bool {
	up := strings.ToUpper(name)
	return strings.HasPrefix(name, ".") || strings.HasPrefix(up, "README") || strings.HasPrefix(up, "LICENSE")
}

func isDataFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".cue")
}

// findOne finds base.yaml, base.yml or base.cue at the top level; "" if none.
func (l *loader) findOne(base string) string {
	var found []string
	for _, ext := range []string{".cue", ".yaml", ".yml"} {
		if _, err := fs.Stat(l.fsys, base+ext); err == nil {
			found = append(found, base+ext)
		}
	}
	if len(found) > 1 {
		l.errorf(Pos{Path: l.display(found[1])}, "both %s and %s exist; keep one", found[0], found[1])
	}
	if len(found) == 0 {
		return ""
	}
	return found[0]
}

// listDir lists the files of dir that satisfy want, sorted; other files (except README and
// dotfiles) are errors. A missing dir is empty.
func (l *loader) listDir(dir string, want func(string) bool, what string) []string {
	ents, err := fs.ReadDir(l.fsys, dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || ignorable(e.Name()) {
			continue
		}
		if !want(e.Name()) {
			l.errorf(Pos{Path: l.display(dir + "/" + e.Name())}, "unexpected file in %s/: want %s", dir, what)
			continue
		}
		out = append(out, dir+"/"+e.Name())
	}
	return out
}

// parseFile reads a YAML/CUE file and checks it against def; ok is false when the file
// has errors (they are recorded).
func (l *loader) parseFile(rel, def string) (v, data cue.Value, ok bool) {
	display := l.display(rel)
	b, err := fs.ReadFile(l.fsys, rel)
	if err != nil {
		l.errorf(Pos{Path: display}, "cannot read: %v", err)
		return v, data, false
	}
	if !utf8.Valid(b) {
		line, col := invalidUTF8At(b)
		l.errorf(Pos{Path: display, Line: line, Col: col}, "file is not valid UTF-8")
		return v, data, false
	}
	l.raw[display] = b
	data, errs := l.s.parseData(display, b)
	if len(errs) > 0 {
		l.errs = append(l.errs, errs...)
		return v, data, false
	}
	if def == "" {
		return data, data, true
	}
	v, errs = l.s.check(def, display, data)
	if len(errs) > 0 {
		l.errs = append(l.errs, errs...)
		return v, data, false
	}
	return v, data, true
}

func invalidUTF8At(b []byte) (line, col int) {
	line, col = 1, 1
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col += size
		}
		i += size
	}
	return line, col
}

// decode exports a checked value into dst through JSON (the Go types carry json tags).
func (l *loader) decode(v cue.Value, display string, dst any) bool {
	b, err := v.MarshalJSON()
	if err == nil {
		err = json.Unmarshal(b, dst)
	}
	if err != nil {
		l.errorf(Pos{Path: display, Line: 1}, "cannot decode: %v", err)
		return false
	}
	return true
}

func (l *loader) at(data cue.Value, display, p string) Pos {
	if p == "" {
		return Pos{Path: display, Line: 1, Col: 1}
	}
	v := data.LookupPath(cue.ParsePath(p))
	if !v.Exists() {
		return Pos{Path: display, Line: 1, Col: 1}
	}
	return toPos(keyPos(v), display)
}

func (l *loader) valAt(data cue.Value, display, p string) Pos {
	v := data.LookupPath(cue.ParsePath(p))
	if !v.Exists() {
		return l.at(data, display, "")
	}
	return toPos(valuePos(v), display)
}

// ---- settings ----

func (l *loader) loadSettings() {
	st := &l.repo.Settings
	rel := l.findOne("settings")
	if rel == "" {
		l.decode(l.s.def("#Settings").Unify(l.s.ctx.CompileString("{}")), "settings.yaml", st)
		st.Pos = Pos{Path: l.display("settings.yaml")}
		return
	}
	display := l.display(rel)
	v, data, ok := l.parseFile(rel, "#Settings")
	if !ok || !l.decode(v, display, st) {
		// Keep the defaults so later checks (invites) still run.
		l.decode(l.s.def("#Settings").Unify(l.s.ctx.CompileString("{}")), display, st)
		st.Pos = Pos{Path: display, Line: 1, Col: 1}
		return
	}
	st.Pos = Pos{Path: display, Line: 1, Col: 1}
	for i, a := range st.Admins {
		if !validEmail(a) {
			l.errorf(l.valAt(data, display, fmt.Sprintf("admins[%d]", i)), "admins[%d]: %q is not a valid email address", i, a)
		}
	}
	st.FieldPos = map[string]Pos{}
	l.checkSMTP(data, display, "emails.smtp_server", st.Emails.SMTPServer)
	for _, k := range []struct {
		name string
		e    *EmailPattern
	}{{"activation", st.Emails.Activation}, {"invite", st.Emails.Invite}, {"admin_summary", st.Emails.AdminSummary}} {
		if k.e != nil {
			l.emailPattern(data, display, "emails."+k.name, k.e, st.FieldPos)
		}
	}
}

func (l *loader) checkSMTP(data cue.Value, display, p, name string) {
	if name == "" || l.cfg == nil {
		return
	}
	if _, ok := l.cfg.SMTP[name]; !ok {
		known := sortedKeys(l.cfg.SMTP)
		hint := "config.cue names no smtp servers (emails then go to mail_dir)"
		if len(known) > 0 {
			hint = "config.cue has: " + strings.Join(known, ", ")
		}
		l.errorf(l.valAt(data, display, p), "%s: unknown SMTP server %q; %s", p, name, hint)
	}
}

// emailPattern checks a subject pattern and its body file, and records their positions.
func (l *loader) emailPattern(data cue.Value, display, p string, e *EmailPattern, fieldPos map[string]Pos) {
	sv := data.LookupPath(cue.ParsePath(p + ".subject"))
	fieldPos[p+".subject"] = toPos(valuePos(sv), display)
	fieldPos[p+".body_file"] = l.valAt(data, display, p+".body_file")
	if strings.ContainsAny(e.Subject, "\r\n") {
		l.errorf(fieldPos[p+".subject"], "%s.subject: must be one line", p)
	}
	l.pattern(display, p+".subject", sv, e.Subject)
	l.bodyFile(fieldPos[p+".body_file"], p+".body_file", e)
}

// bodyFile checks and reads e's body file into EmailBodies; it reports whether it is there.
func (l *loader) bodyFile(pos Pos, field string, e *EmailPattern) bool {
	bf := e.BodyFile
	if strings.HasPrefix(bf, "/") || strings.HasPrefix(bf, "\\") || hasDotDot(bf) || strings.Contains(bf, ":") && len(bf) > 1 && bf[1] == ':' {
		l.errorf(pos, "%s: %q must be a path inside the repository, relative to it, without .. (e.g. emails/vmr.html)", field, bf)
		return false
	}
	clean := path.Clean(strings.ReplaceAll(bf, "\\", "/"))
	e.BodyFile = clean
	if _, done := l.repo.EmailBodies[clean]; done {
		return true
	}
	b, err := fs.ReadFile(l.fsys, clean)
	if err != nil {
		l.errorf(pos, "%s: %s does not exist in the repository", field, l.display(clean))
		return false
	}
	display := l.display(clean)
	if len(b) > MaxEmailBody {
		l.errorf(pos, "%s: %s is %d bytes; an email body may be at most %d bytes", field, display, len(b), MaxEmailBody)
		return false
	}
	if !utf8.Valid(b) {
		line, col := invalidUTF8At(b)
		l.errorf(Pos{Path: display, Line: line, Col: col}, "email body is not valid UTF-8")
		return false
	}
	body := string(b)
	l.repo.EmailBodies[clean] = body
	if l.opts.CheckPattern != nil {
		if err := safeCheck(l.opts.CheckPattern, body); err != nil {
			line, col := 1, 0
			if pl, pc := patternErrPos(err); pl > 0 {
				line, col = pl, pc
			}
			l.errorf(Pos{Path: display, Line: line, Col: col}, "%s", patternMsg(err))
		}
	}
	return true
}

func safeCheck(fn func(string) error, src string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pattern checker failed: %v", r)
		}
	}()
	return fn(src)
}

var posPrefixRE = regexp.MustCompile(`^(?:line )?(\d+)(?::(\d+))?: `)

func patternMsg(err error) string {
	return posPrefixRE.ReplaceAllString(err.Error(), "")
}

// patternErrPos is the 1-based place inside a pattern that err points at: from a
// Position() (line, col int) method, or from a "line:col: " prefix of its message.
func patternErrPos(err error) (line, col int) {
	if pe, ok := err.(interface{ Position() (int, int) }); ok {
		return pe.Position()
	}
	if m := posPrefixRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		col, _ = strconv.Atoi(m[2])
	}
	return line, col
}

// pattern passes one pattern value to CheckPattern and reports its error at the place in
// the file (the value's start plus the pattern error's own offset).
func (l *loader) pattern(display, field string, v cue.Value, src string) {
	if l.opts.CheckPattern == nil {
		return
	}
	err := safeCheck(l.opts.CheckPattern, src)
	if err == nil {
		return
	}
	pl, pc := patternErrPos(err)
	l.errorf(l.posIn(display, v, pl, pc), "%s: %s", field, patternMsg(err))
}

// posIn is the place in the file of the 1-based (line, col) inside the string value v;
// line 0 means the value's start.
func (l *loader) posIn(display string, v cue.Value, line, col int) Pos {
	start := valuePos(v)
	pos := toPos(start, display)
	if line > 0 && start.IsValid() {
		pos = l.offsetPos(display, start.Offset(), pos, line, col)
	}
	return pos
}

// offsetPos adds a 1-based (line, col) inside a string value to the value's position in
// the file, allowing for opening quotes and YAML block scalars.
func (l *loader) offsetPos(display string, off int, pos Pos, pl, pc int) Pos {
	raw := l.raw[display]
	if off < 0 || off >= len(raw) || pos.Line == 0 {
		return pos
	}
	switch raw[off] {
	case '"', '\'':
		if off+2 < len(raw) && raw[off+1] == raw[off] && raw[off+2] == raw[off] {
			pos.Col += 3 // CUE multi-line string; content starts on the next line
			return Pos{Path: pos.Path, Line: pos.Line + pl, Col: pc}
		}
		pos.Col++
	case '|', '>':
		// Block scalar: content starts on the next line, after its indentation.
		nl := strings.IndexByte(string(raw[off:]), '\n')
		if nl < 0 {
			return pos
		}
		rest := raw[off+nl+1:]
		indent := 0
		for indent < len(rest) && rest[indent] == ' ' {
			indent++
		}
		return Pos{Path: pos.Path, Line: pos.Line + pl, Col: indent + pc}
	}
	if pl == 1 {
		pos.Col += pc - 1
		return pos
	}
	return Pos{Path: pos.Path, Line: pos.Line + pl - 1, Col: pc}
}

// walkStrings calls fn for every string leaf under v (a data value), with its path.
func walkStrings(v cue.Value, p string, skip map[string]bool, fn func(p string, v cue.Value, s string)) {
	switch v.IncompleteKind() {
	case cue.StructKind:
		it, err := v.Fields()
		if err != nil {
			return
		}
		for it.Next() {
			label := it.Selector().String()
			np := label
			if p != "" {
				np = p + "." + label
			}
			if skip[label] {
				continue
			}
			walkStrings(it.Value(), np, skip, fn)
		}
	case cue.ListKind:
		it, err := v.List()
		if err != nil {
			return
		}
		for i := 0; it.Next(); i++ {
			walkStrings(it.Value(), p+"["+strconv.Itoa(i)+"]", skip, fn)
		}
	case cue.StringKind:
		if s, err := v.String(); err == nil {
			fn(p, v, s)
		}
	}
}

// ---- templates ----

// isPattern reports whether a value is template source rather than a literal.
func isPattern(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%")
}

var notPatterns = map[string]bool{"overridable": true, "license": true}

func (l *loader) loadTemplates() {
	l.templateNames = map[string]bool{}
	files := l.listDir("templates", isDataFile, "one sync template per .yaml, .yml or .cue file")
	byName := map[string]*Template{}
	for _, rel := range files {
		display := l.display(rel)
		v, data, ok := l.parseFile(rel, "#Template")
		if data.Exists() {
			if n, err := data.LookupPath(cue.ParsePath("name")).String(); err == nil {
				l.templateNames[n] = true
			}
		}
		if !ok {
			l.templatesBroken = true
			continue
		}
		t := &Template{}
		if !l.decode(v, display, t) {
			continue
		}
		t.Pos = l.at(data, display, "name")
		t.FieldPos = map[string]Pos{}
		l.checkTemplate(t, data, display)
		if t.Name == "manual" {
			l.errorf(l.valAt(data, display, "name"), "name: \"manual\" is reserved for the VMRs and devices declared in vmrs/ and devices/")
		} else if prev, dup := byName[t.Name]; dup {
			l.errorf(l.valAt(data, display, "name"), "name: template %q is already defined at %s:%d", t.Name, prev.Pos.Path, prev.Pos.Line)
			continue
		}
		byName[t.Name] = t
		l.repo.Templates = append(l.repo.Templates, t)
	}
	sort.Slice(l.repo.Templates, func(i, j int) bool { return l.repo.Templates[i].Name < l.repo.Templates[j].Name })
}

func (l *loader) checkTemplate(t *Template, data cue.Value, display string) {
	if l.cfg != nil {
		if _, ok := l.cfg.Directories[t.Source]; !ok {
			known := sortedKeys(l.cfg.Directories)
			hint := "config.cue defines no directories"
			if len(known) > 0 {
				hint = "config.cue defines: " + strings.Join(known, ", ")
			}
			l.errorf(l.valAt(data, display, "source"), "source: unknown directory %q; %s", t.Source, hint)
		}
	}
	need := func(flag string, on, present bool, section string) {
		if on && !present {
			l.errorf(l.valAt(data, display, flag), "%s is true but the template has no %s: section", flag, section)
		}
	}
	need("sync_vmrs", t.SyncVMRs, t.VMR != nil, "vmr")
	need("sync_devices", t.SyncDevices, t.Device != nil, "device")
	need("sync_users", t.SyncUsers, t.User != nil, "user")

	// Every string under vmr/device/user is a pattern.
	for _, sec := range []string{"vmr", "device", "user"} {
		sv := data.LookupPath(cue.ParsePath(sec))
		if !sv.Exists() {
			continue
		}
		walkStrings(sv, sec, notPatterns, func(p string, v cue.Value, s string) {
			t.FieldPos[p] = toPos(valuePos(v), display)
			l.pattern(display, p, v, s)
		})
	}
	l.ldapFilter(data, display, "user_filter", t.UserFilter)
	l.ldapFilter(data, display, "disabled_filter", t.DisabledFilter)
	// Patterns are checked once rendered (the render stage calls the same rules).
	if t.VMR != nil {
		l.violations(data, display, "vmr.", VMRViolations(&t.VMR.VMR, isPattern))
		l.literalEmail(data, display, "vmr.primary_owner_email_address", t.VMR.OwnerEmail)
	}
	if t.Device != nil {
		l.violations(data, display, "device.", DeviceViolations(&t.Device.Device, isPattern))
		l.literalEmail(data, display, "device.primary_owner_email_address", t.Device.OwnerEmail)
	}
	if u := t.User; u != nil {
		l.literalEmail(data, display, "user.email", u.Email)
		if u.Language != "" && !isPattern(u.Language) {
			if c, ok := languageOf(u.Language); ok {
				u.Language = c
			} else {
				l.errorf(l.valAt(data, display, "user.language"), "user.language: %q is not a WebEx language; use one of %s", u.Language, strings.Join(Languages, ", "))
			}
		}
		if u.TimeZone != "" && !isPattern(u.TimeZone) && !timeZoneSet[u.TimeZone] {
			l.errorf(l.valAt(data, display, "user.time_zone"), "user.time_zone: %q is not a WebEx time zone (e.g. London, New York, Berlin, Tokyo)", u.TimeZone)
		}
		if u.HostPrivilege != "" && !isPattern(u.HostPrivilege) {
			if hp := strings.ToUpper(u.HostPrivilege); hp == "ADMN" || hp == "HOST" {
				u.HostPrivilege = hp
			} else {
				l.errorf(l.valAt(data, display, "user.host_privilege"), "user.host_privilege: %q is not ADMN or HOST", u.HostPrivilege)
			}
		}
		for slot := range u.Tracking {
			if g := l.trackingGroup(slot); g != nil && g.Usage == "not_used" {
				l.errorf(l.at(data, display, "user.tracking."+slot), "user.tracking.%s: tracking code group %s (%q) is not_used in tracking-codes.yaml", slot, slot, g.Name)
			}
		}
	}
	e := &t.Emails
	l.checkSMTP(data, display, "emails.smtp_server", e.SMTPServer)
	if e.VMR != nil {
		l.emailPattern(data, display, "emails.vmr", e.VMR, t.FieldPos)
	}
	if e.Device != nil {
		l.emailPattern(data, display, "emails.device", e.Device, t.FieldPos)
	}
	if e.Send {
		if t.SyncVMRs && e.VMR == nil {
			l.errorf(l.valAt(data, display, "emails.send"), "emails.send is true and the template syncs VMRs, but emails.vmr (subject and body_file) is missing")
		}
		if t.SyncDevices && e.Device == nil {
			l.errorf(l.valAt(data, display, "emails.send"), "emails.send is true and the template syncs devices, but emails.device (subject and body_file) is missing")
		}
	}
}

// literalEmail checks an email field that is not a pattern.
func (l *loader) literalEmail(data cue.Value, display, p, s string) {
	if !isPattern(s) {
		l.email(data, display, p, s)
	}
}

// email checks an optional email address.
func (l *loader) email(data cue.Value, display, p, s string) {
	if s != "" && !validEmail(s) {
		l.errorf(l.valAt(data, display, p), "%s: %q is not a valid email address", p, s)
	}
}

// violations reports the broken value rules of the object at prefix (see rules.go).
func (l *loader) violations(data cue.Value, display, prefix string, vs []Violation) {
	for _, v := range vs {
		l.errorf(l.valAt(data, display, prefix+v.Field), "%s%s: %v", prefix, v.Field, v.Err)
	}
}

// ldapFilter checks a filter with go-ldap's compiler, at the place of the problem when the
// compiler names one.
func (l *loader) ldapFilter(data cue.Value, display, field, filter string) {
	off, err := CheckLDAPFilter(filter)
	if err == nil {
		return
	}
	line := 0
	if off >= 0 {
		line = 1
	}
	l.errorf(l.posIn(display, data.LookupPath(cue.ParsePath(field)), line, off+1), "%s: %v", field, err)
}

// ---- declared VMRs and devices ----

func (l *loader) loadDeclared() {
	vmrNames := map[string]Pos{}
	aliases := map[string]Pos{}
	// claim records an alias, or reports it used twice (ignoring case).
	claim := func(alias string, pos Pos, field string) bool {
		k := strings.ToLower(alias)
		if prev, dup := aliases[k]; dup {
			l.errorf(pos, "%s: alias %q is already used at %s:%d", field, alias, prev.Path, prev.Line)
			return false
		}
		aliases[k] = pos
		return true
	}
	eachDeclared(l, "vmrs", "#VMR", "VMRs", func(d *DeclaredVMR, it declItem, display string) {
		p := it.prefix
		d.Pos = l.at(it.data, display, p+"name")
		if d.Pos.Line == 1 && d.Pos.Col == 1 && p != "" {
			d.Pos = l.at(it.data, display, strings.TrimSuffix(p, "."))
		}
		if prev, dup := vmrNames[d.Name]; dup {
			l.errorf(l.valAt(it.data, display, p+"name"), "%sname: VMR %q is already declared at %s:%d", p, d.Name, prev.Path, prev.Line)
			return
		}
		vmrNames[d.Name] = d.Pos
		for i, a := range d.Aliases {
			f := fmt.Sprintf("%saliases[%d]", p, i)
			claim(a, l.valAt(it.data, display, f), f)
		}
		d.FieldPos = l.declared(it, display, VMRViolations(&d.VMR, nil), d.OwnerEmail, d.Emails)
		l.repo.VMRs = append(l.repo.VMRs, d)
	})
	eachDeclared(l, "devices", "#Device", "devices", func(d *DeclaredDevice, it declItem, display string) {
		p := it.prefix
		d.Pos = l.at(it.data, display, p+"alias")
		if !claim(d.Alias, l.valAt(it.data, display, p+"alias"), p+"alias") {
			return
		}
		d.FieldPos = l.declared(it, display, DeviceViolations(&d.Device, nil), d.OwnerEmail, d.Emails)
		l.repo.Devices = append(l.repo.Devices, d)
	})
}

// eachDeclared decodes every object of the files in dir (vmrs or devices) and passes it to fn.
func eachDeclared[T any](l *loader, dir, def, what string, fn func(d *T, it declItem, display string)) {
	for _, rel := range l.listDir(dir, isDataFile, what+" in .yaml, .yml or .cue files") {
		display := l.display(rel)
		for _, it := range l.declaredItems(rel, def) {
			d := new(T)
			if l.decode(it.v, display, d) {
				fn(d, it, display)
			}
		}
	}
}

// declared checks what declared VMRs and devices share: the value rules, the owner's
// address and the emails; it returns the positions of the email fields.
func (l *loader) declared(it declItem, display string, vs []Violation, owner string, m *DeclaredMail) map[string]Pos {
	l.violations(it.data, display, it.prefix, vs)
	l.email(it.data, display, it.prefix+"primary_owner_email_address", owner)
	fieldPos := map[string]Pos{}
	l.declaredMail(it.data, display, it.prefix, m, owner, fieldPos)
	return fieldPos
}

type declItem struct {
	v, data cue.Value
	prefix  string // "" for a file holding one object, "[i]." for a list
}

// declaredItems reads a vmrs/ or devices/ file holding one object or a list of them.
func (l *loader) declaredItems(rel, def string) []declItem {
	_, data, ok := l.parseFile(rel, "")
	if !ok {
		return nil
	}
	display := l.display(rel)
	if data.IncompleteKind() == cue.ListKind {
		v, errs := l.s.check(def+"List", display, data)
		if len(errs) > 0 {
			l.errs = append(l.errs, errs...)
			return nil
		}
		var out []declItem
		it, _ := v.List()
		for i := 0; it.Next(); i++ {
			out = append(out, declItem{v: it.Value(), data: data, prefix: "[" + strconv.Itoa(i) + "]."})
		}
		return out
	}
	v, errs := l.s.check(def, display, data)
	if len(errs) > 0 {
		l.errs = append(l.errs, errs...)
		return nil
	}
	return []declItem{{v: v, data: data}}
}

func (l *loader) declaredMail(data cue.Value, display, p string, m *DeclaredMail, owner string, fieldPos map[string]Pos) {
	if m == nil {
		return
	}
	l.checkSMTP(data, display, p+"emails.smtp_server", m.SMTPServer)
	if m.Email != nil {
		tmp := map[string]Pos{}
		l.emailPattern(data, display, p+"emails.email", m.Email, tmp)
		for k, v := range tmp {
			fieldPos[strings.TrimPrefix(k, p)] = v
		}
	}
	if m.Send && m.Email == nil {
		l.errorf(l.valAt(data, display, p+"emails.send"), "%semails.send is true but emails.email (subject and body_file) is missing", p)
	}
	if m.Send && owner == "" {
		l.errorf(l.valAt(data, display, p+"emails.send"), "%semails.send is true but primary_owner_email_address is empty: there is no one to email", p)
	}
}
