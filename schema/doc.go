// Package schema loads and validates what roster should make true: its own configuration
// (config.cue, LoadConfig) and the desired-state repository (Load): settings, sync
// templates, declared VMRs and devices, WebEx user CSVs, Pexip invitation CSVs, tracking
// codes, email templates, overrides and reminders.
//
// YAML and CUE files are checked against embedded CUE definitions (cue/config.cue,
// cue/repo.cue): closed structs, enums, defaults and length limits. CSVs are streamed with
// encoding/csv and checked against the WebEx Meetings Server and Pexip Service rules.
// Cross-file rules (unique names and emails, template sources, SMTP servers, body files,
// overridable fields, reminder targets) are checked in Go. The value rules of VMRs and
// devices (Pexip's limits: lengths, aliases, call rates, PINs) live in rules.go, applied
// here to the values written in the repository and by the render stage to rendered ones;
// LDAP filters are compiled with go-ldap's own compiler. Every problem is reported at
// once as an ErrorList of "path:line:col: message" lines, which is what `roster validate`
// prints. The package knows nothing of Git or SQLite; the pattern language is plugged in
// through LoadOptions.CheckPattern.
package schema
