package pexip

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config says how to reach one management node.
type Config struct {
	URL      string // https://node, or http:// on a loopback address
	Username string
	Password string
	CAFile   string // PEM bundle the node's certificate chains to; "" for the system's
	// Rate is requests per minute (<= 0: no limit); Burst how many may go at once
	// (0: a second's worth).
	Rate, Burst int
	// MaxAttempts bounds the tries of one request (0: 5); retryable failures wait
	// Backoff (0: 500 ms) doubling up to MaxBackoff (0: 30 s), or the Retry-After sent.
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	Timeout             time.Duration // one request (0: 60 s)
	PageSize            int           // objects per list page (0: 500)
	// Transport replaces the HTTP transport (tests); CAFile is then ignored.
	Transport http.RoundTripper
}

// Client talks to one management node. It is safe for concurrent use; every request
// shares its rate limiter.
type Client struct {
	base     *url.URL
	auth     string // the Authorization header value
	password string // for scrubbing only
	http     *http.Client
	limiter  *Limiter
	cfg      Config
	now      func() time.Time
}

// New checks cfg and makes a client. No request is sent.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		shown := cfg.URL
		if strings.Contains(shown, "@") {
			shown = "(hidden: it holds an @)"
		}
		return nil, fmt.Errorf("pexip: url %q is not an http(s) URL with a host", shown)
	}
	if u.User != nil {
		return nil, errors.New("pexip: the url must not hold credentials")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("pexip: http:// only on a loopback address, not %s", u.Host)
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, cfg.Rate/60)
	}
	rt := cfg.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("pexip: read ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("pexip: ca_file %s holds no PEM certificate", cfg.CAFile)
			}
			t.TLSClientConfig.RootCAs = pool
		}
		rt = t
	}
	return &Client{
		base:     u,
		auth:     "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password)),
		password: cfg.Password,
		http:     &http.Client{Transport: rt, Timeout: cfg.Timeout, CheckRedirect: noRedirect},
		limiter:  NewLimiter(cfg.Rate, cfg.Burst),
		cfg:      cfg,
		now:      time.Now,
	}, nil
}

// noRedirect keeps the Authorization header from following a redirect anywhere: the API
// does not redirect, so a redirect is an answer to report.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback()
}

// Limiter is the client's rate limiter (to show the rate, or share it).
func (c *Client) Limiter() *Limiter { return c.limiter }

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request, retrying what is retryable, and returns the answer whose status
// ok accepts; any other answer is an *Error.
func (c *Client) do(ctx context.Context, op, method, path, query string, body []byte, ok func(int) bool) (answer, error) {
	uncertain := false // an earlier try may have taken effect
	for attempt := 1; ; attempt++ {
		if err := c.limiter.Wait(ctx); err != nil {
			return answer{}, fmt.Errorf("pexip: %s: %w", op, err)
		}
		a, err := c.send(ctx, op, method, path, query, body)
		if err == nil && ok(a.status) {
			return a, nil
		}
		if err == nil {
			e := classify(op, a.status, a.header.Get("Retry-After"), a.body, c.now())
			e.Detail = c.scrub(e.Detail)
			err = e
		}
		var e *Error
		if errors.As(err, &e) {
			e.MayHaveActed = uncertain
		}
		if !Retryable(err) || attempt >= c.cfg.MaxAttempts {
			return a, err
		}
		uncertain = uncertain || errors.Is(err, ErrNetwork) || errors.Is(err, ErrServer)
		wait := c.backoff(attempt)
		if ra := RetryAfterOf(err); ra > 0 {
			wait = ra
			if errors.Is(err, ErrRateLimited) {
				c.limiter.Pause(c.now().Add(ra))
			}
		}
		if err := Sleep(ctx, wait); err != nil {
			return answer{}, fmt.Errorf("pexip: %s: %w", op, err)
		}
	}
}

// backoff is the wait before try attempt+1: Backoff doubled per try, capped, with ±20 %
// jitter so that retries of several workers spread out.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Backoff << min(attempt-1, 20)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (c *Client) send(ctx context.Context, op, method, path, query string, body []byte) (answer, error) {
	u := *c.base
	u.Path, u.RawQuery = path, query
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return answer{}, fmt.Errorf("pexip: %s: %w", op, err)
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return answer{}, fmt.Errorf("pexip: %s: %w", op, ctx.Err())
		}
		return answer{}, &Error{Op: op, Kind: ErrNetwork, Detail: c.scrub(err.Error()), cause: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, &Error{Op: op, Status: resp.StatusCode, Kind: ErrNetwork, Detail: c.scrub(err.Error()), cause: err}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// maxBody bounds a response read into memory: a list page of PageSize objects is far less.
const maxBody = 64 << 20

// scrub removes the password (and the header carrying it) from a message.
func (c *Client) scrub(s string) string {
	if c.password != "" {
		s = strings.ReplaceAll(s, c.password, "***")
	}
	return strings.ReplaceAll(s, strings.TrimPrefix(c.auth, "Basic "), "***")
}

func marshal(op string, v any) ([]byte, error) {
	switch b := v.(type) {
	case json.RawMessage:
		return b, nil
	case []byte:
		return b, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("pexip: %s: encode: %w", op, err)
	}
	return b, nil
}

func collection(res Resource) string { return BasePath + string(res) + "/" }

func is(codes ...int) func(int) bool {
	return func(s int) bool {
		for _, c := range codes {
			if s == c {
				return true
			}
		}
		return false
	}
}

// Create posts obj (a struct of this package, a map or raw JSON) to res and returns the
// new object's id, read from the Location of the 201.
func (c *Client) Create(ctx context.Context, res Resource, obj any) (int, error) {
	op := "create " + string(res)
	body, err := marshal(op, obj)
	if err != nil {
		return 0, err
	}
	a, err := c.do(ctx, op, http.MethodPost, collection(res), "", body, is(http.StatusCreated))
	if err != nil {
		return 0, err
	}
	id, err := IDFromURI(a.header.Get("Location"))
	if err != nil {
		return 0, &Error{Op: op, Status: a.status, Kind: ErrUnexpected, Detail: "201 without an object Location"}
	}
	return id, nil
}

// Patch sends fields (only those to change) to object id.
func (c *Client) Patch(ctx context.Context, res Resource, id int, fields any) error {
	op := "patch " + string(res) + " " + strconv.Itoa(id)
	body, err := marshal(op, fields)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, op, http.MethodPatch, res.URI(id), "", body, is(patchStatuses...))
	return err
}

