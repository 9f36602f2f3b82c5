package fault

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// The cluster's nemeses act on one node at a time, in turn, for Rounds
// rounds (or until the run ends): the fault holds for Hold, then heals,
// and the next round starts once every node is ready again and Rest has
// passed. Each records its faults (Env.AddFault) for Times.

// Partition cuts a node's route links (the network namespaces of an
// Isolated scenario): it is alone, the others keep a quorum. Its clients
// still reach it, so that what it answers them is checked; with Clients,
// every other round cuts them off too, so that they move to the others
// and resume there during the partition.
type Partition struct {
	Hold, Rest time.Duration
	Rounds     int
	Clients    bool
}

func (p Partition) Name() string {
	return fmt.Sprintf("partition one node of three for %s, %d rounds", p.Hold, p.Rounds)
}

func (p Partition) Run(ctx context.Context, env *Env) error {
	net := env.Cluster.Net
	if net == nil {
		return fmt.Errorf("partition: the scenario is not Isolated (no network namespaces)")
	}
	round := 0
	return rounds(ctx, env, p.Rounds, p.Rest, func(i int) (Fault, error) {
		clients := p.Clients && round%2 == 1
		round++
		f := Fault{Kind: "partition", Node: i, Start: time.Now()}
		if clients {
			f.Kind = "partition (clients too)"
		}
		if err := net.Cut(i+1, clients); err != nil {
			return f, err
		}
		sleep(ctx, p.Hold)
		f.End = time.Now()
		return f, net.Heal(i + 1)
	})
}

// Pause stops a node with SIGSTOP and continues it with SIGCONT: its
// sockets stay open and silent, as a node stuck in a long GC pause or a
// frozen VM.
type Pause struct {
	Hold, Rest time.Duration
	Rounds     int
}

func (p Pause) Name() string {
	return fmt.Sprintf("SIGSTOP one node of three for %s, %d rounds", p.Hold, p.Rounds)
}

func (p Pause) Run(ctx context.Context, env *Env) error {
	return rounds(ctx, env, p.Rounds, p.Rest, func(i int) (Fault, error) {
		n := env.Cluster.Nodes[i]
		f := Fault{Kind: "pause", Node: i, Start: time.Now()}
		if err := n.Pause(); err != nil {
			return f, err
		}
		sleep(ctx, p.Hold)
		f.End = time.Now()
		return f, n.Resume()
	})
}

// KillNode kills a node with SIGKILL and restarts it (same address and
// data) after Down.
type KillNode struct {
	Down, Rest time.Duration
	Rounds     int
}

func (k KillNode) Name() string {
	return fmt.Sprintf("kill -9 one node of three, down %s, %d rounds", k.Down, k.Rounds)
}

func (k KillNode) Run(ctx context.Context, env *Env) error {
	return rounds(ctx, env, k.Rounds, k.Rest, func(i int) (Fault, error) {
		n := env.Cluster.Nodes[i]
		f := Fault{Kind: "kill", Node: i, Start: time.Now()}
		n.Kill()
		sleep(ctx, k.Down)
		f.End = time.Now()
		return f, n.Start(90 * time.Second)
	})
}

// NATSOutage stops the external nats-server the nodes run on (SIGTERM and
// SIGKILL in turn) and starts it again after Down.
type NATSOutage struct {
	Down, Rest time.Duration
	Rounds     int
}

func (o NATSOutage) Name() string {
	return fmt.Sprintf("stop the external nats-server for %s (SIGTERM, kill -9 in turn), %d rounds", o.Down, o.Rounds)
}

func (o NATSOutage) Run(ctx context.Context, env *Env) error {
	srv := env.Cluster.NATS
	if srv == nil {
		return fmt.Errorf("nats outage: the scenario has no external NATS")
	}
	round := 0
	return rounds(ctx, env, o.Rounds, o.Rest, func(int) (Fault, error) {
		sig, kind := syscall.SIGTERM, "nats-server SIGTERM"
		if round%2 == 1 {
			sig, kind = syscall.SIGKILL, "nats-server kill -9"
		}
		round++
		f := Fault{Kind: kind, Node: -1, Start: time.Now()}
		srv.Stop(sig)
		sleep(ctx, o.Down)
		f.End = time.Now()
		return f, srv.Start(30 * time.Second)
	})
}

// rounds runs fault on node r%n for round r, waits for every node to be
// ready again after each, and rests.
func rounds(ctx context.Context, env *Env, n int, rest time.Duration, fault func(node int) (Fault, error)) error {
	nodes := len(env.Cluster.Nodes)
	for r := 0; r < max(n, 1); r++ {
		if ctx.Err() != nil {
			return nil
		}
		f, err := fault(r % nodes)
		if !f.Start.IsZero() {
			env.AddFault(f)
		}
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		err = env.Cluster.Ready(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("after %s of node %d: %w", f.Kind, f.Node+1, err)
		}
		sleep(ctx, rest)
	}
	return nil
}

// sleep waits d, or less if ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// StartLate starts, After into the run, the nodes the scenario did not
// start (Scenario.StartNodes): a new cluster's first start without all
// its nodes, which must serve with a quorum, and take the others in.
type StartLate struct {
	After time.Duration
}

func (s StartLate) Name() string { return fmt.Sprintf("the last nodes start %s late", s.After) }

func (s StartLate) Run(ctx context.Context, env *Env) error {
	sleep(ctx, s.After)
	for i, n := range env.Cluster.Nodes {
		if n.Running() {
			continue
		}
		f := Fault{Kind: "late start", Node: i, Start: time.Now()}
		if err := n.Start(90 * time.Second); err != nil {
			return err
		}
		f.End = time.Now()
		env.AddFault(f)
		env.Figure("node %d, started late, ready in %s", i+1, f.End.Sub(f.Start).Round(time.Millisecond))
	}
	return nil
}
