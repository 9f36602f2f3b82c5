package hubtest

import (
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
)

func TestMemLogConforms(t *testing.T) {
	RunLog(t, func(*testing.T) hub.Log { return &MemLog{} })
}

func TestMemLogBatchConforms(t *testing.T) {
	RunBatchLog(t, func(*testing.T) hub.BatchLog { return &MemLog{} })
}

func TestMemLogVolatileConforms(t *testing.T) {
	RunVolatileLog(t, func(*testing.T) hub.VolatileLog { return &MemLog{} })
}
