package fault

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Net puts each node of a cluster in a network namespace of its own (ip
// netns, iproute2), so that the links between nodes can be cut as a real
// network partition cuts them: packets dropped, connections left hanging,
// nothing refused. Each node has two links to the test's namespace:
//
//	client link  veth <id>c<i> ↔ eth0, 10.X.i.1/24 ↔ 10.X.i.2: the node's
//	             HTTP address; the test's clients reach every node by it,
//	             whatever is cut (as Jepsen's clients do)
//	route link   veth <id>r<i> ↔ eth1, 10.X.100.i/24, the root side a port
//	             of a bridge: the node's NATS routes go through it only;
//	             Cut takes the bridge port down, Heal up (Cut can take the
//	             client link down too: the node then vanishes for all)
//
// X is picked at random among the second octets no address or route of
// the machine uses, and every name carries a run id: runs of the suite by
// several people at once do not meet. Needs root (CI runs as root);
// NewNet skips the test otherwise.
type Net struct {
	ID    string
	Nodes int
	octet int

	mu  sync.Mutex
	cut map[int]bool
}

// NewNet makes the namespaces and links of n nodes, removed when the test
// ends, or skips the test saying why it cannot.
func NewNet(t testing.TB, n int) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (ip netns; CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2) for network namespaces: make test's deps step installs it")
	}
	used, err := exec.Command("sh", "-c", "ip -4 -o addr show; ip -4 route show").Output()
	if err != nil {
		t.Skipf("ip: %v", err)
	}
	net := &Net{ID: fmt.Sprintf("rf%05d", rand.IntN(100000)), Nodes: n, cut: map[int]bool{}}
	for tries := 0; ; tries++ {
		net.octet = 64 + rand.IntN(128)
		if !bytes.Contains(used, []byte(fmt.Sprintf("10.%d.", net.octet))) {
			break
		}
		if tries > 100 {
			t.Skip("no free 10.X.0.0/16 for the test network")
		}
	}
	t.Cleanup(net.Close)
	cmds := []string{
		// Nothing for 10.X/16 ever leaves the machine: with a client link
		// down its /24 would otherwise follow the default route.
		fmt.Sprintf("ip route add blackhole 10.%d.0.0/16", net.octet),
		fmt.Sprintf("ip link add %s type bridge", net.bridge()),
		fmt.Sprintf("ip link set %s up", net.bridge()),
	}
	for i := 1; i <= n; i++ {
		ns, c, r := net.Namespace(i), net.link("c", i), net.link("r", i)
		cmds = append(cmds,
			"ip netns add "+ns,
			"ip -n "+ns+" link set lo up",
			fmt.Sprintf("ip link add %s type veth peer name eth0 netns %s", c, ns),
			fmt.Sprintf("ip addr add 10.%d.%d.1/24 dev %s", net.octet, i, c),
			"ip link set "+c+" up",
			fmt.Sprintf("ip -n %s addr add 10.%d.%d.2/24 dev eth0", ns, net.octet, i),
			"ip -n "+ns+" link set eth0 up",
			fmt.Sprintf("ip link add %s type veth peer name eth1 netns %s", r, ns),
			fmt.Sprintf("ip link set %s master %s", r, net.bridge()),
			"ip link set "+r+" up",
			fmt.Sprintf("ip -n %s addr add 10.%d.100.%d/24 dev eth1", ns, net.octet, i),
			"ip -n "+ns+" link set eth1 up",
		)
	}
	for _, c := range cmds {
		if err := ip(c); err != nil {
			t.Skipf("cannot make the test network: %v", err)
		}
	}
	return net
}

func (n *Net) bridge() string                 { return n.ID + "b" }
func (n *Net) link(kind string, i int) string { return fmt.Sprintf("%s%s%d", n.ID, kind, i) }

// Namespace is node i's (1-based) network namespace.
func (n *Net) Namespace(i int) string { return fmt.Sprintf("%sn%d", n.ID, i) }

// Exec is the command prefix that runs a program in node i's namespace.
func (n *Net) Exec(i int) []string { return []string{"ip", "netns", "exec", n.Namespace(i)} }

// HTTPAddr is node i's HTTP address (on its client link).
func (n *Net) HTTPAddr(i int) string { return fmt.Sprintf("10.%d.%d.2:8080", n.octet, i) }

// RouteAddr is node i's NATS cluster address (on its route link).
func (n *Net) RouteAddr(i int) string { return fmt.Sprintf("10.%d.100.%d:6222", n.octet, i) }

// Cut isolates node i from the other nodes (its route link goes down);
// its clients still reach it. With clients too, its client link goes down
// as well: nobody reaches it.
func (n *Net) Cut(i int, clients bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := ip("ip link set " + n.link("r", i) + " down"); err != nil {
		return err
	}
	if clients {
		// The node's side: the test's side keeps its route (packets are
		// dropped on the link, as on a cut cable).
		if err := ip("ip -n " + n.Namespace(i) + " link set eth0 down"); err != nil {
			return err
		}
	}
	n.cut[i] = true
	return nil
}

// Heal reconnects node i (both links).
func (n *Net) Heal(i int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := ip("ip link set " + n.link("r", i) + " up"); err != nil {
		return err
	}
	if err := ip("ip -n " + n.Namespace(i) + " link set eth0 up"); err != nil {
		return err
	}
	delete(n.cut, i)
	return nil
}

// Close removes the namespaces (their veth pairs go with them) and the
// bridge. Processes still running in a namespace keep it alive until they
// exit: the cluster kills its nodes first.
func (n *Net) Close() {
	for i := 1; i <= n.Nodes; i++ {
		_ = ip("ip netns del " + n.Namespace(i))
		_ = ip("ip link del " + n.link("c", i))
		_ = ip("ip link del " + n.link("r", i))
	}
	_ = ip("ip link del " + n.bridge())
	_ = ip(fmt.Sprintf("ip route del blackhole 10.%d.0.0/16", n.octet))
}

func ip(command string) error {
	f := strings.Fields(command)
	out, err := exec.Command(f[0], f[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", command, err, bytes.TrimSpace(out))
	}
	return nil
}
