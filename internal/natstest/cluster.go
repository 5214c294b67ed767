package natstest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a real JetStream cluster of in-process nats-servers, each with
// its own temp store, client and cluster (route) ports chosen at random on
// loopback.
type Cluster struct {
	Nodes []*Server
	name  string
}

// StartCluster runs an n-node JetStream cluster and waits until it has a
// meta leader. Nodes are shut down with the test.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{name: "sbtest"}
	var seed string
	for i := range n {
		node := &Server{StoreDir: t.TempDir()}
		routes := []string{}
		if seed != "" {
			routes = append(routes, seed)
		}
		node.configure = c.nodeOptions(i, -1, routes)
		node.Server = node.run(t, "127.0.0.1:-1", true)
		node.addr = node.Addr().String()
		if seed == "" {
			seed = "nats://" + node.ClusterAddr().String()
		}
		// Restarts keep the node's cluster port and route to every peer.
		c.Nodes = append(c.Nodes, node)
	}
	for i, node := range c.Nodes {
		var routes []string
		for j, peer := range c.Nodes {
			if j != i {
				routes = append(routes, "nats://"+peer.ClusterAddr().String())
			}
		}
		node.configure = c.nodeOptions(i, node.ClusterAddr().Port, routes)
	}
	c.WaitReady(t)
	return c
}

func (c *Cluster) nodeOptions(i, clusterPort int, routes []string) func(*server.Options) {
	return func(o *server.Options) {
		o.ServerName = fmt.Sprintf("n%d", i+1)
		o.Cluster.Name = c.name
		o.Cluster.Host = "127.0.0.1"
		o.Cluster.Port = clusterPort
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	}
}

// WaitReady waits until the running nodes have a JetStream meta leader
// that sees every one of them, and each is current with it.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		running, peers := 0, -1
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			running++
			if !n.JetStreamIsClustered() || !n.JetStreamIsCurrent() {
				return fmt.Errorf("%s: jetstream not current", n.Name())
			}
			if n.JetStreamIsLeader() {
				peers = len(n.JetStreamClusterPeers())
			}
		}
		if peers < running {
			return fmt.Errorf("meta leader sees %d of %d running nodes", peers, running)
		}
		return nil
	})
}

// URLs is the comma-separated client URLs of every node, for a client that
// fails over between them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, "nats://"+n.addr)
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection to the cluster (any node, failing over
// to the others), closed with the test.
func (c *Cluster) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connect(t, c.URLs(), opts...)
}

// Stop shuts node i down (its store stays for Start).
func (c *Cluster) Stop(i int) {
	c.Nodes[i].Shutdown()
	c.Nodes[i].WaitForShutdown()
}

// Start restarts node i, stopped by Stop, on its ports and store.
func (c *Cluster) Start(t testing.TB, i int) {
	t.Helper()
	n := c.Nodes[i]
	n.Server = n.run(t, n.addr, true)
}

// Index returns the index of the node named name (a server name as in a
// stream's cluster info), or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.Nodes {
		if n.Name() == name {
			return i
		}
	}
	return -1
}
