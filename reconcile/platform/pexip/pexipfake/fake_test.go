package pexipfake

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
)

func TestFakeIsStrict(t *testing.T) {
	s := New("admin", "pw")
	defer s.Close()
	cid, err := s.Put(pexip.Conferences, map[string]any{"name": "Room", "aliases": []any{map[string]any{"alias": "room@example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	base := s.URL + pexip.BasePath
	cases := []struct {
		name, method, path, user, pass, body string
		status                               int
		inBody                               string
	}{
		{"list", "GET", "conference/", "admin", "pw", "", 200, `"total_count":1`},
		{"no trailing slash", "GET", "conference", "admin", "pw", "", 404, "ends with /"},
		{"object without trailing slash", "GET", "conference/1", "admin", "pw", "", 404, "ends with /"},
		{"wrong password", "GET", "conference/", "admin", "nope", "", 401, ""},
		{"no auth", "GET", "conference/", "", "", "", 401, ""},
		{"unknown resource", "GET", "vmr/", "admin", "pw", "", 404, ""},
		{"unknown filter", "GET", "conference/?colour=red", "admin", "pw", "", 400, "does not allow filtering"},
		{"unknown field", "POST", "conference/", "admin", "pw", `{"name": "X", "colour": "red"}`, 400, `"colour"`},
		{"missing name", "POST", "conference/", "admin", "pw", `{"description": "X"}`, 400, `"name"`},
		{"rate not an int", "POST", "conference/", "admin", "pw", `{"name": "X", "max_callrate_in": 512.5}`, 400, `"max_callrate_in"`},
		{"rate above range", "POST", "conference/", "admin", "pw", `{"name": "X", "max_callrate_in": 8193}`, 400, "between 128 and 8192"},
		{"name too long", "POST", "conference/", "admin", "pw", `{"name": "` + strings.Repeat("n", 251) + `"}`, 400, "at most 250"},
		{"taken alias on create", "POST", "conference/", "admin", "pw", `{"name": "Y", "aliases": [{"alias": "room@example.com"}]}`, 400, "already exists"},
		{"alias of a missing conference", "POST", "conference_alias/", "admin", "pw", `{"alias": "a", "conference": "/api/admin/configuration/v1/conference/99/"}`, 400, `"conference"`},
		{"not JSON", "POST", "device/", "admin", "pw", `alias=x`, 400, "not a JSON object"},
		{"put unsupported", "PUT", "conference/1/", "admin", "pw", `{}`, 405, ""},
		{"patch keeping its own name", "PATCH", "conference/1/", "admin", "pw", `{"name": "Room"}`, 202, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.inBody) {
				t.Errorf("%s %s = %d %s; want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.inBody)
			}
		})
	}
	// The log of writes: every non-GET request above, in order, with its body and answer;
	// nothing of the reads nor of the edits by hand below.
	var want []string
	for _, tc := range cases {
		if tc.method != "GET" {
			want = append(want, fmt.Sprintf("%s %s %d", tc.method, tc.path, tc.status))
		}
	}
	var got []string
	for _, r := range s.Writes() {
		got = append(got, fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("write log\n%q\nwant\n%q", got, want)
	}
	if last := s.Writes()[len(want)-1]; last.Fields["name"] != "Room" || len(last.Fields) != 1 {
		t.Errorf("the PATCH is logged with fields %v", last.Fields)
	}
	if _, err := s.Put(pexip.Conferences, map[string]any{"name": "Other"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(pexip.Conferences, cid, map[string]any{"name": "Other"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("rename onto a taken name: %v", err)
	}
	if !s.Remove(pexip.Conferences, cid) || s.Count(pexip.ConferenceAliases) != 0 {
		t.Errorf("removing a conference left %d aliases", s.Count(pexip.ConferenceAliases))
	}
	if n := len(s.Writes()); n != len(want) {
		t.Errorf("edits by hand logged: %d writes, %d requests", n, len(want))
	}
}

func TestFakeFaults(t *testing.T) {
	s := New("a", "b")
	defer s.Close()
	get := func() (int, string, error) {
		req, _ := http.NewRequest("GET", s.URL+pexip.BasePath+"device/", nil)
		req.SetBasicAuth("a", "b")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After"), nil
	}
	s.Storm(150*time.Millisecond, "1")
	if st, ra, _ := get(); st != 429 || ra != "1" {
		t.Errorf("in the storm: %d, Retry-After %q", st, ra)
	}
	time.Sleep(200 * time.Millisecond)
	if st, _, _ := get(); st != 200 {
		t.Errorf("after the storm: %d", st)
	}
	s.Fail(1, 502)
	if st, _, _ := get(); st != 502 {
		t.Errorf("Fail: %d", st)
	}
	s.Drop(1)
	if _, _, err := get(); err == nil {
		t.Error("Drop: an answer came")
	}
	s.RateLimit(3, time.Minute, "60")
	var codes []int
	for range 5 {
		st, _, _ := get()
		codes = append(codes, st)
	}
	if codes[2] != 200 || codes[3] != 429 || codes[4] != 429 || s.Stats().RateViolations != 2 {
		t.Errorf("rate limit: %v, %d violations", codes, s.Stats().RateViolations)
	}
	if s.HandlerTime() <= 0 {
		t.Error("no handler time recorded")
	}
}

// A conference shows the aliases that point at it, as they are made with it or alone,
// moved to another conference, deleted by hand, or taken along when it is deleted; a
// lookup by the unique value finds exactly its object, and other filters still apply.
func TestFakeAliasesFollowTheirConference(t *testing.T) {
	s := New("admin", "pw")
	defer s.Close()
	a, err := s.Put(pexip.Conferences, map[string]any{"name": "A", "aliases": []any{map[string]any{"alias": "a1"}, map[string]any{"alias": "a2"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Put(pexip.Conferences, map[string]any{"name": "B", "tag": "t"})
	if err != nil {
		t.Fatal(err)
	}
	b1, err := s.Put(pexip.ConferenceAliases, map[string]any{"alias": "b1", "conference": pexip.Conferences.URI(b)})
	if err != nil {
		t.Fatal(err)
	}
	aliasesOf := func(name string) string {
		c, ok := s.Find(pexip.Conferences, name)
		if !ok {
			return "(none)"
		}
		var out []string
		for _, a := range c["aliases"].([]map[string]any) {
			out = append(out, a["alias"].(string))
		}
		return strings.Join(out, " ")
	}
	if got := aliasesOf("A") + "|" + aliasesOf("B"); got != "a1 a2|b1" {
		t.Errorf("aliases = %q, want a1 a2|b1", got)
	}
	a2, _ := s.Find(pexip.ConferenceAliases, "a2")
	if err := s.Edit(pexip.ConferenceAliases, a2["id"].(int), map[string]any{"conference": pexip.Conferences.URI(b)}); err != nil {
		t.Fatal(err)
	}
	if !s.Remove(pexip.ConferenceAliases, b1) {
		t.Fatal("remove b1")
	}
	if got := aliasesOf("A") + "|" + aliasesOf("B"); got != "a1|a2" {
		t.Errorf("after moving a2 and removing b1: aliases = %q, want a1|a2", got)
	}
	for _, tc := range []struct{ query, want string }{
		{"conference/?name=B", `"total_count":1`},
		{"conference/?name=B&tag=t", `"total_count":1`},
		{"conference/?name=B&tag=x", `"total_count":0`},
		{"conference/?name=C", `"total_count":0`},
		{"conference_alias/?alias=a2", `"conference":"` + pexip.Conferences.URI(b) + `"`},
	} {
		req, _ := http.NewRequest("GET", s.URL+pexip.BasePath+tc.query, nil)
		req.SetBasicAuth("admin", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s = %s, want %s", tc.query, body, tc.want)
		}
	}
	if !s.Remove(pexip.Conferences, b) || s.Count(pexip.ConferenceAliases) != 1 || aliasesOf("A") != "a1" {
		t.Errorf("removing B: %d aliases left, A has %q; want a1 alone", s.Count(pexip.ConferenceAliases), aliasesOf("A"))
	}
	if !s.Remove(pexip.Conferences, a) || s.Count(pexip.ConferenceAliases) != 0 {
		t.Errorf("removing A left %d aliases", s.Count(pexip.ConferenceAliases))
	}
}
