package engine

import (
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/hub/hubtest"
)

// TestEngineConformsToTheLogContract runs the suite the hub's fakes pass:
// the fakes cannot drift from the real engine unnoticed.
func TestEngineConformsToTheLogContract(t *testing.T) {
	hubtest.RunLog(t, func(t *testing.T) hub.Log { return open(t, Config{}) })
}

// TestEngineBatchConforms and TestEngineVolatileConforms run the suites of
// the optional capabilities MemLog passes too.
func TestEngineBatchConforms(t *testing.T) {
	hubtest.RunBatchLog(t, func(t *testing.T) hub.BatchLog { return open(t, Config{}) })
}

func TestEngineVolatileConforms(t *testing.T) {
	hubtest.RunVolatileLog(t, func(t *testing.T) hub.VolatileLog { return open(t, Config{}) })
}
