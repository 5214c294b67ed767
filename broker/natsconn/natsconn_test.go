package natsconn_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/switchboard-llm/switchboard/broker/natsconn"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
)

func newLog() (*slog.Logger, *syncbuf.Buffer) {
	var buf syncbuf.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// roundTrip proves the connection is authorised end to end: a request
// answered by a subscriber on the same connection, and JetStream.
func roundTrip(t *testing.T, c *natsconn.Conn) {
	t.Helper()
	sub, err := c.Subscribe("auth.echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("echo "), m.Data...)) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	reply, err := c.Request("auth.echo", []byte("hi"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply.Data) != "echo hi" {
		t.Fatalf("reply %q", reply.Data)
	}
	js, err := jetstream.New(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("jetstream: %v", err)
	}
}

// authCase is one server requiring one kind of credential.
type authCase struct {
	name   string
	server func(t *testing.T) *natstest.Server
	good   func(t *testing.T, url string) natsconn.Options
	bad    func(t *testing.T, url string) natsconn.Options
}

func authCases() []authCase {
	return []authCase{
		{
			name: "token",
			server: func(t *testing.T) *natstest.Server {
				return natstest.StartWith(t, func(o *server.Options) { o.Authorization = "tok-s3cret" })
			},
			good: func(_ *testing.T, url string) natsconn.Options {
				return natsconn.Options{URL: url, Token: "tok-s3cret"}
			},
			bad: func(_ *testing.T, url string) natsconn.Options { return natsconn.Options{URL: url, Token: "wrong"} },
		},
		{
			name: "user/password",
			server: func(t *testing.T) *natstest.Server {
				return natstest.StartWith(t, func(o *server.Options) { o.Username, o.Password = "sb", "pw-s3cret" })
			},
			good: func(_ *testing.T, url string) natsconn.Options {
				return natsconn.Options{URL: url, User: "sb", Password: "pw-s3cret"}
			},
			bad: func(_ *testing.T, url string) natsconn.Options {
				return natsconn.Options{URL: url, User: "sb", Password: "nope"}
			},
		},
		nkeyCase(),
		credsCase(),
		tlsCase(),
	}
}

func nkeyCase() authCase {
	var seedFile string
	return authCase{
		name: "nkey",
		server: func(t *testing.T) *natstest.Server {
			user, err := nkeys.CreateUser()
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := user.PublicKey()
			seed, _ := user.Seed()
			seedFile = writeFile(t, "user.nk", string(seed)+"\n")
			return natstest.StartWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
		},
		good: func(_ *testing.T, url string) natsconn.Options { return natsconn.Options{URL: url, NKeyFile: seedFile} },
		bad: func(t *testing.T, url string) natsconn.Options {
			other, _ := nkeys.CreateUser()
			seed, _ := other.Seed()
			return natsconn.Options{URL: url, NKeyFile: writeFile(t, "other.nk", string(seed))}
		},
	}
}

// credsCase runs the server in operator mode (operator -> account -> user
// JWTs, made here, accounts in a memory resolver) and connects with a user
// credentials file.
func credsCase() authCase {
	var credsFile string
	var acctKP nkeys.KeyPair
	return authCase{
		name: "creds (JWT)",
		server: func(t *testing.T) *natstest.Server {
			op, _ := nkeys.CreateOperator()
			opPub, _ := op.PublicKey()
			opClaims := jwt.NewOperatorClaims(opPub)
			opJWT, err := opClaims.Encode(op)
			if err != nil {
				t.Fatal(err)
			}
			opDecoded, err := jwt.DecodeOperatorClaims(opJWT)
			if err != nil {
				t.Fatal(err)
			}
			acctKP, _ = nkeys.CreateAccount()
			acctPub, _ := acctKP.PublicKey()
			ac := jwt.NewAccountClaims(acctPub)
			ac.Name = "switchboard"
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
			acctJWT, err := ac.Encode(op)
			if err != nil {
				t.Fatal(err)
			}
			sysKP, _ := nkeys.CreateAccount() // operator mode with JetStream needs a system account
			sysPub, _ := sysKP.PublicKey()
			sc := jwt.NewAccountClaims(sysPub)
			sc.Name = "SYS"
			sysJWT, err := sc.Encode(op)
			if err != nil {
				t.Fatal(err)
			}
			credsFile = userCreds(t, acctKP, "sb-user")
			resolver := &server.MemAccResolver{}
			if err := resolver.Store(acctPub, acctJWT); err != nil {
				t.Fatal(err)
			}
			if err := resolver.Store(sysPub, sysJWT); err != nil {
				t.Fatal(err)
			}
			return natstest.StartWith(t, func(o *server.Options) {
				o.TrustedOperators = []*jwt.OperatorClaims{opDecoded}
				o.AccountResolver = resolver
				o.SystemAccount = sysPub
			})
		},
		good: func(_ *testing.T, url string) natsconn.Options {
			return natsconn.Options{URL: url, CredsFile: credsFile}
		},
		bad: func(t *testing.T, url string) natsconn.Options {
			stranger, _ := nkeys.CreateAccount() // not known to the operator
			return natsconn.Options{URL: url, CredsFile: userCreds(t, stranger, "stranger")}
		},
	}
}

func userCreds(t *testing.T, acct nkeys.KeyPair, name string) string {
	t.Helper()
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	userJWT, err := uc.Encode(acct)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, name+".creds", string(creds))
}

