package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setBlockSize sets ldifBlockSize for the rest of the test.
func setBlockSize(t testing.TB, n int) {
	old := ldifBlockSize
	ldifBlockSize = n
	t.Cleanup(func() { ldifBlockSize = old })
}

// forBlockSizes runs f as subtests with LDIF files read in blocks of several sizes.
func forBlockSizes(t *testing.T, name string, f func(t *testing.T)) {
	for _, n := range []int{1, 7, 64, 300, 4096, 4 << 20} {
		t.Run(fmt.Sprintf("%s/block=%d", name, n), func(t *testing.T) {
			setBlockSize(t, n)
			f(t)
		})
	}
}

// TestEveryBlockSize searches small texts read in blocks of every size up to their length:
// the entries are those of the text read whole.
func TestEveryBlockSize(t *testing.T) {
	texts := []string{tricky, "dn: uid=a,dc=example,dc=com\nuid: a\n\n mail: a@x\n\ndn: uid=b,dc=example,dc=com\nuid: b\n"}
	req := Request{Attributes: []string{"*"}}
	for i, text := range texts {
		setBlockSize(t, len(text)+1)
		var want []Entry
		d, err := NewLDIF([]byte(text), "")
		if err == nil {
			err = d.Search(context.Background(), req, func(e Entry) error { want = append(want, e); return nil })
		}
		if err != nil || len(want) < 2 {
			t.Fatalf("text %d read whole: %d entries, err = %v", i, len(want), err)
		}
		for n := 1; n <= len(text); n++ {
			ldifBlockSize = n
			var got []Entry
			d, err := NewLDIF([]byte(text), "")
			if err == nil {
				err = d.Search(context.Background(), req, func(e Entry) error { got = append(got, e); return nil })
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("text %d in blocks of %d: err = %v, entries\n%v\nwant\n%v", i, n, err, got, want)
			}
		}
	}
}

