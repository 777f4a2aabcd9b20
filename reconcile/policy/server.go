package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Paths of the two requests a conferencing node sends (PEXIP.md §2).
const (
	ServiceConfigurationPath = "/policy/v1/service/configuration"
	RegistrationsPrefix      = "/policy/v1/registrations/"
)

// unauthorizedLogEvery limits warnings about requests with wrong credentials.
const unauthorizedLogEvery = 10 * time.Second

// Config configures a Server.
type Config struct {
	// Username and Password are the Basic credentials Pexip's policy profile presents.
	// Both are required: the answers carry PINs and device passwords.
	Username, Password string
	// Unknown is policy_unknown: "continue" (the default when empty) or "reject".
	Unknown string
	Logger  *slog.Logger
	// Counters count the requests (RegisterMetrics shows them); nil: counters of its own.
	Counters *Counters
}

// Server answers the policy requests from the snapshot current in its Index.
type Server struct {
	idx              *Index
	user, pass       [sha256.Size]byte
	reject           bool
	log              *slog.Logger
	c                *Counters
	lastUnauthorized atomic.Int64 // unix nanoseconds of the last warning
}

// Validate says what is wrong with cfg's credentials and policy_unknown, if anything.
func (cfg Config) Validate() error {
	if cfg.Username == "" || cfg.Password == "" {
		return errors.New("policy server: username and password are required (Basic auth)")
	}
	switch cfg.Unknown {
	case "", "continue", "reject":
		return nil
	}
	return fmt.Errorf("policy server: policy_unknown %q: want \"continue\" or \"reject\"", cfg.Unknown)
}

