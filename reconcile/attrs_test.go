package reconcile

import (
	"slices"
	"testing"
)

// TestAttributesOf: the attributes asked of the directory are the names a pattern reads,
// with filters and keywords (harmless), but not the words of its quoted strings.
func TestAttributesOf(t *testing.T) {
	got := attributesOf([]string{
		`{{ '%s %s'|format(givenName, sn) }} ({{ uid }})`,
		`{{ title|default('Staff member')|truncate(40) }}: room of {{ cn }}`,
		`{{ "it's \"quoted\" text"|lower }} {{ mail_list }}`,
		`{{ 'a\'b c'~ telephoneNumber }}`,
		`{% if employeeType == "contractor x" %}c{% endif %}`,
		`literal Outside text`,
	}, "entryUUID")
	want := []string{"cn", "default", "employeeType", "endif", "entryUUID", "format", "givenName", "if", "lower", "mail", "sn",
		"telephoneNumber", "title", "truncate", "uid"}
	if !slices.Equal(got, want) {
		t.Errorf("attributesOf = %q\nwant %q", got, want)
	}
}
