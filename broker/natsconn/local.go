package natsconn

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is where `switchboard up` keeps the token of its embedded
// server under its data directory (mode 0600, reused on restart).
func TokenFile(dataDir string) string { return filepath.Join(dataDir, "nats.token") }

// URLFile is where a running `switchboard up` records its embedded
// server's client URL (no credentials in it), removed when it stops.
func URLFile(dataDir string) string { return filepath.Join(dataDir, "nats.url") }

// EnsureToken returns the token in dataDir's token file, creating the file
// (and dataDir, mode 0700) with a new random token when there is none.
func EnsureToken(dataDir string) (string, error) {
	tok, err := ReadToken(dataDir)
	if err != nil || tok != "" {
		return tok, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	tok = hex.EncodeToString(b)
	path := TokenFile(dataDir)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return ReadToken(dataDir) // another process made it first
	}
	if err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("nats token %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("nats token %s: %w", path, err)
	}
	return tok, nil
}

// ReadToken returns the token in dataDir's token file, "" when there is no
// such file. A file that others may read, or that holds no usable token, is
// an error wrapping ErrBadTokenFile.
func ReadToken(dataDir string) (string, error) {
	path := TokenFile(dataDir)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s is readable by others (mode %04o); chmod 600 it", ErrBadTokenFile, path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%w: %s must hold one token (no spaces or control characters)", ErrBadTokenFile, path)
	}
	return tok, nil
}

// WriteURL records a running local server's client URL in dataDir.
func WriteURL(dataDir, url string) error {
	if err := os.WriteFile(URLFile(dataDir), []byte(url+"\n"), 0o600); err != nil {
		return fmt.Errorf("nats url file: %w", err)
	}
	return nil
}

// ReadURL returns the URL a running local server recorded in dataDir, ""
// when there is none.
func ReadURL(dataDir string) (string, error) {
	data, err := os.ReadFile(URLFile(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("nats url file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}
