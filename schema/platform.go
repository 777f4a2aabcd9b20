package schema

import (
	"net"
	"net/url"
	"strings"
)

// Roles of a roster instance (SPEC §8): only the primary sends emails and writes platforms.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// Pexip delivery modes (SPEC §8).
const (
	PexipPush   = "push"   // write objects through the management REST API
	PexipPolicy = "policy" // answer the conferencing nodes' external policy requests
)

// Platforms are the conferencing platforms roster delivers its state to; with none,
// SQLite is the only record.
type Platforms struct {
	Pexip *PexipConfig `json:"pexip,omitempty"`
}

// PexipConfig is platforms.pexip of config.cue. The password is never here: only the name
// of the environment variable that holds it.
type PexipConfig struct {
	URL           string `json:"url"`
	Username      string `json:"username"`
	PasswordEnv   string `json:"password_env"`
	CAFile        string `json:"ca_file"`
	Mode          string `json:"mode"`             // push | policy
	Rate          int    `json:"rate"`             // push: requests per minute
	PolicyListen  string `json:"policy_listen"`    // policy: host:port the nodes call
	PolicyCert    string `json:"policy_cert_file"` // policy: TLS certificate (PEM); none: plain HTTP on loopback only
	PolicyKey     string `json:"policy_key_file"`  // policy: TLS key (PEM)
	PolicyUnknown string `json:"policy_unknown"`   // continue | reject
	// CheckInterval is how often serve checks the platform for drift (push; default 24h).
	CheckInterval Duration `json:"check_interval"`
	// PushTimeout bounds a command's push (apply, remind, notify; default 15m): then the
	// command stops, exits 1, and the rest stays queued for the next run or the daemon.
	PushTimeout Duration `json:"push_timeout"`
}

// checkPlatforms checks what the CUE schema cannot say: where plain HTTP is allowed and
// which fields each mode needs. at gives the position of a config path.
func checkPlatforms(cfg *Config, at func(string) Pos) ErrorList {
	px := cfg.Platforms.Pexip
	if px == nil {
		return nil
	}
	const p = "platforms.pexip"
	var list ErrorList
	if px.Mode == PexipPush && px.URL == "" {
		list = append(list, Errorf(at(p), "%s.url: push mode needs the management node's url", p))
	}
	if px.URL != "" {
		if msg := checkPexipURL(px.URL); msg != "" {
			list = append(list, Errorf(at(p+".url"), "%s.url: %q %s", p, px.URL, msg))
		}
	}
	if px.Mode == PexipPolicy && px.PolicyListen == "" {
		list = append(list, Errorf(at(p), "%s.policy_listen: policy mode needs the host:port the conferencing nodes call", p))
	}
	if px.PolicyListen != "" {
		if host, _, err := net.SplitHostPort(px.PolicyListen); err != nil {
			list = append(list, Errorf(at(p+".policy_listen"), "%s.policy_listen: %q is not host:port", p, px.PolicyListen))
		} else if px.PolicyCert == "" && !IsLoopbackHost(host) {
			list = append(list, Errorf(at(p+".policy_listen"), "%s.policy_listen: %q is not a loopback address: give policy_cert_file and policy_key_file (the answers carry PINs and passwords)", p, px.PolicyListen))
		}
	}
	if (px.PolicyCert == "") != (px.PolicyKey == "") {
		list = append(list, Errorf(at(p), "%s: give both policy_cert_file and policy_key_file, or neither", p))
	}
	return list
}

// checkPexipURL returns why u is not an acceptable management URL, or "". Basic auth
// sends the password with every request, so plain http:// is allowed only where nothing
// leaves the machine; credentials belong in password_env, never in the URL.
func checkPexipURL(u string) string {
	pu, err := url.Parse(u)
	switch {
	case err != nil || pu.Host == "":
		return "is not an http(s) URL with a host"
	case pu.User != nil:
		return "must not hold credentials (use username and password_env)"
	case pu.RawQuery != "" || pu.Fragment != "":
		return "must not have a query or fragment"
	case strings.Trim(pu.Path, "/") != "":
		return "must be the node's address only (roster adds /api/admin/configuration/v1/)"
	case pu.Scheme == "http" && !IsLoopbackHost(pu.Hostname()):
		return "uses http:// on a non-loopback address: use https:// (the password would cross the network in clear)"
	}
	return ""
}

// IsLoopbackHost reports whether host (no port) names this machine only: localhost or
// a loopback IP address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
