// Package pexipfake is a strict, stateful fake of Pexip Infinity's management REST API
// (PEXIP.md §1) served over real HTTP on loopback, for tests of the client and of the
// deliverer. Strict: every path must end with "/", Basic auth is checked, unknown fields
// and filters are refused, values are range-checked as PEXIP.md says, unique fields are
// unique (400 naming the field), an alias must point at an existing conference, and a
// device's password is never returned. Faults can be injected: 429 with Retry-After
// (N times, a storm window or a request-rate limit), 5xx, latency and dropped
// connections (before or after the request took effect). Tests inspect and edit the
// state by hand (Objects, Find, Put, Edit, Remove) to make drift and conflicts.
//
// Where PEXIP.md is unverified the fake makes the same choice as package pexip
// (unverified.go): 400 bodies {"<resource>": {"<field>": ["…"]}}, PATCH 202 (or
// PatchStatus), deleting a conference deletes its aliases.
package pexipfake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
)

// Server is the fake management node.
type Server struct {
	URL                string // http://127.0.0.1:port
	Username, Password string

	srv *httptest.Server

	mu        sync.Mutex
	nextID    int
	objs      map[pexip.Resource]map[int]map[string]any
	byKey     map[pexip.Resource]map[string]int // unique field value → id
	aliasesOf map[string]map[int]bool           // conference URI → ids of its aliases
	passwords map[int]string                    // device id → password (write-only)
	faults    faults

	// PatchStatus is the answer to a successful PATCH: 202 (default) or 204.
	PatchStatus atomic.Int32
	// QuoteValues makes a 400 quote the value it refused, as some validators do (a
	// client must not copy such a message anywhere a secret must not go).
	QuoteValues atomic.Bool

	handlerNanos atomic.Int64
	stats        Stats
	onCreate     atomic.Pointer[func(pexip.Resource, int)]
	log          []Request
}

// Request is one request the fake answered that writes (POST, PATCH, DELETE), as its
// log keeps it: tests assert which objects were touched and with which fields.
type Request struct {
	Method string
	Path   string         // without the base path: "conference/12/"
	Fields map[string]any // the decoded JSON body (nil for DELETE or a body that is not an object)
	Status int            // the answer; 0 when the connection was dropped
}

// Stats counts what the fake answered.
type Stats struct {
	Requests  int
	ByMethod  map[string]int
	Throttled int // 429s sent
	Failed    int // injected 5xx
	Dropped   int // connections closed without an answer
	// RateViolations counts requests refused by the RateLimit window: the client sent
	// more than the limit allows.
	RateViolations int
	Times          []time.Time // when each request arrived
}

type faults struct {
	throttle      int
	stormUntil    time.Time
	retryAfter    string
	fail          int
	failStatus    int
	latency       time.Duration
	drop          int
	dropAfter     int
	limit         int
	window        time.Duration
	limitArrivals []time.Time
}

// New starts a fake on a loopback port over plain HTTP; call Close when done.
func New(username, password string) *Server { return start(username, password, false) }

// NewTLS starts a fake over HTTPS with a certificate of its own; CertPEM gives it, for a
// client's ca_file.
func NewTLS(username, password string) *Server { return start(username, password, true) }

func start(username, password string, tls bool) *Server {
	s := &Server{Username: username, Password: password, nextID: 1,
		objs: map[pexip.Resource]map[int]map[string]any{}, byKey: map[pexip.Resource]map[string]int{},
		aliasesOf: map[string]map[int]bool{}, passwords: map[int]string{}, stats: Stats{ByMethod: map[string]int{}}}
	for res := range specs {
		s.objs[res] = map[int]map[string]any{}
		s.byKey[res] = map[string]int{}
	}
	s.PatchStatus.Store(http.StatusAccepted)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are tests' doing
	if tls {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.URL = s.srv.URL
	return s
}

// CertPEM is the TLS certificate of a fake made by NewTLS, PEM-encoded.
func (s *Server) CertPEM() []byte {
	if s.srv.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// HandlerTime is the total time spent inside the handler (the fake's own work), to
// tell it apart from the client's.
func (s *Server) HandlerTime() time.Duration { return time.Duration(s.handlerNanos.Load()) }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByMethod = maps.Clone(s.stats.ByMethod)
	st.Times = slices.Clone(s.stats.Times)
	return st
}

// Writes returns the log of write requests (POST, PATCH, DELETE) in arrival order.
func (s *Server) Writes() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// logWrite appends a write request to the log before it is handled and returns its
// index; -1 for a read.
func (s *Server) logWrite(r *http.Request) int {
	if r.Method == http.MethodGet {
		return -1
	}
	var fields map[string]any
	if r.Body != nil {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		_ = json.Unmarshal(body, &fields)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Request{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, pexip.BasePath), Fields: fields})
	return len(s.log) - 1
}

