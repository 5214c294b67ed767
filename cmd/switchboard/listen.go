package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// listenHTTP binds the HTTP address at once, before anything starts or is
// announced, so that an address in use is the first and only thing said.
// The listener is handed to the gateway.
func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on HTTP address %s (--http): %w%s", addr, err, inUseHint(err, "--http"))
	}
	return ln, nil
}

// checkNATSListen checks that the embedded NATS server's address can be
// bound (port -1, a free port the server picks, always can). The NATS
// server itself would only report it as not ready after a timeout.
func checkNATSListen(addr string) error {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "-1" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on NATS address %s (--nats-listen): %w%s", addr, err, inUseHint(err, "--nats-listen"))
	}
	return ln.Close()
}

// inUseHint says what to do about an address in use.
func inUseHint(err error, flagName string) string {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return ""
	}
	return fmt.Sprintf("; another process holds it (an earlier `switchboard up`?): stop it or pick another address with %s", flagName)
}
