package schema

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"testing/fstest"
)

func BenchmarkLoadExamples(b *testing.B) {
	cfg := loadRootConfig(b)
	fsys := os.DirFS("../examples")
	for b.Loop() {
		if _, err := Load(fsys, cfg, LoadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadUsers400k loads a 400,000-row users CSV (WebEx's lifetime limit), with
// every value validated. Target: ≤ 2 s per load, memory proportional to rows.
func BenchmarkLoadUsers400k(b *testing.B) {
	const rows = 400000
	var buf bytes.Buffer
	buf.Grow(rows * 120)
	buf.WriteString(csvHeader)
	langs := []string{"en-us", "fr", "de", "jp"}
	zones := []string{"London", "New York", "Berlin", "Tokyo"}
	for i := range rows {
		fmt.Fprintf(&buf, ",Y,First%d,Last%d,user%d.name@example.com,%s,HOST,%s,ENG,Dept %d,,,,,,,,\n",
			i, i, i, langs[i%4], zones[i%4], i%50)
	}
	fsys := fstest.MapFS{
		"users/big.csv":       {Data: buf.Bytes()},
		"tracking-codes.yaml": {Data: []byte("groups:\n  - {slot: DIVISION, name: Division, input_mode: dropdown, codes: [{code: ENG}, {code: OPS}]}\n")},
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		repo, err := Load(fsys, nil, LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(repo.Users) != rows {
			b.Fatalf("%d users", len(repo.Users))
		}
	}
}