// statusWriter notes the status of an answer into the log.
type statusWriter struct {
	http.ResponseWriter
	s *Server
	i int
}

func (w *statusWriter) WriteHeader(code int) {
	w.s.mu.Lock()
	w.s.log[w.i].Status = code
	w.s.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

// Hijack lets hangUp close the connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Throttle answers the next n requests 429 with Retry-After: retryAfter.
func (s *Server) Throttle(n int, retryAfter string) {
	s.mu.Lock()
	s.faults.throttle, s.faults.retryAfter = n, retryAfter
	s.mu.Unlock()
}

// Storm answers every request 429 with Retry-After: retryAfter for d from now.
func (s *Server) Storm(d time.Duration, retryAfter string) {
	s.mu.Lock()
	s.faults.stormUntil, s.faults.retryAfter = time.Now().Add(d), retryAfter
	s.mu.Unlock()
}

// RateLimit refuses (429, Retry-After: retryAfter) a request when n requests were
// already accepted in the window before it, as a node's limit does; 0 turns it off.
func (s *Server) RateLimit(n int, window time.Duration, retryAfter string) {
	s.mu.Lock()
	s.faults.limit, s.faults.window, s.faults.retryAfter = n, window, retryAfter
	s.faults.limitArrivals = nil
	s.mu.Unlock()
}

// Fail answers the next n requests with status (a 5xx).
func (s *Server) Fail(n, status int) {
	s.mu.Lock()
	s.faults.fail, s.faults.failStatus = n, status
	s.mu.Unlock()
}

// Latency delays every answer by d.
func (s *Server) Latency(d time.Duration) {
	s.mu.Lock()
	s.faults.latency = d
	s.mu.Unlock()
}

// Drop closes the connection of the next n requests without an answer and without
// acting on them.
func (s *Server) Drop(n int) {
	s.mu.Lock()
	s.faults.drop = n
	s.mu.Unlock()
}

// DropAfter acts on the next n requests (a create creates) and then closes the
// connection without an answer: the client cannot know it took effect.
func (s *Server) DropAfter(n int) {
	s.mu.Lock()
	s.faults.dropAfter = n
	s.mu.Unlock()
}

// fault decides the injected fault of one request, under s.mu.
func (s *Server) fault(now time.Time) (status int, retryAfter string, drop, dropAfter bool) {
	f := &s.faults
	switch {
	case f.drop > 0:
		f.drop--
		s.stats.Dropped++
		return 0, "", true, false
	case f.throttle > 0 || now.Before(f.stormUntil):
		if f.throttle > 0 {
			f.throttle--
		}
		s.stats.Throttled++
		return http.StatusTooManyRequests, f.retryAfter, false, false
	case f.fail > 0:
		f.fail--
		s.stats.Failed++
		return f.failStatus, "", false, false
	}
	if f.limit > 0 {
		cut := 0
		for cut < len(f.limitArrivals) && now.Sub(f.limitArrivals[cut]) >= f.window {
			cut++
		}
		f.limitArrivals = f.limitArrivals[cut:]
		if len(f.limitArrivals) >= f.limit {
			s.stats.Throttled++
			s.stats.RateViolations++
			return http.StatusTooManyRequests, f.retryAfter, false, false
		}
		f.limitArrivals = append(f.limitArrivals, now)
	}
	if f.dropAfter > 0 {
		f.dropAfter--
		s.stats.Dropped++
		return 0, "", false, true
	}
	return 0, "", false, false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.handlerNanos.Add(int64(time.Since(start))) }()
	s.mu.Lock()
	s.stats.Requests++
	s.stats.ByMethod[r.Method]++
	s.stats.Times = append(s.stats.Times, start)
	status, retryAfter, drop, dropAfter := s.fault(start)
	latency := s.faults.latency
	s.mu.Unlock()
	// Logged after the fault is decided, so that reading the body does not move the
	// arrival times the rate limit window counts.
	if i := s.logWrite(r); i >= 0 {
		w = &statusWriter{ResponseWriter: w, s: s, i: i}
	}
	if latency > 0 {
		time.Sleep(latency)
	}
	if drop {
		hangUp(w)
		return
	}
	if status != 0 {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeJSON(w, status, map[string]any{"error": http.StatusText(status)})
		return
	}
	if dropAfter {
		rec := httptest.NewRecorder()
		s.route(rec, r)
		hangUp(w)
		return
	}
	s.route(w, r)
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.Username || pass != s.Password {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "Authentication credentials were not provided or are wrong."})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, pexip.BasePath)
	if !ok || !strings.HasSuffix(r.URL.Path, "/") {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "No such resource (every path ends with /)."})
		return
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	res := pexip.Resource(parts[0])
	spec := specs[res]
	if spec == nil || len(parts) > 2 {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "No such resource."})
		return
	}
	if len(parts) == 1 {
		switch r.Method {
		case http.MethodGet:
			s.list(w, r, res, spec)
		case http.MethodPost:
			s.create(w, r, res, spec)
		default:
			writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "Method not allowed."})
		}
		return
	}
	id, err := strconv.Atoi(parts[1])
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "No such object."})
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		o, ok := s.render(res, id)
		s.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "No such object."})
			return
		}
		writeJSON(w, http.StatusOK, o)
	case http.MethodPatch:
		fields, err := decodeBody(r)
		if err == nil {
			s.mu.Lock()
			err = s.edit(res, id, fields)
			s.mu.Unlock()
		}
		if err != nil {
			s.writeError(w, res, err)
			return
		}
		w.WriteHeader(int(s.PatchStatus.Load()))
	case http.MethodDelete:
		s.mu.Lock()
		ok := s.remove(res, id)
		s.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "No such object."})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "Method not allowed."})
	}
}

