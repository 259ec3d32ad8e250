package runtime

import (
	"runtime/debug"

	"github.com/opencontainers/runc/libcontainer"

	// device cgroup rules (v1 and v2 eBPF) register themselves here.
	_ "github.com/opencontainers/cgroups/devices"
	// nsenter is the C constructor that sets up namespaces in "init" before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// Init runs libcontainer's container init (argv[1] == InitArg). It never returns.
func Init() {
	// The init lives for a few milliseconds, until it exec's the container's process: collecting
	// garbage would only delay that (with the default target, a cycle or two per start).
	debug.SetGCPercent(-1)
	libcontainer.Init()
}
