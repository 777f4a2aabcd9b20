// Package policytest holds test helpers for the policy server: a fake conferencing node
// that sends the documented policy requests and reads the answers as Pexip does, and a
// self-signed certificate for HTTPS on loopback.
package policytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/roster-dev/roster/reconcile/policy"
)

// Kind is what a node does with an answer.
type Kind int

const (
	// Fallback: the node uses its own database (non-200, a body that is not
	// status "success", action "continue" with an empty result, a timeout).
	Fallback Kind = iota
	// Reject: the call or registration is refused (action "reject").
	Reject
	// Conference: the call goes to the VMR described by Service.
	Conference
	// Register: the device registers with Credentials.
	Register
)

func (k Kind) String() string {
	return [...]string{"fallback", "reject", "conference", "register"}[k]
}

// Service is a service configuration result, read strictly: a field the node does not
// know makes the answer unreadable (fallback), so a misspelt field cannot pass a test.
type Service struct {
	ServiceType              string `json:"service_type"`
	Name                     string `json:"name"`
	ServiceTag               string `json:"service_tag"`
	Description              string `json:"description,omitempty"`
	PIN                      string `json:"pin,omitempty"`
	GuestPIN                 string `json:"guest_pin,omitempty"`
	AllowGuests              *bool  `json:"allow_guests,omitempty"`
	MaxCallrateIn            *int64 `json:"max_callrate_in,omitempty"`  // bps
	MaxCallrateOut           *int64 `json:"max_callrate_out,omitempty"` // bps
	ParticipantLimit         *int64 `json:"participant_limit,omitempty"`
	PrimaryOwnerEmailAddress string `json:"primary_owner_email_address,omitempty"`
}

// Credentials are a registration result.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Decision is how a node acts on one answer.
type Decision struct {
	Kind        Kind
	HTTPStatus  int    // 0 when no answer came
	Reason      string // why a fallback
	Service     Service
	Credentials Credentials
	Elapsed     time.Duration
}

// Node is a fake conferencing node calling a policy server at BaseURL.
type Node struct {
	BaseURL            string // e.g. https://127.0.0.1:8443
	Username, Password string // Basic credentials of the policy profile; none if empty
	Client             *http.Client
	// Deadline is how long the node waits; zero means policy.NodeDeadline.
	Deadline time.Duration
}

// CallParams are the parameters a node sends beside local_alias. Values given to
// ServiceConfiguration replace these.
var CallParams = url.Values{
	"remote_alias":      {"sip:caller@example.net"},
	"remote_address":    {"198.51.100.7"},
	"call_direction":    {"dial_in"},
	"protocol":          {"sip"},
	"location":          {"Oslo"},
	"node_ip":           {"127.0.0.1"},
	"bandwidth":         {"0"},
	"call_tag":          {""},
	"vendor":            {"Cisco Webex Room Kit ce11.3"},
	"version_id":        {"34"},
	"pseudo_version_id": {"77683.0.0"},
}

// ServiceConfiguration asks for the service behind localAlias (sent as given, scheme and
// all, URL-encoded), with CallParams overridden by extra.
func (n *Node) ServiceConfiguration(ctx context.Context, localAlias string, extra url.Values) Decision {
	q := url.Values{"local_alias": {localAlias}}
	for k, v := range CallParams {
		q[k] = v
	}
	for k, v := range extra {
		q[k] = v
	}
	d, result := n.get(ctx, policy.ServiceConfigurationPath+"?"+q.Encode(), true)
	if result == nil {
		return d
	}
	if err := strictDecode(result, &d.Service); err != nil {
		return d.fallback("result: %v", err)
	}
	if d.Service.ServiceType != "conference" || d.Service.Name == "" {
		return d.fallback("result without service_type conference and a name")
	}
	d.Kind = Conference
	return d
}

// Registration asks whether the device alias may register over protocol. The alias is
// percent-encoded in full (':' and '@' too) in the path.
func (n *Node) Registration(ctx context.Context, alias, protocol string) Decision {
	q := url.Values{"protocol": {protocol}, "auth_type": {"digest"}, "remote_address": {"198.51.100.8"}}
	path := policy.RegistrationsPrefix + strings.ReplaceAll(url.QueryEscape(alias), "+", "%20")
	d, result := n.get(ctx, path+"?"+q.Encode(), false)
	if result == nil {
		return d
	}
	if err := strictDecode(result, &d.Credentials); err != nil {
		return d.fallback("result: %v", err)
	}
	if d.Credentials.Username == "" || d.Credentials.Password == "" {
		return d.fallback("result without username and password")
	}
	d.Kind = Register
	return d
}

func (d Decision) fallback(format string, args ...any) Decision {
	d.Kind, d.Reason = Fallback, fmt.Sprintf(format, args...)
	d.Service, d.Credentials = Service{}, Credentials{}
	return d
}

// get sends one request and reads the envelope. It returns the result object when the
// answer is a success carrying one; otherwise the decision is final (Fallback or Reject).
// A service configuration answer must name its action; a registration answer may not.
func (n *Node) get(ctx context.Context, pathQuery string, needAction bool) (Decision, json.RawMessage) {
	deadline := n.Deadline
	if deadline == 0 {
		deadline = policy.NodeDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	var d Decision
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.BaseURL+pathQuery, nil)
	if err != nil {
		return d.fallback("request: %v", err), nil
	}
	if n.Username != "" {
		req.SetBasicAuth(n.Username, n.Password)
	}
	client := n.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		d.Elapsed = time.Since(start)
		return d.fallback("no answer: %v", err), nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d.Elapsed, d.HTTPStatus = time.Since(start), resp.StatusCode
	switch {
	case err != nil:
		return d.fallback("read answer: %v", err), nil
	case resp.StatusCode != http.StatusOK:
		return d.fallback("HTTP %d", resp.StatusCode), nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return d.fallback("content type %q", resp.Header.Get("Content-Type")), nil
	}
	var env struct {
		Status string          `json:"status"`
		Action string          `json:"action"`
		Result json.RawMessage `json:"result"`
	}
	if err := strictDecode(body, &env); err != nil {
		return d.fallback("body: %v", err), nil
	}
	switch {
	case env.Status != "success":
		return d.fallback("status %q", env.Status), nil
	case env.Action == "reject":
		d.Kind = Reject
		return d, nil
	case env.Action == "" && needAction:
		return d.fallback("no action"), nil
	case env.Action != "" && env.Action != "continue":
		return d.fallback("action %q", env.Action), nil
	case len(env.Result) == 0 || string(bytes.Join(bytes.Fields(env.Result), nil)) == "{}":
		return d.fallback("continue with an empty result"), nil
	}
	return d, env.Result
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// LoadAverage is /proc/loadavg's first three figures, where there is one: a load
// benchmark shares its machine, and its latencies mean little without it.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
