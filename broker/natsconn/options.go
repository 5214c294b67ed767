// Package natsconn is how every Switchboard process connects to NATS: one
// place turns the connection settings (URL, credentials file, nkey,
// user/password, token, TLS with a private CA or a client certificate) into
// nats.go options, logs disconnects and reconnects without secrets, and
// reports a connection that is closed for good so a long-running process can
// stop instead of pretending to be healthy. It also keeps the token and URL
// that `switchboard up` leaves in its data directory for its neighbours.
package natsconn

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Options are the settings of one connection. Secrets (Password, Token) are
// never logged: String and LogValue leave them out.
type Options struct {
	// URL is one server URL or several, comma-separated.
	URL string
	// Name is the client name the server shows (connz).
	Name string
	// CredsFile is a user credentials file (user JWT + nkey seed).
	CredsFile string
	// NKeyFile is a file holding a user nkey seed (SU...).
	NKeyFile string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// TLSCA is a PEM file of CA certificates the server's certificate must
	// chain to (a private CA); setting it requires TLS.
	TLSCA string
	// TLSCert and TLSKey are a PEM client certificate and its key, for
	// servers that verify clients; setting them requires TLS.
	TLSCert, TLSKey string
	// ReconnectWait is the pause between reconnect attempts (default 250ms).
	ReconnectWait time.Duration
	// Timeout bounds one connection attempt (default 5s).
	Timeout time.Duration
	// InProcess, when set, is a server in this process (the embedded one)
	// to connect to over an in-memory pipe instead of a socket to URL: no
	// system call per message, which about halves a NATS round trip. URL
	// still names the server in logs.
	InProcess nats.InProcessConnProvider
}

// HasAuth reports whether any credential is set, in the options or as
// user information in the URL.
func (o Options) HasAuth() bool {
	return o.CredsFile != "" || o.NKeyFile != "" || o.User != "" || o.Password != "" || o.Token != "" || urlHasUserInfo(o.URL)
}

// Validate checks that at most one credential is given, that pairs are
// complete, and that the files named exist.
func (o Options) Validate() error {
	if strings.TrimSpace(o.URL) == "" {
		return fmt.Errorf("nats url: empty")
	}
	var given []string
	if o.CredsFile != "" {
		given = append(given, "creds")
	}
	if o.NKeyFile != "" {
		given = append(given, "nkey")
	}
	if o.User != "" || o.Password != "" {
		given = append(given, "user/password")
	}
	if o.Token != "" {
		given = append(given, "token")
	}
	if urlHasUserInfo(o.URL) {
		given = append(given, "credentials in the URL")
	}
	if len(given) > 1 {
		return fmt.Errorf("%w: %s; use one", ErrConflictingAuth, strings.Join(given, " and "))
	}
	if (o.User == "") != (o.Password == "") {
		return fmt.Errorf("%w: a user needs a password and a password a user", ErrIncompleteAuth)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("%w: a TLS client certificate needs its key and a key its certificate", ErrIncompleteAuth)
	}
	for _, f := range []struct{ what, path string }{
		{"creds file", o.CredsFile}, {"nkey seed file", o.NKeyFile},
		{"TLS CA file", o.TLSCA}, {"TLS certificate file", o.TLSCert}, {"TLS key file", o.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("nats %s: %w", f.what, err)
		}
	}
	return nil
}

// auth names the credential in use, for messages ("token", "nkey", ...).
func (o Options) auth() string {
	switch {
	case o.CredsFile != "":
		return "creds " + o.CredsFile
	case o.NKeyFile != "":
		return "nkey " + o.NKeyFile
	case o.User != "":
		return "user " + o.User
	case o.Token != "":
		return "token"
	case urlHasUserInfo(o.URL):
		return "credentials in the URL"
	}
	return "no auth"
}

// String describes the options without secrets.
func (o Options) String() string {
	s := RedactURL(o.URL) + " (" + o.auth()
	if o.TLSCA != "" || o.TLSCert != "" {
		s += ", TLS"
	}
	return s + ")"
}

// LogValue logs the options without secrets.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", RedactURL(o.URL)), slog.String("auth", o.auth()),
		slog.Bool("tls", o.TLSCA != "" || o.TLSCert != ""))
}

// natsOptions turns the settings into nats.go options.
func (o Options) natsOptions() ([]nats.Option, error) {
	wait, timeout := o.ReconnectWait, o.Timeout
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.Timeout(timeout),
	}
	switch {
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed file %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	}
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// RedactURL replaces any user information (user, password or token) in
// one URL or a comma-separated list with "redacted".
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil {
			if strings.Contains(p, "@") {
				p = "redacted@" + p[strings.LastIndex(p, "@")+1:]
			}
			parts[i] = p
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// IsLoopbackHost reports whether host (an IP or "localhost") only accepts
// connections from this machine. An empty host means every interface.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLocalURL reports whether every server in a URL list is on a loopback
// address (a scheme-less "host:port" counts too).
func IsLocalURL(s string) bool {
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		u, err := url.Parse(p)
		if err != nil || !IsLoopbackHost(u.Hostname()) {
			return false
		}
	}
	return true
}

func urlHasUserInfo(s string) bool {
	for _, p := range strings.Split(s, ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			return true
		} else if err != nil && strings.Contains(p, "@") {
			return true
		}
	}
	return false
}