// tlsCase: TLS with a private CA made here, and a client certificate the
// server verifies.
func tlsCase() authCase {
	var pki testPKI
	return authCase{
		name: "TLS + client certificate",
		server: func(t *testing.T) *natstest.Server {
			pki = newPKI(t)
			return natstest.StartWith(t, func(o *server.Options) {
				o.TLS, o.TLSVerify = true, true
				o.TLSConfig = &tls.Config{
					Certificates: []tls.Certificate{pki.server},
					ClientCAs:    pki.pool,
					ClientAuth:   tls.RequireAndVerifyClientCert,
					MinVersion:   tls.VersionTLS12,
				}
			})
		},
		good: func(_ *testing.T, url string) natsconn.Options {
			return natsconn.Options{URL: url, TLSCA: pki.caFile, TLSCert: pki.clientCert, TLSKey: pki.clientKey}
		},
		bad: func(_ *testing.T, url string) natsconn.Options {
			return natsconn.Options{URL: url, TLSCA: pki.caFile} // no client certificate
		},
	}
}

type testPKI struct {
	pool                          *x509.CertPool
	server                        tls.Certificate
	caFile, clientCert, clientKey string
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchboard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	srvCert, srvKey := issue(2, "nats server", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := issue(3, "switchboard client", x509.ExtKeyUsageClientAuth)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	p := testPKI{pool: pool, server: pair,
		caFile:     filepath.Join(dir, "ca.pem"),
		clientCert: filepath.Join(dir, "client.pem"),
		clientKey:  filepath.Join(dir, "client-key.pem"),
	}
	for path, data := range map[string][]byte{
		p.caFile:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		p.clientCert: cliCert, p.clientKey: cliKey,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Each server requires one kind of credential: the right one connects and
// reaches JetStream, none or a wrong one is refused.
func TestConnectWithEachCredential(t *testing.T) {
	for _, tc := range authCases() {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.server(t)
			url := ns.ClientURL()
			log, buf := newLog()
			ctx := natstest.Context(t)

			if _, err := natsconn.Connect(ctx, natsconn.Options{URL: url, Timeout: 2 * time.Second}, log); err == nil {
				t.Fatal("connected without credentials")
			}
			if _, err := natsconn.Connect(ctx, tc.bad(t, url), log); err == nil {
				t.Fatal("connected with wrong credentials")
			}

			o := tc.good(t, url)
			o.Name = "auth-test"
			c, err := natsconn.Connect(ctx, o, log)
			if err != nil {
				t.Fatalf("connect %v: %v", o, err)
			}
			defer c.Close()
			roundTrip(t, c)
			if o.TLSCA != "" {
				if _, err := c.TLSConnectionState(); err != nil {
					t.Fatalf("not TLS: %v", err)
				}
			}
			for _, secret := range []string{"tok-s3cret", "pw-s3cret"} {
				if strings.Contains(buf.String(), secret) || strings.Contains(o.String(), secret) {
					t.Fatalf("secret %q in log/description: %s / %s", secret, buf.String(), o.String())
				}
			}
		})
	}
}

// The connection is refused without credentials with an error naming the
// server and the credential kind, never the secret.
func TestConnectErrorNamesServerNotSecret(t *testing.T) {
	ns := natstest.StartWith(t, func(o *server.Options) { o.Authorization = "right-token" })
	log, _ := newLog()
	_, err := natsconn.Connect(natstest.Context(t), natsconn.Options{URL: ns.ClientURL(), Token: "wrong-token-value"}, log)
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("err = %v, want an authorization error", err)
	}
	if !strings.Contains(err.Error(), ns.ClientURL()) || !strings.Contains(err.Error(), "token") || strings.Contains(err.Error(), "wrong-token-value") {
		t.Fatalf("err = %v", err)
	}
}

