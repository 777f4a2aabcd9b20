package notify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/roster-dev/roster/schema"
)

// Timeouts of an SMTP conversation.
const (
	dialTimeout       = 30 * time.Second
	commandTimeout    = time.Minute
	submissionTimeout = 5 * time.Minute
)

// pool is the senders of one run for one destination: PoolSize workers, each with its own
// connection (cfg nil: mail_dir). Once a connection cannot be made, the destination is
// down for the rest of the run and its rows are deferred.
type pool struct {
	r    *run
	name string
	cfg  *schema.SMTPConfig

	live    atomic.Int32 // senders connected or connecting
	mu      sync.Mutex
	downErr error
}

func (p *pool) down() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.downErr
}

func (p *pool) setDown(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.downErr == nil {
		p.downErr = err
		p.r.d.logger().Error("SMTP server unavailable", "server", p.name, "err", err)
	}
}

func (p *pool) from() string {
	if p.cfg != nil {
		return p.cfg.From
	}
	if p.r.d.From != "" {
		return p.r.d.From
	}
	return "roster@localhost"
}

// start runs n composers and n senders for the jobs of q. Composing is a stage of its own
// so that it overlaps the senders' waits for the server's replies.
func (p *pool) start(q <-chan job, n int, wg *sync.WaitGroup) {
	composed := make(chan job, 32*n)
	var cwg sync.WaitGroup
	for range n {
		cwg.Add(1)
		go func() { defer cwg.Done(); p.compose(q, composed) }()
	}
	go func() { cwg.Wait(); close(composed) }()
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); p.work(composed) }()
	}
}

// compose renders the jobs of q for the senders; an email that cannot be composed fails.
func (p *pool) compose(q <-chan job, out chan<- job) {
	r := p.r
	for j := range q {
		if r.ctx.Err() != nil {
			r.release(j.row)
			continue
		}
		m, err := r.d.comp().Compose(&j.row, p.from(), r.d.now())
		if err != nil {
			r.fail(j.row, err)
			continue
		}
		j.m = m
		out <- j
	}
}

// work sends the composed jobs of q, reusing one connection, until q is closed.
func (p *pool) work(q <-chan job) {
	r := p.r
	var c *smtp.Client
	defer func() {
		if c != nil {
			c.Quit()
			c.Close()
			p.live.Add(-1)
		}
	}()
	for j := range q {
		row := j.row
		if r.ctx.Err() != nil {
			j.m.Release()
			r.release(row)
			continue
		}
		m := j.m
		if p.cfg == nil {
			err := writeMailDir(r.d.MailDir, m)
			m.Release()
			if err != nil {
				r.fail(row, err)
				continue
			}
			r.sent(row, m.MessageID)
			continue
		}
		if c == nil {
			if err := p.down(); err != nil {
				m.Release()
				r.deferRow(row, err)
				continue
			}
			var err error
			p.live.Add(1)
			if c, err = p.dial(); err != nil {
				c = nil
				m.Release()
				if p.live.Add(-1) > 0 {
					// Another sender is connected (the server may limit connections per
					// client): leave the work to it and stop this one.
					r.d.logger().Warn("extra SMTP connection refused; sending on fewer", "server", p.name, "err", err)
					r.deferRowFor(row, err, r.d.backoff(1))
					return
				}
				p.setDown(err)
				r.deferRow(row, err)
				continue
			}
		}
		err := sendMessage(c, m)
		m.Release()
		if err == nil {
			r.sent(row, m.MessageID)
			continue
		}
		r.fail(row, err)
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code != 421 && c.Reset() == nil {
			continue // the server refused this message; the connection is still good
		}
		// A dropped connection (or 421): make a new one for the next message.
		c.Close()
		c = nil
		p.live.Add(-1)
	}
}

// sendMessage runs one mail transaction on c. It returns nil only after the server's 250
// to the final dot.
func sendMessage(c *smtp.Client, m *Message) error {
	var opts *smtp.MailOptions
	if m.UTF8Envelope() {
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(m.From.Address, opts); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To.Address, nil); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(m.Data); err != nil {
		w.Close()
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

// dial connects, greets, secures and authenticates per the server's configuration.
func (p *pool) dial() (*smtp.Client, error) {
	cfg := p.cfg
	d := p.r.d
	port := cfg.Port
	if port == 0 {
		switch cfg.Security {
		case "tls":
			port = 465
		case "starttls":
			port = 587
		default:
			port = 25
		}
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(port))
	tlsConf := &tls.Config{}
	if d.TLSConfig != nil {
		tlsConf = d.TLSConfig.Clone()
	}
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = cfg.Host
	}
	dialer := &net.Dialer{Timeout: dialTimeout}
	conn, err := dialer.DialContext(p.r.ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	var c *smtp.Client
	switch cfg.Security {
	case "tls":
		tc := tls.Client(conn, tlsConf)
		tc.SetDeadline(time.Now().Add(dialTimeout))
		if err := tc.HandshakeContext(p.r.ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		tc.SetDeadline(time.Time{})
		c = smtp.NewClient(tc)
	case "starttls":
		// EHLO, STARTTLS, and a new EHLO (below) over TLS.
		if c, err = smtp.NewClientStartTLS(conn, tlsConf); err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", addr, err)
		}
	case "none", "":
		c = smtp.NewClient(conn)
	default:
		conn.Close()
		return nil, fmt.Errorf("smtp server %s: unknown security %q (none, starttls or tls)", p.name, cfg.Security)
	}
	c.CommandTimeout = commandTimeout
	c.SubmissionTimeout = submissionTimeout
	fail := func(format string, err error) (*smtp.Client, error) {
		c.Close()
		return nil, fmt.Errorf(format, addr, err)
	}
	if err := c.Hello(d.heloName()); err != nil {
		return fail("greeting %s: %w", err)
	}
	if cfg.Username != "" {
		_, isTLS := c.TLSConnectionState()
		if !isTLS && !isLocalhost(cfg.Host) {
			return fail("%s: %w", errors.New("refusing to send the SMTP password over an unencrypted connection (use security starttls or tls)"))
		}
		password := ""
		if d.Password != nil && cfg.PasswordEnv != "" {
			password = d.Password(cfg.PasswordEnv)
		}
		var a sasl.Client
		switch {
		case c.SupportsAuth(sasl.Plain):
			a = sasl.NewPlainClient("", cfg.Username, password)
		case c.SupportsAuth(sasl.Login):
			a = sasl.NewLoginClient(cfg.Username, password)
		default:
			return fail("%s: %w", errors.New("server offers neither AUTH PLAIN nor LOGIN"))
		}
		if err := c.Auth(a); err != nil {
			return fail("authenticate to %s: %w", err)
		}
	}
	return c, nil
}

func (d *Deliverer) heloName() string {
	if d.HeloName != "" {
		return d.HeloName
	}
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") {
		return h
	}
	return "localhost"
}

func isLocalhost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