// Delete removes object id (204).
func (c *Client) Delete(ctx context.Context, res Resource, id int) error {
	op := "delete " + string(res) + " " + strconv.Itoa(id)
	_, err := c.do(ctx, op, http.MethodDelete, res.URI(id), "", nil, is(http.StatusNoContent))
	return err
}

// Get reads object id into out.
func (c *Client) Get(ctx context.Context, res Resource, id int, out any) error {
	op := "get " + string(res) + " " + strconv.Itoa(id)
	a, err := c.do(ctx, op, http.MethodGet, res.URI(id), "", nil, is(http.StatusOK))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return &Error{Op: op, Status: a.status, Kind: ErrUnexpected, Detail: "undecodable object: " + err.Error()}
	}
	return nil
}

// List calls each with every object of res matching filter (field=value pairs, such as
// name, alias, primary_email_address, tag), page by page, following meta.next.
func (c *Client) List(ctx context.Context, res Resource, filter url.Values, each func(json.RawMessage) error) error {
	op := "list " + string(res)
	q := url.Values{}
	for k, v := range filter {
		q[k] = v
	}
	q.Set("limit", strconv.Itoa(c.cfg.PageSize))
	q.Set("offset", "0")
	path, query := collection(res), q.Encode()
	seen := 0
	for page := 0; ; page++ {
		a, err := c.do(ctx, op, http.MethodGet, path, query, nil, is(http.StatusOK))
		if err != nil {
			return err
		}
		meta, objects, err := decodeList(a.body)
		if err != nil {
			return &Error{Op: op, Status: a.status, Kind: ErrUnexpected, Detail: err.Error()}
		}
		for _, o := range objects {
			if err := each(o); err != nil {
				return err
			}
		}
		seen += len(objects)
		if meta.Next == nil || *meta.Next == "" {
			return nil
		}
		if len(objects) == 0 || seen > meta.TotalCount || page > meta.TotalCount {
			return &Error{Op: op, Status: a.status, Kind: ErrUnexpected, Detail: "meta.next does not advance"}
		}
		if path, query, err = c.nextPage(res, *meta.Next); err != nil {
			return &Error{Op: op, Status: a.status, Kind: ErrUnexpected, Detail: err.Error()}
		}
	}
}

// nextPage checks that next is a page of the same collection on the same node (the
// Authorization header must go nowhere else) and splits it.
func (c *Client) nextPage(res Resource, next string) (path, query string, err error) {
	u, err := url.Parse(next)
	if err != nil {
		return "", "", fmt.Errorf("meta.next %q: %w", next, err)
	}
	if u.Host != "" && (u.Host != c.base.Host || u.Scheme != c.base.Scheme) || u.Path != collection(res) {
		return "", "", fmt.Errorf("meta.next %q is not a page of %s on this node", next, res)
	}
	return u.Path, u.RawQuery, nil
}

// listPage is a list answer.
type listPage struct {
	Meta    *Meta             `json:"meta"`
	Objects []json.RawMessage `json:"objects"`
}

// decodeList reads a list answer; both the meta and the objects must be there.
func decodeList(body []byte) (Meta, []json.RawMessage, error) {
	var p listPage
	if err := json.Unmarshal(body, &p); err != nil {
		return Meta{}, nil, fmt.Errorf("undecodable list: %w", err)
	}
	if p.Meta == nil || p.Objects == nil {
		return Meta{}, nil, errors.New("list answer without meta or objects")
	}
	if p.Meta.TotalCount < 0 || p.Meta.Limit < 0 || p.Meta.Offset < 0 {
		return Meta{}, nil, errors.New("list answer with a negative count")
	}
	for _, o := range p.Objects {
		if len(o) == 0 || o[0] != '{' {
			return Meta{}, nil, errors.New("list answer with an object that is not a JSON object")
		}
	}
	return *p.Meta, p.Objects, nil
}

// ListAll returns every object of res matching filter, decoded as T.
func ListAll[T any](ctx context.Context, c *Client, res Resource, filter url.Values) ([]T, error) {
	var out []T
	err := c.List(ctx, res, filter, func(raw json.RawMessage) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return &Error{Op: "list " + string(res), Status: 200, Kind: ErrUnexpected, Detail: "undecodable object: " + err.Error()}
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// GetAs reads object id of res as T.
func GetAs[T any](ctx context.Context, c *Client, res Resource, id int) (T, error) {
	var v T
	err := c.Get(ctx, res, id, &v)
	return v, err
}
