package policy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Listen opens the policy listener on addr (policy_listen). With a certificate and key it
// serves HTTPS. Without them it serves plain HTTP, which is allowed only on a loopback
// address: the answers carry PINs and device passwords in clear.
func Listen(addr, certFile, keyFile string) (net.Listener, error) {
	ln, err := ListenTCP(addr, certFile, keyFile)
	if err != nil || certFile == "" {
		return ln, err
	}
	return WrapTLS(ln, certFile, keyFile)
}

// ListenTCP opens the TCP socket Listen serves on, checking what Listen checks (both
// files or neither, each loadable; plain HTTP on loopback only). The daemon opens it and
// hands it to its answering process, which wraps it with WrapTLS.
func ListenTCP(addr, certFile, keyFile string) (*net.TCPListener, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("policy listener %s: give both a certificate and a key file, or neither", addr)
	}
	if certFile == "" && !loopbackAddr(addr) {
		return nil, fmt.Errorf("policy listener %s: plain HTTP is allowed only on a loopback address (127.0.0.1, ::1, localhost); give a certificate and key for HTTPS", addr)
	}
	if certFile != "" {
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("policy listener %s: load certificate: %w", addr, err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("policy listener: %w", err)
	}
	tl := ln.(*net.TCPListener)
	// "localhost" could resolve anywhere: check what was actually bound.
	if ta, ok := ln.Addr().(*net.TCPAddr); certFile == "" && (!ok || !ta.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("policy listener %s: bound %s, not a loopback address; plain HTTP refused", addr, ln.Addr())
	}
	return tl, nil
}

// WrapTLS serves HTTPS on ln with the certificate and key files.
func WrapTLS(ln net.Listener, certFile, keyFile string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("policy listener %s: load certificate: %w", ln.Addr(), err)
	}
	return tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}), nil
}

// loopbackAddr reports whether addr's host is a loopback IP or "localhost". An empty
// host (":8443") means every interface: not loopback.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Serve serves h on ln until ctx ends, then shuts down gracefully (in-flight answers
// finish, for at most 5 s). Timeouts are short: a node gives up after NodeDeadline.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: NodeDeadline,
		ReadTimeout:       NodeDeadline,
		WriteTimeout:      2 * NodeDeadline,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug), // TLS handshake noise
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("policy server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("policy server shutdown: %w", err)
	}
	return nil
}