// NewServer makes the policy handler.
func NewServer(idx *Index, cfg Config) (*Server, error) {
	if idx == nil {
		return nil, errors.New("policy server: no index")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{idx: idx, log: cfg.Logger, c: cfg.Counters, reject: cfg.Unknown == "reject",
		user: sha256.Sum256([]byte(cfg.Username)), pass: sha256.Sum256([]byte(cfg.Password))}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.c == nil {
		s.c = NewCounters()
	}
	return s, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Header values shared by every answer (net/http only reads them).
var (
	jsonType = []string{"application/json"}
	textType = []string{"text/plain; charset=utf-8"}
	noStore  = []string{"no-store"} // answers carry PINs and passwords
	getOnly  = []string{http.MethodGet}
	basic    = []string{`Basic realm="roster policy", charset="UTF-8"`}
)

// ServeHTTP answers one policy request. PINs and passwords are never logged.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	bp := bufPool.Get().(*[]byte)
	ep, out, code, body := s.answer((*bp)[:0], r)
	h := w.Header()
	h["Cache-Control"] = noStore
	switch code {
	case http.StatusOK:
		h["Content-Type"] = jsonType
	case http.StatusUnauthorized:
		h["WWW-Authenticate"] = basic
		h["Content-Type"] = textType
	case http.StatusMethodNotAllowed:
		h["Allow"] = getOnly
		h["Content-Type"] = textType
	default:
		h["Content-Type"] = textType
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	_, _ = w.Write(body)
	if cap(body) <= 64<<10 {
		*bp = body[:0]
		bufPool.Put(bp)
	}
	s.record(r, ep, out, time.Since(start))
}

// answer decides the answer to r, appended to b.
func (s *Server) answer(b []byte, r *http.Request) (endpoint, outcome, int, []byte) {
	ep, alias, aliasOK := route(r.URL)
	if !s.authorized(r) {
		return ep, outcomeUnauthorized, http.StatusUnauthorized, append(b, "unauthorized\n"...)
	}
	if r.Method != http.MethodGet {
		return ep, outcomeBadRequest, http.StatusMethodNotAllowed, append(b, "only GET\n"...)
	}
	switch {
	case ep == endpointOther:
		return ep, outcomeBadRequest, http.StatusNotFound, append(b, "not a policy request\n"...)
	case !aliasOK:
		return ep, outcomeBadRequest, http.StatusBadRequest, append(b, "missing or badly encoded alias\n"...)
	}
	snap, release := s.idx.Acquire()
	defer release() // the answer is copied into b: the snapshot may go once it returns
	if snap == nil {
		return ep, outcomeUnavailable, http.StatusServiceUnavailable, append(b, "no policy snapshot yet\n"...)
	}
	if ep == endpointService {
		if off, ok := snap.match(snap.roomTable, alias); ok {
			room := snap.roomAt(off, false)
			return ep, outcomeRoom, http.StatusOK, appendRoomAnswer(b, &room)
		}
	} else if off, ok := snap.match(snap.deviceTable, alias); ok {
		dev := snap.deviceAt(off)
		return ep, outcomeDevice, http.StatusOK, appendDeviceAnswer(b, &dev)
	}
	if s.reject {
		return ep, outcomeReject, http.StatusOK, append(b, answerReject...)
	}
	return ep, outcomeUnknown, http.StatusOK, append(b, answerContinue...)
}

// route tells the endpoint from the path and reads the alias: local_alias of a service
// configuration request, the last path segment of a registration (percent-decoded once).
func route(u *url.URL) (ep endpoint, alias string, ok bool) {
	if u.Path == ServiceConfigurationPath {
		alias, ok = queryParam(u.RawQuery, "local_alias")
		return endpointService, alias, ok && strings.TrimSpace(alias) != ""
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, RegistrationsPrefix) {
		return endpointOther, "", false
	}
	alias, err := url.PathUnescape(strings.TrimSuffix(p[len(RegistrationsPrefix):], "/"))
	return endpointRegistration, alias, err == nil && strings.TrimSpace(alias) != ""
}

// authorized compares the Basic credentials in constant time: both hashes are compared
// in full whatever their content, so timing tells nothing about either.
func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	match := subtle.ConstantTimeCompare(u[:], s.user[:]) & subtle.ConstantTimeCompare(p[:], s.pass[:])
	return ok && match == 1
}

func (s *Server) record(r *http.Request, ep endpoint, out outcome, d time.Duration) {
	s.c.record(ep, out, d)
	if out == outcomeUnauthorized {
		now := time.Now().UnixNano()
		if last := s.lastUnauthorized.Load(); now-last >= int64(unauthorizedLogEvery) && s.lastUnauthorized.CompareAndSwap(last, now) {
			s.log.Warn("policy request with missing or wrong credentials", "remote", r.RemoteAddr,
				"endpoint", endpointNames[ep], "note", "further ones are not logged for "+unauthorizedLogEvery.String())
		}
		return
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("policy answer", "endpoint", endpointNames[ep], "path", r.URL.Path,
			"outcome", out.String(), "duration", d)
	}
}

// Status is the policy endpoint's state for the status page.
type Status struct {
	Ready         bool              `json:"ready"` // a snapshot is being served
	Snapshot      *SnapshotStats    `json:"snapshot,omitempty"`
	PolicyUnknown string            `json:"policy_unknown"`
	Answers       map[string]uint64 `json:"answers"` // by outcome, since start
}

// Status reports the snapshot served and the answers given.
func (s *Server) Status() Status {
	var stats *SnapshotStats
	if snap := s.idx.Load(); snap != nil {
		st := snap.Stats()
		stats = &st
	}
	return NewStatus(stats, s.reject, s.c)
}

// NewStatus is the status of a server serving stats (nil: none yet) whose answers c
// counts: the daemon's view of its answering process.
func NewStatus(stats *SnapshotStats, reject bool, c *Counters) Status {
	st := Status{PolicyUnknown: "continue", Ready: stats != nil, Snapshot: stats, Answers: c.Answers()}
	if reject {
		st.PolicyUnknown = "reject"
	}
	return st
}
