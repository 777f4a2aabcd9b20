package schema

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"cuelang.org/go/cue"
)

// LoadConfig reads roster's own configuration (config.cue, SPEC §2), unifies it with the
// embedded schema (defaults and constraints) and decodes it. Problems in the file are
// returned as an ErrorList with path:line:col positions; an unreadable file as a plain error.
// Config.Dir is set to the folder the file is in.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (*Config, error) {
	s, err := newSchemaSet("config.cue")
	if err != nil {
		return nil, err
	}
	display := path
	dv := s.ctx.CompileBytes(data, cue.Filename(display))
	if err := dv.Err(); err != nil {
		return nil, syntaxErrors(display, err).Err()
	}
	v, errs := s.check("#Config", display, dv)
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	b, err := v.MarshalJSON()
	if err != nil {
		return nil, ErrorList{{Path: display, Line: 1, Msg: fmt.Sprintf("cannot export configuration: %v", err)}}.Err()
	}
	cfg := &Config{}
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, ErrorList{{Path: display, Line: 1, Msg: fmt.Sprintf("cannot decode configuration: %v", err)}}.Err()
	}
	if abs, err := filepath.Abs(filepath.Dir(path)); err == nil {
		cfg.Dir = abs
	} else {
		cfg.Dir = filepath.Dir(path)
	}
	if cfg.Directories == nil {
		cfg.Directories = map[string]DirConfig{}
	}
	if cfg.SMTP == nil {
		cfg.SMTP = map[string]SMTPConfig{}
	}
	at := func(p string) Pos {
		return toPos(keyPos(dv.LookupPath(cue.ParsePath(p))), display)
	}
	var list ErrorList
	for _, name := range sortedKeys(cfg.Directories) {
		d := cfg.Directories[name]
		p := "directories." + quoteLabel(name)
		switch {
		case d.URL == "" && d.LDIF == "":
			list = append(list, Errorf(at(p), "%s: set one of url (an LDAP server) or ldif (a file in the repo)", p))
		case d.URL != "" && d.LDIF != "":
			list = append(list, Errorf(at(p+".ldif"), "%s: set url or ldif, not both", p))
		}
		if d.StartTLS && strings.HasPrefix(d.URL, "ldaps://") {
			list = append(list, Errorf(at(p+".start_tls"), "%s.start_tls: only with an ldap:// url (ldaps:// is already TLS)", p))
		}
		if d.FullRead.Duration <= 0 {
			list = append(list, Errorf(at(p+".full_read"), "%s.full_read: %s must be a positive duration, such as \"24h\"", p, d.FullRead.Duration))
		}
		if d.LDIF != "" && (strings.HasPrefix(d.LDIF, "/") || hasDotDot(d.LDIF)) {
			list = append(list, Errorf(at(p+".ldif"), "%s.ldif: %q must be a path inside the desired-state repository (no leading / or ..)", p, d.LDIF))
		}
	}
	for _, name := range sortedKeys(cfg.SMTP) {
		sc := cfg.SMTP[name]
		p := "smtp." + quoteLabel(name)
		if _, err := mail.ParseAddress(sc.From); err != nil {
			list = append(list, Errorf(at(p+".from"), "%s.from: %q is not an email address", p, sc.From))
		}
	}
	list = append(list, checkPlatforms(cfg, at)...)
	return cfg, list.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quoteLabel writes a map key as a CUE path label.
func quoteLabel(s string) string {
	if s == "" {
		return `""`
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		if part == ".." {
			return true
		}
	}
	return false
}