func TestLastBoundary(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", -1},
		{"\n", -1},           // nothing after the blank line
		{"\nx", 1},           // a blank first line
		{"a\n\nb", 3},        // the usual separator
		{"a\r\n\r\nb", 5},    // CRLF
		{"a\n\n b", -1},      // the "blank" line is continued
		{"a\n\r\r\nb", -1},   // "\r\r" is not blank
		{"a\n\nb\n\nc\n", 6}, // the last one
		{"a\n\nb\n\n c\n", 3},
		{"a\nb\nc", -1},
		{"a\n\n\n\nb", 5},
		{"a\n\n\n", 3},
		{"\r\nx", 2},
	}
	for _, tt := range tests {
		if got := lastBoundary([]byte(tt.in)); got != tt.want {
			t.Errorf("lastBoundary(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestBlockReader checks that the blocks put together are the text, that every block but the
// last ends at a record boundary, and the size read.
func TestBlockReader(t *testing.T) {
	var gen bytes.Buffer
	if err := GeneratePeople(&gen, 200, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{"tricky": tricky, "generated": gen.String(), "empty": "", "blank": "\n\n\n",
		"no final newline": "dn: a\ncn: b\n\ndn: c"}
	for name, text := range texts {
		forBlockSizes(t, name, func(t *testing.T) {
			br := newBlockReader(strings.NewReader(text))
			var all strings.Builder
			var blocks []string
			for {
				b, err := br.next()
				if err != nil {
					t.Fatal(err)
				}
				if b == "" {
					break
				}
				blocks = append(blocks, strings.Clone(b))
				all.WriteString(b)
			}
			if all.String() != text {
				t.Fatalf("blocks put together differ from the text")
			}
			off := 0
			for i, b := range blocks[:max(len(blocks)-1, 0)] {
				off += len(b)
				if p := lastBoundary([]byte(text[:off+1])); p != off {
					t.Errorf("block %d ends at %d, not at a record boundary", i, off)
				}
			}
			if want := int64(len(text)); br.read != want {
				t.Errorf("read = %d, want %d", br.read, want)
			}
		})
	}
}

// TestOpenLDIFFile reads an LDIF file from disk: the same entries as NewLDIF over its bytes.
func TestOpenLDIFFile(t *testing.T) {
	setBlockSize(t, 1<<10)
	path := filepath.Join(t.TempDir(), "people.ldif")
	var data bytes.Buffer
	if err := GeneratePeople(&data, 500, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	opened := 0
	d, err := OpenLDIF(func() (io.ReadCloser, error) { opened++; return os.Open(path) }, "dc=example,dc=com")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewLDIF(data.Bytes(), "dc=example,dc=com")
	if err != nil {
		t.Fatal(err)
	}
	req := Request{SearchDN: "ou=people", DisabledFilter: "(employeeType=disabled)", KeyAttribute: "entryUUID",
		Attributes: []string{"uid", "cn", "mail"}}
	var got, want []Entry
	if err := d.Search(context.Background(), req, func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := ref.Search(context.Background(), req, func(e Entry) error { want = append(want, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 500 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %d entries, want the 500 of NewLDIF", len(got))
	}
	if opened != 2 {
		t.Errorf("file opened %d times, want 2 (check, search)", opened)
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// TestOpenLDIFFailures: an open or read error fails OpenLDIF or Search, and a Search over a
// file that changed since OpenLDIF checked it fails closed.
func TestOpenLDIFFailures(t *testing.T) {
	good := "dn: uid=a,dc=x\nuid: a\n\ndn: uid=b,dc=x\nuid: b\n"
	errDisk := errors.New("disk on fire")
	opens := func(contents ...any) func() (io.ReadCloser, error) {
		i := 0
		return func() (io.ReadCloser, error) {
			c := contents[min(i, len(contents)-1)]
			i++
			switch c := c.(type) {
			case error:
				return nil, c
			case io.Reader:
				return io.NopCloser(c), nil
			default:
				return io.NopCloser(strings.NewReader(c.(string))), nil
			}
		}
	}
	if _, err := OpenLDIF(opens(errDisk), ""); !errors.Is(err, errDisk) {
		t.Errorf("open error: OpenLDIF err = %v", err)
	}
	if _, err := OpenLDIF(opens(&failingReader{strings.NewReader(good), errDisk}), ""); !errors.Is(err, errDisk) {
		t.Errorf("read error: OpenLDIF err = %v", err)
	}
	tests := []struct {
		name  string
		later any
		want  string
	}{
		{"open error", errDisk, "disk on fire"},
		{"read error", &failingReader{strings.NewReader(good), errDisk}, "disk on fire"},
		{"longer", good + "\ndn: uid=c,dc=x\nuid: c\n", "the file changed"},
		{"same size", strings.Replace(good, "uid: b", "uid: c", 1), "the file changed"},
		{"broken", strings.Replace(good, "uid: b", "uid b", 1), "line 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := OpenLDIF(opens(good, tt.later), "")
			if err != nil {
				t.Fatal(err)
			}
			err = d.Search(context.Background(), Request{}, func(Entry) error { return nil })
			if !errors.Is(err, ErrFailClosed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Search err = %v, want ErrFailClosed and %q", err, tt.want)
			}
		})
	}
	d, err := OpenLDIF(opens(good), "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := d.Search(context.Background(), Request{}, func(Entry) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("unchanged file: %d entries, err = %v; want 2, nil", n, err)
	}
}

// BenchmarkOpenLDIFFile measures OpenLDIF plus one full search over 400,000 generated people
// in a file on disk (about 120 MB), as roster reads a repo's LDIF file. It reports
// live-heap-MB, the live heap after OpenLDIF and a GC (nothing of the file is kept), and
// max-heap-MB, the largest heap in use sampled during the search (entries are dropped by fn,
// as the renderer does once a batch is rendered).
func BenchmarkOpenLDIFFile(b *testing.B) {
	const n = 400_000
	path := filepath.Join(b.TempDir(), "people.ldif")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := GeneratePeople(f, n, "dc=example,dc=com"); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	b.SetBytes(st.Size())
	benchSearch(b, n, func() (Directory, error) { return OpenLDIF(open, "dc=example,dc=com") })
}
