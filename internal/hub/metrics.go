package hub

import "time"

// Metrics receives one namespace's counts. Implementations must be cheap,
// non-blocking and safe for concurrent use: some calls come from the
// fan-out path (once per message, never once per delivery).
type Metrics interface {
	// Published counts a stored publish and how long storing took.
	Published(d time.Duration)
	// FannedOut counts one message handed to deliveries local connections,
	// latency after it was stored.
	FannedOut(deliveries int, latency time.Duration)
	Joined()
	Left()
	SlowConsumer()
	// Resumed counts a connection that asked to resume; reset is true when
	// it got a reset instead of a replay.
	Resumed(reset bool)
	// GroupDelivered counts a group delivery; redelivery when Count > 1.
	GroupDelivered(redelivery bool)
	Parked()
}

type noMetrics struct{}

func (noMetrics) Published(time.Duration)      {}
func (noMetrics) FannedOut(int, time.Duration) {}
func (noMetrics) Joined()                      {}
func (noMetrics) Left()                        {}
func (noMetrics) SlowConsumer()                {}
func (noMetrics) Resumed(bool)                 {}
func (noMetrics) GroupDelivered(bool)          {}
func (noMetrics) Parked()                      {}
