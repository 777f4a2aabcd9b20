package reconcile

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/schema/account"
)

// providedVars are the variable names the reconciler gives each kind of email.
func providedVars() map[string][]string {
	names := func(m map[string]any) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	return map[string][]string{
		"vmr":        names(VMRVars(&account.VMR{Aliases: []string{"a@b", "1"}}, account.EmailCreated)),
		"device":     names(DeviceVars(&account.Device{}, account.EmailCreated)),
		"activation": names(UserVars(&account.User{}, account.EmailCreated)),
		"invite":     names(InviteVars(&account.Invite{}, account.EmailCreated)),
	}
}

// templateVars are the variables a template reads: {{ x … }}, {% if/elif x %}, {% for … in x %}.
var templateVars = regexp.MustCompile(`\{\{-?\s*(\w+)|\{%-?\s*(?:if|elif)\s+(?:not\s+)?(\w+)|\{%-?\s*for\s+\w+\s+in\s+(\w+)`)

func usedVars(src string) []string {
	var out []string
	for _, m := range templateVars.FindAllStringSubmatch(src, -1) {
		for _, v := range m[1:] {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	sort.Strings(out)
	return out
}

// The default VMR and device templates document exactly the variables the reconciler
// provides, and every template (default or example) reads only provided variables.
func TestEmailVariables(t *testing.T) {
	provided := providedVars()
	for _, d := range notify.Defaults() {
		have, ok := provided[d.Kind]
		if !ok {
			continue // admin emails: made by the daemon, not the reconciler
		}
		if d.Kind == "vmr" || d.Kind == "device" {
			documented := slices.Clone(d.Vars)
			sort.Strings(documented)
			if !slices.Equal(documented, have) {
				t.Errorf("%s: the default template documents %v, the reconciler provides %v", d.Kind, documented, have)
			}
		}
		for _, v := range usedVars(d.Subject + d.Body) {
			if !slices.Contains(have, v) {
				t.Errorf("%s: the default template reads %s, which the reconciler does not provide", d.Kind, v)
			}
		}
	}
	for kind, file := range map[string]string{"vmr": "vmr.html", "device": "device.txt", "activation": "activation.txt", "invite": "invite.txt"} {
		b, err := os.ReadFile("../examples/emails/" + file)
		if err != nil {
			t.Fatal(err)
		}
		used := usedVars(string(b))
		if len(used) == 0 {
			t.Errorf("examples/emails/%s: no variables found; is the pattern wrong?", file)
		}
		for _, v := range used {
			if !slices.Contains(provided[kind], v) {
				t.Errorf("examples/emails/%s reads %s, which the reconciler does not provide for %s", file, v, kind)
			}
		}
	}
}
