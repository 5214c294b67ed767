// Package chserver runs a private clickhouse-server under a data directory on
// free loopback ports: the managed local ClickHouse of `switchboard up` and
// the throwaway server of tests (internal/chtest).
package chserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ErrNotInstalled means no clickhouse-server binary was found; callers fall
// back to buffering telemetry in NATS.
var ErrNotInstalled = errors.New("clickhouse-server is not installed (not on PATH, /usr/sbin or /usr/bin)")

// ErrNotReady means the server did not answer in time.
var ErrNotReady = errors.New("clickhouse-server did not become ready")

// StartTimeout bounds how long Start waits for the server to answer.
const StartTimeout = 60 * time.Second

// Server is a running clickhouse-server owned by this process.
type Server struct {
	dir      string
	bin      []string
	tcpPort  int
	httpPort int
	ipPort   int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// BinaryEnv names an environment variable that, when set, is the only
// clickhouse-server (or clickhouse) binary Binary considers.
const BinaryEnv = "SWITCHBOARD_CLICKHOUSE_SERVER"

// Binary returns the command that runs a ClickHouse server, or ErrNotInstalled.
// It prefers clickhouse-server (Debian's 18.16 package) and falls back to the
// single `clickhouse server` binary of current releases.
func Binary() ([]string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		st, err := os.Stat(p)
		if err != nil || st.IsDir() {
			return nil, fmt.Errorf("%w: %s=%s", ErrNotInstalled, BinaryEnv, p)
		}
		if filepath.Base(p) == "clickhouse" {
			return []string{p, "server"}, nil
		}
		return []string{p}, nil
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return []string{p}, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, ErrNotInstalled
}

// Installed reports whether a clickhouse-server binary is available.
func Installed() bool {
	_, err := Binary()
	return err == nil
}

// Start runs a clickhouse-server whose data, logs and config live under
// dataDir, listening on free ports of 127.0.0.1, and waits until it answers.
func Start(ctx context.Context, dataDir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("clickhouse data dir: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, tcpPort: ports[0], httpPort: ports[1], ipPort: ports[2]}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// DSN is the native-protocol DSN of the server's default database.
func (s *Server) DSN() string { return s.DSNFor("default") }

// DSNFor is the native-protocol DSN of one database on the server.
func (s *Server) DSNFor(database string) string {
	return fmt.Sprintf("clickhouse://127.0.0.1:%d/%s?dial_timeout=5s", s.tcpPort, database)
}

// Addr is the native-protocol address host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.tcpPort) }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.dir }

// Stop shuts the server down (SIGTERM, then SIGKILL after 15 s) and waits.
func (s *Server) Stop() error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// Kill stops the server abruptly (SIGKILL), as in a crash; tests use it to
// take ClickHouse away mid-ingest. Restart brings it back.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a stopped server again on the same ports and data.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) start(ctx context.Context) error {
	args := append(append([]string(nil), s.bin[1:]...), "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd := exec.Command(s.bin[0], args...)
	cmd.Dir = s.dir
	out, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("clickhouse log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// The server dies with us: a crashed broker or test leaves no orphan.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start clickhouse-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(ctx, done); err != nil {
		_ = s.Stop()
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	opts, err := clickhouse.ParseDSN(s.DSN())
	if err != nil {
		return err
	}
	for {
		conn, err := clickhouse.Open(opts)
		if err == nil {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			err = conn.Ping(pctx)
			pcancel()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%w: process exited; %s", ErrNotReady, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%w on %s: %v; %s", ErrNotReady, s.Addr(), err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the end of the server's error log, for start errors.
func (s *Server) logTail() string {
	var parts []string
	for _, name := range []string{"server.err.log", "stdout.log"} {
		b, err := os.ReadFile(filepath.Join(s.dir, "log", name))
		if err != nil || len(b) == 0 {
			continue
		}
		if len(b) > 800 {
			b = b[len(b)-800:]
		}
		parts = append(parts, name+": "+strings.TrimSpace(string(b)))
	}
	if len(parts) == 0 {
		return "no log output"
	}
	return strings.Join(parts, "; ")
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *Server) writeConfig() error {
	for _, d := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return fmt.Errorf("clickhouse data dir: %w", err)
		}
	}
	for name, tmpl := range map[string]*template.Template{"config.xml": configXML, "users.xml": usersXML} {
		f, err := os.Create(filepath.Join(s.dir, name))
		if err != nil {
			return fmt.Errorf("clickhouse config: %w", err)
		}
		err = tmpl.Execute(f, s)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("clickhouse config %s: %w", name, err)
		}
	}
	return nil
}

// The config uses the <yandex> root of 18.16, which current releases still
// accept; only settings every version knows are set.
var configXML = template.Must(template.New("config").Parse(`<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{{.Dir}}/log/server.log</log>
    <errorlog>{{.Dir}}/log/server.err.log</errorlog>
    <size>10M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{{.TCPPort}}</tcp_port>
  <http_port>{{.HTTPPort}}</http_port>
  <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>{{.Dir}}/data/</path>
  <tmp_path>{{.Dir}}/tmp/</tmp_path>
  <user_files_path>{{.Dir}}/user_files/</user_files_path>
  <format_schema_path>{{.Dir}}/format_schemas/</format_schema_path>
  <users_config>{{.Dir}}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <timezone>UTC</timezone>
</yandex>
`))

var usersXML = template.Must(template.New("users").Parse(`<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
        <read_rows>0</read_rows><execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`))

// TCPPort is the native-protocol port (used by the config template).
func (s *Server) TCPPort() int { return s.tcpPort }

// HTTPPort is the HTTP port (used by the config template).
func (s *Server) HTTPPort() int { return s.httpPort }

// InterserverPort is the interserver HTTP port (used by the config template).
func (s *Server) InterserverPort() int { return s.ipPort }
