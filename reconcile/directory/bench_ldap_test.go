package directory_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// BenchmarkLDAPSearch400k compares NewLDAP+Search over 400,000 entries in a real slapd
// with OpenLDAP's own ldapsearch fetching the same entries and attributes, in the same
// run. Set ROSTER_BENCH_LDAP=1 (it slapadds 400k entries first); run with -benchtime 1x.
func BenchmarkLDAPSearch400k(b *testing.B) {
	if os.Getenv("ROSTER_BENCH_LDAP") != "1" {
		b.Skip("set ROSTER_BENCH_LDAP=1 to run (slapadds 400,000 entries)")
	}
	ldapsearch, err := exec.LookPath("ldapsearch")
	if err != nil {
		b.Skip("ldapsearch not installed")
	}
	const n = 400_000
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
	f.Close()
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
	runRoster := func() time.Duration {
		start := time.Now()
		d, err := directory.NewLDAP(directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.AdminDN,
			BindPassword: s.AdminPassword, PageSize: 1000, Timeout: time.Minute})
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
		return time.Since(start)
	}

	runLdapsearch() // warm slapd's caches
	b.ResetTimer()
	var ours, theirs time.Duration
	var theirRSS int64
	var ourRSS int64
	var ourCPU time.Duration
	for i := 0; i < b.N; i++ {
		t, rss := runLdapsearch()
		theirs += t
		theirRSS = max(theirRSS, rss)
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
		cpu0 := cpuTime()
		ours += runRoster()
		ourCPU += cpuTime() - cpu0
		ourRSS = max(ourRSS, vmHWM())
	}
	b.ReportMetric(ours.Seconds()/float64(b.N), "roster-s")
	b.ReportMetric(theirs.Seconds()/float64(b.N), "ldapsearch-s")
	b.ReportMetric(float64(ours)/float64(theirs), "ratio")
	b.ReportMetric(float64(ourRSS)/1024, "roster-peak-RSS-MB")
	b.ReportMetric(float64(theirRSS)/1024, "ldapsearch-peak-RSS-MB")
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N)/n, "roster-ns/entry")
	// CPU time (user+system, all threads) of this process during the roster runs: less
	// sensitive than wall time to other load on the machine.
	b.ReportMetric(ourCPU.Seconds()/float64(b.N), "roster-cpu-s")
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