var errNotFound = errors.New("not found")

// writeError answers a failed create or patch: 404, or 400 naming the field.
func (s *Server) writeError(w http.ResponseWriter, res pexip.Resource, err error) {
	var fe *fieldError
	switch {
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "No such object."})
	case errors.As(err, &fe):
		msg := fe.msg
		if s.QuoteValues.Load() && fe.value != nil {
			msg += fmt.Sprintf(" Got %v.", fe.value)
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{string(res): map[string]any{fe.field: []string{msg}}})
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
	}
}

func decodeBody(r *http.Request) (map[string]any, error) {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("the body is not a JSON object")
	}
	return m, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, res pexip.Resource, spec *resourceSpec) {
	fields, err := decodeBody(r)
	var id int
	if err == nil {
		s.mu.Lock()
		id, err = s.put(res, fields)
		s.mu.Unlock()
	}
	if err != nil {
		s.writeError(w, res, err)
		return
	}
	if f := s.onCreate.Load(); f != nil {
		(*f)(res, id)
	}
	w.Header().Set("Location", "http://"+r.Host+res.URI(id))
	w.WriteHeader(http.StatusCreated)
}

// OnCreate sets f (nil: none) to be called after each create through the API took
// effect and before its answer is written, outside the fake's lock: a test can stop the
// client there, so that the object exists and the client never learns it.
func (s *Server) OnCreate(f func(res pexip.Resource, id int)) {
	if f == nil {
		s.onCreate.Store(nil)
		return
	}
	s.onCreate.Store(&f)
}

// put creates an object (and a conference's aliases) after checking everything; under s.mu.
func (s *Server) put(res pexip.Resource, fields map[string]any) (int, error) {
	spec := specs[res]
	o := spec.defaults(res)
	for _, name := range spec.required {
		if v, ok := fields[name]; !ok || v == nil || v == "" {
			return 0, &fieldError{name, "This field is required.", nil}
		}
	}
	var aliases []map[string]any
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if name == "aliases" && res == pexip.Conferences {
			var err error
			if aliases, err = s.checkNewAliases(fields[name]); err != nil {
				return 0, err
			}
			continue
		}
		v, err := spec.check(name, fields[name])
		if err != nil {
			return 0, err
		}
		o[name] = v
	}
	if err := s.checkObject(res, 0, o); err != nil {
		return 0, err
	}
	id := s.add(res, o)
	for _, a := range aliases {
		a["conference"] = res.URI(id)
		s.add(pexip.ConferenceAliases, a)
	}
	return id, nil
}

// checkNewAliases checks the aliases given with a new conference.
func (s *Server) checkNewAliases(v any) ([]map[string]any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, &fieldError{"aliases", "Expected a list of aliases.", nil}
	}
	spec := specs[pexip.ConferenceAliases]
	seen := map[string]bool{}
	var out []map[string]any
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, &fieldError{"aliases", "Expected a list of aliases.", nil}
		}
		a := spec.defaults(pexip.ConferenceAliases)
		for k, x := range m {
			if k == "conference" {
				return nil, &fieldError{"aliases", "An alias of a new conference names no conference.", nil}
			}
			y, err := spec.check(k, x)
			if err != nil {
				return nil, &fieldError{"aliases", err.Error(), nil}
			}
			a[k] = y
		}
		alias, _ := a["alias"].(string)
		if alias == "" {
			return nil, &fieldError{"aliases", "alias: This field is required.", nil}
		}
		if _, taken := s.byKey[pexip.ConferenceAliases][alias]; taken || seen[alias] {
			return nil, &fieldError{"alias", "Conference alias with this Alias already exists.", nil}
		}
		seen[alias] = true
		out = append(out, a)
	}
	return out, nil
}

