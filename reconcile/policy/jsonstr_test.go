package policy

import (
	"encoding/json"
	"testing"
)

// appendJSONString must write exactly what encoding/json writes.
func checkJSONString(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendJSONString(nil, s); string(got) != string(want) {
		t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range jsonSeeds {
		checkJSONString(t, s)
	}
}

var jsonSeeds = []string{
	"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr\bbs\fff", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "Bjørn Ødegård — ✓ 😀", "line\u2028sep\u2029para",
	"bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate", "p@ss wörd\"1",
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}
