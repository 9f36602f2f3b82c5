package hubtest

import (
	"testing"

	"github.com/roomcast/roomcast/internal/hub"
)

func TestMemLogConforms(t *testing.T) {
	RunLog(t, func(*testing.T) hub.Log { return &MemLog{} })
}
