package reconcile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// OutputOptions choose how a plan is shown.
type OutputOptions struct {
	ShowSecrets bool
}

func maskValue(name string, v any, show bool) any {
	if !show && secretFields[name] && v != "" {
		return mask
	}
	return v
}

// WriteJSON writes the plan in the SPEC §4 JSON shape, secrets masked unless asked. It
// streams: one change is encoded at a time, so a huge plan needs no huge buffer.
func (p *Plan) WriteJSON(w io.Writer, o OutputOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	field := func(name string, v any, last bool) {
		b, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			b = []byte("null")
		}
		fmt.Fprintf(bw, "  %q: %s", name, b)
		if !last {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
	}
	bw.WriteString("{\n")
	field("format_version", p.FormatVersion, false)
	field("commit", p.Commit, false)
	field("state_version", p.StateVersion, false)
	field("summary", p.Summary, false)
	bw.WriteString(`  "changes": [`)
	var line []byte
	for i, c := range p.reused() {
		if i > 0 {
			bw.WriteString(",")
		}
		// One change per line: {"kind": …, "action": …, "key": …, "template": …, "before": {…}, "after": {…}}
		line = append(line[:0], "\n    {\"kind\": "...)
		line = appendJSONString(line, string(c.Kind))
		line = append(line, `, "action": `...)
		line = appendJSONString(line, string(c.Action))
		line = append(line, `, "key": `...)
		line = appendJSONString(line, c.Key)
		line = append(line, `, "template": `...)
		line = appendJSONString(line, c.Template)
		if hasFields(c.oldObj) {
			line = append(line, `, "before": `...)
			line = appendObjectJSON(line, c.oldObj, o.ShowSecrets)
		}
		if c.Action != account.ActionDelete && hasFields(c.newObj) {
			line = append(line, `, "after": `...)
			line = appendObjectJSON(line, c.newObj, o.ShowSecrets)
		}
		line = append(line, '}')
		bw.Write(line)
	}
	if p.Len() > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("],\n")
	// The emails as json.MarshalIndent writes the list, one at a time: a first apply has
	// 1.2 million, a few hundred megabytes as one buffer.
	bw.WriteString(`  "emails": [`)
	for i, e := range p.AllEmails() {
		if i > 0 {
			bw.WriteString(",")
		}
		line = append(line[:0], "\n    {\n      \"to\": "...)
		line = state.AppendJSONString(line, e.To)
		line = append(line, ",\n      \"kind\": "...)
		line = state.AppendJSONString(line, string(e.Kind))
		line = append(line, ",\n      \"action\": "...)
		line = state.AppendJSONString(line, string(e.Action))
		line = append(line, ",\n      \"key\": "...)
		line = state.AppendJSONString(line, e.Key)
		if e.Template != "" {
			line = append(line, ",\n      \"template\": "...)
			line = state.AppendJSONString(line, e.Template)
		}
		line = append(line, "\n    }"...)
		bw.Write(line)
	}
	if p.EmailCount() > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("],\n")
	if len(p.Announcements) > 0 {
		field("announcements", p.Announcements, false)
	}
	field("warnings", p.Warnings, false)
	if len(p.Errors) > 0 {
		field("errors", p.Errors, false)
	}
	field("safety", p.Safety, false)
	field("templates", p.Templates, false)
	if p.Licenses != nil {
		field("licenses", p.Licenses, false)
	}
	field("fingerprint", p.Fingerprint, true)
	bw.WriteString("}\n")
	return bw.Flush()
}

var symbols = map[account.Action]string{account.ActionCreate: "+", account.ActionUpdate: "~", account.ActionDelete: "-", account.ActionDeactivate: "!", account.ActionReactivate: "^"}

// summaryLine is the plan's last line, Terraform style.
func (p *Plan) summaryLine() string {
	s := p.Summary
	line := fmt.Sprintf("Plan: %d to create, %d to update, %d to delete, %d to deactivate", s.Create, s.Update, s.Delete, s.Deactivate)
	if s.Reactivate > 0 {
		line += fmt.Sprintf(", %d to reactivate", s.Reactivate)
	}
	return line + fmt.Sprintf(", %d emails.", s.Emails)
}

func changeTitle(c *Change) string {
	t := fmt.Sprintf("%s %s %q", symbols[c.Action], kindLabel(c.Kind), c.Key)
	if c.Template != "" {
		t += " (" + c.Template + ")"
	}
	return t
}

func kindLabel(k account.Kind) string {
	if k == account.KindTrackingGroup {
		return "tracking group"
	}
	return string(k)
}

func fieldLine(f FieldChange, show bool) string {
	return fmt.Sprintf("%s: %s → %s", f.Name, quote(maskValue(f.Name, f.Old, show)), quote(maskValue(f.Name, f.New, show)))
}

func quote(v any) string {
	return string(appendQuoted(nil, v))
}

// appendQuoted writes v as the text plan shows values: strings Go-quoted, the rest plain.
func appendQuoted(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return strconv.AppendQuote(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case bool:
		return strconv.AppendBool(b, x)
	}
	return fmt.Append(b, v)
}

