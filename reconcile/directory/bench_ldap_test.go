package directory_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// BenchmarkLDAPSearch400k compares NewLDAP+Search over 400,000 entries in a real slapd
// with OpenLDAP's own ldapsearch fetching the same entries and attributes, in the same
// run: through the bulk reader (roster-*, the default) and through go-ldap (goldap-*).
// Set ROSTER_BENCH_LDAP=1 (it slapadds 400k entries first); run with -benchtime 1x.
func BenchmarkLDAPSearch400k(b *testing.B) { benchLDAPSearch(b, 400_000) }

// BenchmarkLDAPSearch50k is BenchmarkLDAPSearch400k at 50,000 entries.
func BenchmarkLDAPSearch50k(b *testing.B) { benchLDAPSearch(b, 50_000) }

func benchLDAPSearch(b *testing.B, n int) {
	if os.Getenv("ROSTER_BENCH_LDAP") != "1" {
		b.Skipf("set ROSTER_BENCH_LDAP=1 to run (slapadds %d entries)", n)
	}
	ldapsearch, err := exec.LookPath("ldapsearch")
	if err != nil {
		b.Skip("ldapsearch not installed")
	}
	file := peopleFile(b, n)
	t0 := time.Now()
	s := ldaptest.Start(b, ldaptest.Options{LDIFFile: file})
	b.Logf("slapadd + start of %d entries: %v", n, time.Since(t0))

	attrs := []string{"uid", "cn", "givenName", "sn", "mail", "entryUUID", "employeeType"}
	req := directory.Request{SearchDN: "ou=people", Filter: "(objectClass=inetOrgPerson)",
		DisabledFilter: "(employeeType=disabled)", KeyAttribute: "entryUUID", Attributes: attrs[:5]}
	runLdapsearch := func() (time.Duration, int64) {
		args := append([]string{"-H", s.URL, "-x", "-D", s.AdminDN, "-w", s.AdminPassword,
			"-b", "ou=people," + s.BaseDN, "-s", "sub", "-E", "pr=1000/noprompt", "-LLL",
			"(objectClass=inetOrgPerson)"}, attrs...)
		cmd := exec.Command(ldapsearch, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		count := 0
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "dn:") {
				count++
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("ldapsearch: %v", err)
		}
		el := time.Since(start)
		if count != n {
			b.Fatalf("ldapsearch returned %d entries, want %d", count, n)
		}
		return el, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	}
	// runRoster returns the wall time, CPU time and allocations of one Search.
	runRoster := func(goLDAP bool) (time.Duration, time.Duration, uint64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mallocs := ms.Mallocs
		cpu0 := cpuTime()
		start := time.Now()
		d, err := directory.NewLDAP(directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.AdminDN,
			BindPassword: s.AdminPassword, PageSize: 1000, Timeout: time.Minute, GoLDAPReader: goLDAP})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		count, disabled := 0, 0
		err = d.Search(context.Background(), req, func(e directory.Entry) error {
			count++
			if e.Disabled {
				disabled++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if count != n || disabled != n/50 {
			b.Fatalf("roster: %d entries, %d disabled", count, disabled)
		}
		el, cpu := time.Since(start), cpuTime()-cpu0
		runtime.ReadMemStats(&ms)
		return el, cpu, ms.Mallocs - mallocs
	}

	runLdapsearch() // warm slapd's caches
	b.ResetTimer()
	var ours, goldap, theirs, ourCPU, goldapCPU time.Duration
	var ourAllocs, goldapAllocs uint64
	var theirRSS, ourRSS int64
	for i := 0; i < b.N; i++ {
		t, rss := runLdapsearch()
		theirs += t
		theirRSS = max(theirRSS, rss)
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
		el, cpu, allocs := runRoster(false)
		ours, ourCPU, ourAllocs = ours+el, ourCPU+cpu, ourAllocs+allocs
		ourRSS = max(ourRSS, vmHWM())
		el, cpu, allocs = runRoster(true)
		goldap, goldapCPU, goldapAllocs = goldap+el, goldapCPU+cpu, goldapAllocs+allocs
	}
	per := float64(b.N)
	b.ReportMetric(ours.Seconds()/per, "roster-s")
	b.ReportMetric(theirs.Seconds()/per, "ldapsearch-s")
	b.ReportMetric(float64(ours)/float64(theirs), "ratio")
	b.ReportMetric(goldap.Seconds()/per, "goldap-s")
	b.ReportMetric(float64(goldap)/float64(theirs), "goldap-ratio")
	b.ReportMetric(float64(ourRSS)/1024, "roster-peak-RSS-MB")
	b.ReportMetric(float64(theirRSS)/1024, "ldapsearch-peak-RSS-MB")
	b.ReportMetric(float64(ours.Nanoseconds())/per/float64(n), "roster-ns/entry")
	b.ReportMetric(float64(ourAllocs)/per/float64(n), "roster-allocs/entry")
	b.ReportMetric(float64(goldapAllocs)/per/float64(n), "goldap-allocs/entry")
	// CPU time (user+system, all threads) of this process during the roster runs: less
	// sensitive than wall time to other load on the machine.
	b.ReportMetric(ourCPU.Seconds()/per, "roster-cpu-s")
	b.ReportMetric(goldapCPU.Seconds()/per, "goldap-cpu-s")
}

// BenchmarkDecodePages decodes the same captured slapd pages (10,000 entries of 7 attributes
// in pages of 1000, held in memory) with the bulk reader and with go-ldap (a Conn reading
// them from an in-memory pipe, as over a socket; and asn1-ber's ReadPacket alone, the part
// of go-ldap's decoding that builds the packet tree).
func BenchmarkDecodePages(b *testing.B) {
	const n = 10_000
	s := ldaptest.Start(b, ldaptest.Options{LDIF: people(b, n)})
	attrs := []string{"uid", "cn", "givenName", "sn", "mail", "entryUUID", "employeeType"}
	pages, err := directory.CapturePages(strings.TrimPrefix(s.URL, "ldap://"), "ou=people,"+s.BaseDN, "(objectClass=inetOrgPerson)", attrs, 1000)
	if err != nil {
		b.Fatal(err)
	}
	stream := bytes.Join(pages, nil)
	report := func(b *testing.B, entries int, mallocs uint64) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(entries), "ns/entry")
		b.ReportMetric(float64(entries)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(float64(mallocs)/float64(entries), "allocs/entry")
		b.ReportMetric(float64(len(stream))/float64(n), "bytes/entry")
	}
	measure := func(b *testing.B, decode func() int) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		m0, entries := ms.Mallocs, 0
		for b.Loop() {
			entries += decode()
		}
		runtime.ReadMemStats(&ms)
		report(b, entries, ms.Mallocs-m0)
	}
	b.Run("bulk", func(b *testing.B) {
		measure(b, func() int {
			got, err := directory.CountBulkPages(stream, len(pages))
			if err != nil || got != n {
				b.Fatalf("%d entries, err %v", got, err)
			}
			return got
		})
	})
	b.Run("go-ldap", func(b *testing.B) {
		measure(b, func() int {
			got := 0
			for _, p := range goLDAPPages(pages) {
				if p.Err != nil {
					b.Fatal(p.Err)
				}
				got += len(p.Entries)
			}
			if got != n {
				b.Fatalf("%d entries", got)
			}
			return got
		})
	})
	b.Run("asn1-ber", func(b *testing.B) {
		measure(b, func() int {
			r := bufio.NewReader(bytes.NewReader(stream))
			got := 0
			for {
				p, err := ber.ReadPacket(r)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Children) > 1 && p.Children[1].Tag == ldap.ApplicationSearchResultEntry {
					got++
				}
			}
			if got != n {
				b.Fatalf("%d entries", got)
			}
			return got
		})
	})
}

// peopleFile writes GeneratePeople's n people to an LDIF file in a temporary folder.
func peopleFile(b testing.TB, n int) string {
	file := filepath.Join(b.TempDir(), "people.ldif")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := directory.GeneratePeople(w, n, "dc=example,dc=com"); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return file
}

// cpuTime returns the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM returns this process's peak resident set size in KiB (since the last reset).
func vmHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}