// checkObject checks the rules across fields: uniqueness and an alias's conference.
func (s *Server) checkObject(res pexip.Resource, id int, o map[string]any) error {
	spec := specs[res]
	key, _ := o[spec.unique].(string)
	if other, taken := s.byKey[res][key]; taken && other != id {
		return &fieldError{spec.unique, fmt.Sprintf("%s with this %s already exists.", spec.label, label(spec.unique)), nil}
	}
	if res == pexip.ConferenceAliases {
		cid, _ := pexip.IDFromURI(o["conference"].(string))
		if _, ok := s.objs[pexip.Conferences][cid]; !ok {
			return &fieldError{"conference", "The conference does not exist.", nil}
		}
	}
	return nil
}

func label(field string) string {
	w := strings.Split(field, "_")
	w[0] = strings.ToUpper(w[0][:1]) + w[0][1:]
	return strings.Join(w, " ")
}

// add stores a checked object; under s.mu.
func (s *Server) add(res pexip.Resource, o map[string]any) int {
	id := s.nextID
	s.nextID++
	if pw, ok := o["password"].(string); ok {
		delete(o, "password")
		s.passwords[id] = pw
	}
	o["id"], o["resource_uri"] = id, res.URI(id)
	s.objs[res][id] = o
	s.byKey[res][o[specs[res].unique].(string)] = id
	if res == pexip.ConferenceAliases {
		s.linkAlias(id, "", o["conference"].(string))
	}
	return id
}

// linkAlias moves alias id from conference URI from ("": none) to to ("": none) in
// aliasesOf; under s.mu.
func (s *Server) linkAlias(id int, from, to string) {
	if from != "" {
		delete(s.aliasesOf[from], id)
		if len(s.aliasesOf[from]) == 0 {
			delete(s.aliasesOf, from)
		}
	}
	if to != "" {
		if s.aliasesOf[to] == nil {
			s.aliasesOf[to] = map[int]bool{}
		}
		s.aliasesOf[to][id] = true
	}
}

// edit changes the given fields of an object; under s.mu.
func (s *Server) edit(res pexip.Resource, id int, fields map[string]any) error {
	o, ok := s.objs[res][id]
	if !ok {
		return errNotFound
	}
	spec := specs[res]
	next := maps.Clone(o)
	pw, setPW := "", false
	for name, v := range fields {
		if name == "id" || name == "resource_uri" || name == "aliases" {
			return &fieldError{name, "This field cannot be changed.", nil}
		}
		x, err := spec.check(name, v)
		if err != nil {
			return err
		}
		if name == "password" {
			pw, setPW = x.(string), true
			continue
		}
		next[name] = x
	}
	if key, _ := next[spec.unique].(string); key == "" {
		return &fieldError{spec.unique, "This field is required.", nil}
	}
	if err := s.checkObject(res, id, next); err != nil {
		return err
	}
	delete(s.byKey[res], o[spec.unique].(string))
	s.byKey[res][next[spec.unique].(string)] = id
	s.objs[res][id] = next
	if res == pexip.ConferenceAliases {
		s.linkAlias(id, o["conference"].(string), next["conference"].(string))
	}
	if setPW {
		s.passwords[id] = pw
	}
	return nil
}

// remove deletes an object; a conference takes its aliases along. Under s.mu.
func (s *Server) remove(res pexip.Resource, id int) bool {
	o, ok := s.objs[res][id]
	if !ok {
		return false
	}
	delete(s.objs[res], id)
	delete(s.byKey[res], o[specs[res].unique].(string))
	delete(s.passwords, id)
	switch res {
	case pexip.ConferenceAliases:
		s.linkAlias(id, o["conference"].(string), "")
	case pexip.Conferences:
		for aid := range s.aliasesOf[res.URI(id)] {
			s.remove(pexip.ConferenceAliases, aid)
		}
	}
	return true
}