// Disconnects and reconnects are logged (without the token); a server
// that revokes the credentials closes the connection for good, which Lost,
// Err, Watch and Run report; Close by the process itself is not a loss.
func TestDisconnectReconnectAndLoss(t *testing.T) {
	const token = "first-s3cret-token"
	ns := natstest.StartWith(t, func(o *server.Options) { o.Authorization = token })
	log, buf := newLog()
	ctx := natstest.Context(t)
	url := strings.Replace(ns.ClientURL(), "nats://", "nats://"+token+"@", 1)
	c, err := natsconn.Connect(ctx, natsconn.Options{URL: url, Name: "health", ReconnectWait: 20 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ns.Restart(t)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(buf.String(), "NATS disconnected") || !strings.Contains(buf.String(), "NATS reconnected") {
			return fmt.Errorf("log: %s", buf.String())
		}
		return nil
	})
	if c.Err() != nil {
		t.Fatalf("a reconnect is not a loss: %v", c.Err())
	}

	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	}()
	watchErr := make(chan error, 1)
	go func() { watchErr <- c.Watch(ctx) }()

	// Revoke: the server now wants another token.
	ns.Reconfigure(t, func(o *server.Options) { o.Authorization = "second-token" })
	select {
	case <-c.Lost():
	case <-time.After(20 * time.Second):
		t.Fatalf("connection not reported lost; status %v; log %s", c.Status(), buf.String())
	}
	for name, ch := range map[string]chan error{"Run": runErr, "Watch": watchErr} {
		err := <-ch
		if !errors.Is(err, natsconn.ErrConnectionLost) || !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("%s = %v, want the loss with its cause", name, err)
		}
	}
	if !errors.Is(c.Err(), natsconn.ErrConnectionLost) {
		t.Fatalf("Err = %v", c.Err())
	}
	logs := buf.String()
	if !strings.Contains(logs, "NATS connection closed for good") {
		t.Fatalf("log: %s", logs)
	}
	if strings.Contains(logs, token) || strings.Contains(c.Err().Error(), token) {
		t.Fatalf("token leaked: %s / %v", logs, c.Err())
	}
}

func TestOwnCloseIsNotALoss(t *testing.T) {
	ns := natstest.Start(t)
	log, buf := newLog()
	ctx := natstest.Context(t)
	for _, drain := range []bool{false, true} {
		c, err := natsconn.Connect(ctx, natsconn.Options{URL: ns.ClientURL()}, log)
		if err != nil {
			t.Fatal(err)
		}
		if drain {
			if err := c.Drain(); err != nil {
				t.Fatal(err)
			}
		} else {
			c.Close()
		}
		natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if !c.IsClosed() {
				return errors.New("not closed yet")
			}
			return nil
		})
		wctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := c.Watch(wctx); err != nil || c.Err() != nil {
			t.Fatalf("own close reported as a loss: %v %v", err, c.Err())
		}
	}
	if strings.Contains(buf.String(), "closed for good") || strings.Contains(buf.String(), "disconnected") {
		t.Fatalf("own close logged as a failure: %s", buf.String())
	}
}

