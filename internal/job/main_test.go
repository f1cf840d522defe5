package job_test

import (
	"testing"

	"github.com/conveyorci/conveyor/internal/testenv"
)

// TestMain stops the MinIO server the eviction tests start.
func TestMain(m *testing.M) { testenv.Main(m) }