// render is the object as GET returns it (a conference with its aliases, in id order, from
// the aliasesOf index); under s.mu.
func (s *Server) render(res pexip.Resource, id int) (map[string]any, bool) {
	o, ok := s.objs[res][id]
	if !ok {
		return nil, false
	}
	out := maps.Clone(o)
	if res == pexip.Conferences {
		aliases := []map[string]any{}
		for _, aid := range slices.Sorted(maps.Keys(s.aliasesOf[o["resource_uri"].(string)])) {
			aliases = append(aliases, maps.Clone(s.objs[pexip.ConferenceAliases][aid]))
		}
		out["aliases"] = aliases
	}
	return out, true
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, res pexip.Resource, spec *resourceSpec) {
	q := r.URL.Query()
	limit, offset := 20, 0
	filters := map[string]string{}
	for k, v := range q {
		var err error
		switch {
		case k == "limit":
			limit, err = strconv.Atoi(v[0])
		case k == "offset":
			offset, err = strconv.Atoi(v[0])
		case slices.Contains(spec.filters, k):
			filters[k] = v[0]
		default:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("The %q field does not allow filtering.", k)})
			return
		}
		if err != nil || limit < 0 || offset < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "Invalid limit or offset."})
			return
		}
	}
	if limit == 0 || limit > 5000 {
		limit = 5000
	}
	s.mu.Lock()
	candidates := slices.Sorted(maps.Keys(s.objs[res]))
	if key, ok := filters[spec.unique]; ok { // a lookup by the unique value
		candidates = nil
		if id, ok := s.byKey[res][key]; ok {
			candidates = []int{id}
		}
	}
	var match []int
	for _, id := range candidates {
		if matches(s.objs[res][id], filters) {
			match = append(match, id)
		}
	}
	objects := []map[string]any{}
	for _, id := range match[min(offset, len(match)):min(offset+limit, len(match))] {
		o, _ := s.render(res, id)
		objects = append(objects, o)
	}
	s.mu.Unlock()
	meta := map[string]any{"limit": limit, "offset": offset, "total_count": len(match), "next": nil, "previous": nil}
	page := func(off int) string {
		p := url.Values{}
		for k, v := range filters {
			p.Set(k, v)
		}
		p.Set("limit", strconv.Itoa(limit))
		p.Set("offset", strconv.Itoa(off))
		return pexip.BasePath + string(res) + "/?" + p.Encode()
	}
	if offset+limit < len(match) {
		meta["next"] = page(offset + limit)
	}
	if offset > 0 {
		meta["previous"] = page(max(0, offset-limit))
	}
	writeJSON(w, http.StatusOK, map[string]any{"meta": meta, "objects": objects})
}

// matches applies list filters: exact values; conference= takes an id or a URI.
func matches(o map[string]any, filters map[string]string) bool {
	for k, want := range filters {
		got := fmt.Sprint(o[k])
		if k == "conference" && !strings.HasPrefix(want, "/") {
			want = pexip.Conferences.URI(atoi(want))
		}
		if got != want {
			return false
		}
	}
	return true
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// Objects returns copies of every object of res, by id, as GET returns them.
func (s *Server) Objects(res pexip.Resource) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, id := range slices.Sorted(maps.Keys(s.objs[res])) {
		o, _ := s.render(res, id)
		out = append(out, o)
	}
	return out
}

// Count is how many objects of res there are.
func (s *Server) Count(res pexip.Resource) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objs[res])
}

// Find returns the object of res whose unique field (name, alias or email) is key.
func (s *Server) Find(res pexip.Resource, key string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byKey[res][key]
	if !ok {
		return nil, false
	}
	return s.render(res, id)
}

// DevicePassword is the password a device was last given (which GET never shows).
func (s *Server) DevicePassword(alias string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byKey[pexip.Devices][alias]
	if !ok {
		return "", false
	}
	pw, ok := s.passwords[id]
	return pw, ok
}

// Put creates an object by hand (a human's or another tool's), with the API's checks;
// fields are plain Go values (ints, strings, bools, []any of maps for aliases).
func (s *Server) Put(res pexip.Resource, fields map[string]any) (int, error) {
	m, err := viaJSON(fields)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(res, m)
}

// Edit changes fields of an object by hand (drift).
func (s *Server) Edit(res pexip.Resource, id int, fields map[string]any) error {
	m, err := viaJSON(fields)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.edit(res, id, m)
}

// Remove deletes an object by hand; false when there was none.
func (s *Server) Remove(res pexip.Resource, id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove(res, id)
}

// viaJSON gives plain values the types a decoded request body has (json.Number).
func viaJSON(fields map[string]any) (map[string]any, error) {
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	return m, dec.Decode(&m)
}
