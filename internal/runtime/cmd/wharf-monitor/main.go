// Command wharf-monitor is what a container's shim becomes once the container
// runs (package monitor): a pure-Go program without libcontainer or cgo, so a
// running container costs as little memory as the Go runtime allows.
package main

import (
	"os"

	"github.com/wharfhq/wharf/internal/runtime/monitor"
)

func main() {
	os.Exit(monitor.ExecMain(os.Args))
}