// createDetail is the one-line detail of a created object.
func createDetail(c *Change, show bool) string {
	var b []byte
	for _, f := range maskFields(c.after(), show) {
		v := f.value
		switch x := v.(type) {
		case string:
			if x == "" {
				continue
			}
		case []string:
			if len(x) == 0 {
				continue
			}
			v = strings.Join(x, ", ")
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(append(b, f.name...), '=')
		b = appendQuoted(b, v)
	}
	return string(b)
}

func emailLine(e *Email) string {
	return fmt.Sprintf("✉ %s %s → %s (%s)", e.Kind, e.Action, e.To, e.Key)
}

// WriteText writes the plan for a terminal: one line per change, warnings, the summary.
func (p *Plan) WriteText(w io.Writer, o OutputOptions) error {
	b := bufio.NewWriterSize(w, 64<<10)
	if p.Commit != "" {
		fmt.Fprintf(b, "Commit %s, state version %d.\n", short(p.Commit), p.StateVersion)
	}
	if !p.HasChanges() {
		b.WriteString("No changes. Actual state matches the repo and the directory.\n")
	}
	p.writeChanges(b, func(c *Change) string { return "  " + changeTitle(c) }, "      ", "      ", o.ShowSecrets)
	for _, e := range p.AllEmails() {
		b.WriteString("  " + emailLine(e) + "\n")
	}
	for _, an := range p.Announcements {
		b.WriteString("  " + announcementLine(an, func(a string) string { return a }, strconv.Quote) + "\n")
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintf(b, "\nWarnings (%d):\n", len(p.Warnings))
		for _, w := range p.Warnings {
			fmt.Fprintf(b, "  %s: %s: %s\n", w.Code, w.Key, w.Message)
		}
	}
	if len(p.Errors) > 0 {
		fmt.Fprintf(b, "\nErrors (%d):\n", len(p.Errors))
		for _, e := range p.Errors {
			if e.Template != "" {
				fmt.Fprintf(b, "  template %s: %s (its objects are left unchanged)\n", e.Template, e.Message)
			} else {
				fmt.Fprintf(b, "  %s\n", e.Message)
			}
		}
	}
	if p.Licenses != nil {
		fmt.Fprintf(b, "\nPaid licences: %d used of %d, %d remaining.\n", p.Licenses.Used, p.Licenses.Paid, p.Licenses.Remaining)
	}
	b.WriteString("\n" + p.summaryLine() + "\n")
	return b.Flush()
}

// writeChanges writes each change as its title line, then a creation's object or an
// update's fields, one a line, after created or changed (the text and markdown formats
// differ only in these).
func (p *Plan) writeChanges(b io.StringWriter, title func(*Change) string, created, changed string, show bool) {
	for _, c := range p.reused() {
		b.WriteString(title(c) + "\n")
		if c.Action == account.ActionCreate {
			if d := createDetail(c, show); d != "" {
				b.WriteString(created + d + "\n")
			}
			continue
		}
		for _, f := range c.Fields {
			b.WriteString(changed + fieldLine(f, show) + "\n")
		}
	}
}

// WriteMarkdown writes the plan as a pull-request comment.
func (p *Plan) WriteMarkdown(w io.Writer, o OutputOptions) error {
	b := &strings.Builder{}
	b.WriteString("### roster plan")
	if p.Commit != "" {
		fmt.Fprintf(b, " for `%s`", short(p.Commit))
	}
	b.WriteString("\n\n**" + p.summaryLine() + "**\n\n")
	if !p.HasChanges() {
		b.WriteString("No changes.\n")
	} else {
		b.WriteString("<details><summary>Changes</summary>\n\n```diff\n")
		p.writeChanges(b, func(c *Change) string {
			return diffSymbol(c.Action) + " " + strings.TrimPrefix(changeTitle(c), symbols[c.Action]+" ")
		}, "+     ", "!     ", o.ShowSecrets)
		b.WriteString("```\n\n</details>\n")
		if p.EmailCount() > 0 {
			fmt.Fprintf(b, "\n<details><summary>Emails (%d)</summary>\n\n", p.EmailCount())
			for _, e := range p.AllEmails() {
				fmt.Fprintf(b, "- ✉ %s %s → `%s` (%s)\n", e.Kind, e.Action, e.To, mdEscape(e.Key))
			}
			b.WriteString("\n</details>\n")
		}
		if len(p.Announcements) > 0 {
			fmt.Fprintf(b, "\n<details><summary>Announcements (%d)</summary>\n\n", len(p.Announcements))
			for _, an := range p.Announcements {
				b.WriteString("- " + announcementLine(an, func(a string) string { return "`" + mdEscape(a) + "`" }, func(s string) string { return "**" + mdEscape(s) + "**" }) + "\n")
			}
			b.WriteString("\n</details>\n")
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintf(b, "\n**Warnings (%d)**\n\n", len(p.Warnings))
		for _, w := range p.Warnings {
			fmt.Fprintf(b, "- `%s` %s: %s\n", w.Code, mdEscape(w.Key), mdEscape(w.Message))
		}
	}
	if len(p.Errors) > 0 {
		fmt.Fprintf(b, "\n**Errors (%d)**\n\n", len(p.Errors))
		for _, e := range p.Errors {
			if e.Template != "" {
				fmt.Fprintf(b, "- template `%s`: %s\n", e.Template, mdEscape(e.Message))
			} else {
				fmt.Fprintf(b, "- %s\n", mdEscape(e.Message))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// diffSymbol maps actions to the markers GitHub's diff highlighting colours.
func diffSymbol(action account.Action) string {
	switch action {
	case account.ActionCreate, account.ActionReactivate:
		return "+"
	case account.ActionDelete, account.ActionDeactivate:
		return "-"
	}
	return "!"
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;", "`", "'", "\n", " ")
	return r.Replace(s)
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// Write writes the plan in format: text, json or markdown.
func (p *Plan) Write(w io.Writer, format string, o OutputOptions) error {
	switch format {
	case "", "text":
		return p.WriteText(w, o)
	case "json":
		return p.WriteJSON(w, o)
	case "markdown", "md":
		return p.WriteMarkdown(w, o)
	}
	return fmt.Errorf("unknown plan format %q: use text, json or markdown", format)
}
