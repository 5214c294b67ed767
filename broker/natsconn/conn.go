package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Conn is a NATS connection that knows whether it was closed by this
// process (Close, Drain) or for good by anything else.
type Conn struct {
	*nats.Conn
	closing  atomic.Bool
	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error
	where    string
}

// loss is the error for nc closed for good.
func (c *Conn) loss(nc *nats.Conn) error {
	cause := nc.LastError()
	if cause == nil {
		cause = errors.New("closed without an error")
	}
	return fmt.Errorf("%w (%s: %w)", ErrConnectionLost, c.where, cause)
}

// Connect connects with unlimited reconnects. Disconnects, reconnects and
// asynchronous errors are logged to log (never a secret); a close that is
// not this process's own (Close, Drain) is logged as an error and closes
// Lost.
func Connect(ctx context.Context, o Options, log *slog.Logger) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	opts, err := o.natsOptions()
	if err != nil {
		return nil, err
	}
	where := RedactURL(o.URL)
	c := &Conn{lost: make(chan struct{}), where: where}
	opts = append(opts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if c.closing.Load() {
				return
			}
			log.Warn("NATS disconnected; reconnecting", "url", where, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "url", RedactURL(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("NATS error", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("NATS error", "err", err)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if c.closing.Load() {
				return
			}
			err := c.loss(nc)
			log.Error("NATS connection closed for good", "url", where, "err", nc.LastError())
			c.markLost(err)
		}),
	)
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s (%s): %w", where, o.auth(), err)
	}
	c.Conn = nc
	return c, nil
}

func (c *Conn) markLost(err error) {
	c.lostOnce.Do(func() {
		c.lostErr = err
		close(c.lost)
	})
}

// Close closes the connection; this is not reported as lost.
func (c *Conn) Close() {
	c.closing.Store(true)
	c.Conn.Close()
}

// Drain drains and then closes the connection; this is not reported as lost.
func (c *Conn) Drain() error {
	c.closing.Store(true)
	return c.Conn.Drain()
}

// Lost is closed when the connection was closed for good by anything but
// Close or Drain (the server refused a reconnect's credentials, answered a
// fatal protocol error, ...).
func (c *Conn) Lost() <-chan struct{} { return c.lost }

// Err is why the connection was lost (wrapping ErrConnectionLost), nil
// while it is not or when this process closed it. It is set as soon as the
// connection is closed, even before Lost is.
func (c *Conn) Err() error {
	select {
	case <-c.lost:
		return c.lostErr
	default:
	}
	if c.Conn != nil && c.Conn.IsClosed() && !c.closing.Load() {
		return c.loss(c.Conn)
	}
	return nil
}

// Cause returns the loss when the connection was lost, else err: what a
// process whose components stopped with err should report, since they
// often notice a closed connection before Lost does.
func (c *Conn) Cause(err error) error {
	if lost := c.Err(); lost != nil {
		return lost
	}
	return err
}

// Watch blocks until ctx ends (nil) or the connection is lost (the loss,
// wrapping ErrConnectionLost). Run it beside a process's components in an
// errgroup so a lost connection stops them all.
func (c *Conn) Watch(ctx context.Context) error {
	select {
	case <-c.lost:
		return c.lostErr
	case <-ctx.Done():
		return nil
	}
}

// Run runs f until it returns. When the connection is lost first, f's
// context is cancelled and Run returns the loss (wrapping
// ErrConnectionLost) whatever f returned, so the process exits non-zero
// instead of staying up without NATS.
func (c *Conn) Run(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-c.lost:
			cancel(c.lostErr)
		case <-ctx.Done():
		}
	}()
	return c.Cause(f(ctx))
}
