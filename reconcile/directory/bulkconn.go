package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// bulkConn is the connection of one Search's full reads through the bulk reader: dialled and
// bound (simple bind) at the start of the Search, closed at its end, so no paged-results state
// or idle connection outlives it. Requests are encoded with go-ldap's and go-asn1-ber's
// encoders; responses are read by a bulkReader.
type bulkConn struct {
	nc      net.Conn
	rd      *bulkReader
	id      int64
	timeout time.Duration
	// cancelled is set (and the read deadline moved to the past) when the Search's context
	// ends, so a blocked read returns; deadlineReader sees it too.
	cancelled atomic.Bool
	stop      func() bool
}

// errTimedOut is go-ldap's error for a request that got no answer in time.
var errTimedOut = ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection timed out"))

// dialBulk connects and binds as the configuration says, with the same errors as
// connection (go-ldap's): "connect", "starttls" and "bind as" failures, fail closed. The
// connection is the Directory's bulk connection until the Search drops it; Close closes it.
func (d *ldapDirectory) dialBulk(ctx context.Context) (*bulkConn, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, d.fail("connect", errors.New("directory is closed"))
	}
	u, err := url.Parse(d.cfg.URL)
	if err != nil {
		return nil, d.fail("connect", ldap.NewError(ldap.ErrorNetwork, err))
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = ldap.DefaultLdapPort
		if u.Scheme == "ldaps" {
			port = ldap.DefaultLdapsPort
		}
	}
	addr := net.JoinHostPort(host, port)
	dctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	var nc net.Conn
	if u.Scheme == "ldaps" {
		td := &tls.Dialer{NetDialer: &net.Dialer{}, Config: d.tls}
		nc, err = td.DialContext(dctx, "tcp", addr)
	} else {
		nc, err = (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, d.fail("connect", ldap.NewError(ldap.ErrorNetwork, err))
	}
	c := &bulkConn{nc: nc, timeout: d.cfg.Timeout}
	c.rd = newBulkReader(deadlineReader{c})
	c.stop = context.AfterFunc(ctx, func() {
		c.cancelled.Store(true)
		_ = nc.SetReadDeadline(time.Unix(1, 0))
	})
	if d.cfg.StartTLS {
		if err := c.startTLS(d.tls); err != nil {
			c.close()
			return nil, d.fail("starttls", c.readErr(ctx, err))
		}
	}
	if d.cfg.BindDN != "" {
		if err := c.bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
			c.close()
			return nil, d.fail(fmt.Sprintf("bind as %q", d.cfg.BindDN), c.readErr(ctx, err))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.close()
		return nil, d.fail("connect", errors.New("directory is closed"))
	}
	d.bulk = c
	return c, nil
}

func (c *bulkConn) close() {
	c.stop()
	_ = c.nc.Close()
}

// deadlineReader reads from the connection with a deadline of the timeout from each read:
// the time the caller spends on entries does not count against the server, and the server
// bounds each page too (the search's time limit).
type deadlineReader struct{ c *bulkConn }

func (r deadlineReader) Read(p []byte) (int, error) {
	c := r.c
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	if c.cancelled.Load() {
		// The context ended between the check and the deadline just set: keep it ended.
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	return c.nc.Read(p)
}

// readErr says what a failed exchange means: the context's end, go-ldap's timeout, or a
// network error as go-ldap reports one.
func (c *bulkConn) readErr(ctx context.Context, err error) error {
	var le *ldap.Error
	switch {
	case ctx.Err() != nil && (c.cancelled.Load() || errors.Is(err, ctx.Err())):
		return ctx.Err()
	case errors.Is(err, errUnsupported) || errors.As(err, &le):
		return err
	case errors.Is(err, errTimedOut) || isTimeout(err):
		return errTimedOut
	}
	return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("read response: %w", err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// send writes one request (protocolOp and optional controls) with the next message id.
func (c *bulkConn) send(op *ber.Packet, controls *ber.Packet) error {
	c.id++
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, c.id, "MessageID"))
	p.AppendChild(op)
	if controls != nil {
		p.AppendChild(controls)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := c.nc.Write(p.Bytes()); err != nil {
		if isTimeout(err) {
			return errTimedOut
		}
		return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("unable to send request: %w", err))
	}
	return nil
}

// result reads the response to the last request, of type op, and returns go-ldap's error
// for its result code.
func (c *bulkConn) result(op byte) error {
	b, err := c.rd.next()
	if err != nil {
		return err
	}
	m, err := splitMessage(b)
	if err != nil {
		return err
	}
	if m.id != c.id || m.op != op {
		return fmt.Errorf("unexpected response 0x%02x to message %d (want 0x%02x to %d)", m.op, m.id, op, c.id)
	}
	p, err := decodeWithGoLDAP(m)
	if err != nil {
		return err
	}
	return ldap.GetLDAPError(p)
}

// startTLS upgrades the connection as go-ldap's Conn.StartTLS does.
func (c *bulkConn) startTLS(cfg *tls.Config) error {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "1.3.6.1.4.1.1466.20037", "TLS Extended Command"))
	if err := c.send(req, nil); err != nil {
		return err
	}
	if err := c.result(0x60 | ldap.ApplicationExtendedResponse); err != nil {
		return err
	}
	if c.rd.br.Buffered() > c.rd.pending {
		return errors.New("data after the StartTLS response")
	}
	tc := tls.Client(c.nc, cfg)
	_ = tc.SetDeadline(time.Now().Add(c.timeout))
	if err := tc.Handshake(); err != nil {
		return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("TLS handshake failed (%v)", err))
	}
	c.nc = tc
	c.rd.br.Reset(deadlineReader{c})
	c.rd.pending = 0
	return nil
}

// bind is a simple bind (RFC 4511 4.2), as go-ldap's Conn.Bind.
func (c *bulkConn) bind(dn, password string) error {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "Bind Request")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "Version"))
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "User Name"))
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, password, "Password"))
	if err := c.send(req, nil); err != nil {
		return err
	}
	return c.result(0x60 | ldap.ApplicationBindResponse)
}

// search sends one page's subtree search request with the paging control.
func (c *bulkConn) search(base, filter string, attrs []string, timeLimit int, paging *ldap.ControlPaging) error {
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		return err
	}
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "Search Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "Base DN"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, uint64(ldap.ScopeWholeSubtree), "Scope"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, uint64(ldap.NeverDerefAliases), "Deref Aliases"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, uint64(0), "Size Limit"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, uint64(timeLimit), "Time Limit"))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "Types Only"))
	req.AppendChild(f)
	ap := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes")
	for _, a := range attrs {
		ap.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "Attribute"))
	}
	req.AppendChild(ap)
	controls := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
	controls.AppendChild(paging.Encode())
	return c.send(req, controls)
}