func TestValidate(t *testing.T) {
	file := writeFile(t, "f", "x")
	cases := []struct {
		o    natsconn.Options
		want error
		text string
	}{
		{natsconn.Options{URL: "nats://h:4222", Token: "t", User: "u", Password: "p"}, natsconn.ErrConflictingAuth, "user/password and token"},
		{natsconn.Options{URL: "nats://h:4222", CredsFile: file, NKeyFile: file}, natsconn.ErrConflictingAuth, "creds and nkey"},
		{natsconn.Options{URL: "nats://tok@h:4222", Token: "t"}, natsconn.ErrConflictingAuth, "credentials in the URL"},
		{natsconn.Options{URL: "nats://h:4222", User: "u"}, natsconn.ErrIncompleteAuth, "password"},
		{natsconn.Options{URL: "nats://h:4222", TLSCert: file}, natsconn.ErrIncompleteAuth, "key"},
		{natsconn.Options{URL: "nats://h:4222", CredsFile: "/nonexistent/x.creds"}, os.ErrNotExist, "creds file"},
		{natsconn.Options{URL: "nats://h:4222", TLSCA: "/nonexistent/ca.pem"}, os.ErrNotExist, "TLS CA file"},
		{natsconn.Options{URL: " "}, nil, "nats url"},
	}
	for _, tc := range cases {
		err := tc.o.Validate()
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%v: err = %v, want %v mentioning %q", tc.o, err, tc.want, tc.text)
		}
	}
	ok := natsconn.Options{URL: "nats://a:4222,nats://b:4222", User: "u", Password: "p", TLSCA: file, TLSCert: file, TLSKey: file}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSecretsNeverDescribed(t *testing.T) {
	o := natsconn.Options{URL: "nats://urluser:urlpass@h:4222,nats://tokval@g:4222", User: "u", Password: "pass-val", Token: "tok-val"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "nats", o)
	for _, s := range []string{o.String(), fmt.Sprintf("%v %+v", o, o), buf.String()} {
		for _, secret := range []string{"urlpass", "tokval", "pass-val", "tok-val"} {
			if strings.Contains(s, secret) {
				t.Fatalf("%q in %s", secret, s)
			}
		}
	}
	if got := natsconn.RedactURL("nats://a:b@h:1, tls://t@g:2,h3:4222"); got != "nats://redacted@h:1,tls://redacted@g:2,h3:4222" {
		t.Fatalf("RedactURL = %q", got)
	}
}

func TestIsLocalURL(t *testing.T) {
	for u, want := range map[string]bool{
		"nats://127.0.0.1:4222": true, "127.0.0.1:4222": true, "nats://localhost:4222,tls://[::1]:4222": true,
		"nats://tok@127.0.0.1:1": true, "nats://10.0.0.1:4222": false, "nats://127.0.0.1:1,nats://nats:4222": false,
		"nats://0.0.0.0:4222": false, "": false,
	} {
		if got := natsconn.IsLocalURL(u); got != want {
			t.Errorf("IsLocalURL(%q) = %v", u, got)
		}
	}
}

func TestTokenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if tok, err := natsconn.ReadToken(dir); err != nil || tok != "" {
		t.Fatalf("no file: %q %v", tok, err)
	}
	tok, err := natsconn.EnsureToken(dir)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q %v", tok, err)
	}
	st, err := os.Stat(natsconn.TokenFile(dir))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	again, err := natsconn.EnsureToken(dir)
	if err != nil || again != tok {
		t.Fatalf("not reused: %q vs %q (%v)", again, tok, err)
	}
	if err := os.Chmod(natsconn.TokenFile(dir), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natsconn.ReadToken(dir); !errors.Is(err, natsconn.ErrBadTokenFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable by others: %v", err)
	}
	if err := os.WriteFile(natsconn.TokenFile(dir), []byte("two words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(natsconn.TokenFile(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := natsconn.EnsureToken(dir); !errors.Is(err, natsconn.ErrBadTokenFile) {
		t.Fatalf("bad content: %v", err)
	}

	if u, err := natsconn.ReadURL(dir); err != nil || u != "" {
		t.Fatalf("no url file: %q %v", u, err)
	}
	if err := natsconn.WriteURL(dir, "nats://127.0.0.1:4999"); err != nil {
		t.Fatal(err)
	}
	if u, err := natsconn.ReadURL(dir); err != nil || u != "nats://127.0.0.1:4999" {
		t.Fatalf("url %q %v", u, err)
	}
}

// With InProcess the connection goes over an in-memory pipe to the server
// in this process, never to URL (here a port nothing listens on), with the
// same credentials.
func TestConnectInProcess(t *testing.T) {
	const token = "in-process-s3cret"
	ns := natstest.StartWith(t, func(o *server.Options) { o.Authorization = token })
	log, buf := newLog()
	ctx := natstest.Context(t)
	nowhere := "nats://127.0.0.1:1"
	c, err := natsconn.Connect(ctx, natsconn.Options{URL: nowhere, Token: token, InProcess: ns.Server, Name: "in-process"}, log)
	if err != nil {
		t.Fatalf("connect in process: %v", err)
	}
	defer c.Close()
	roundTrip(t, c)
	if strings.Contains(buf.String(), token) {
		t.Fatalf("token in log: %s", buf.String())
	}
}
