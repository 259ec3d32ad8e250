// Command wharf is the Wharf daemon, its docker-compatible CLI, and (re-exec'd
// by itself) a container's init and a container's supervisor.
package main

import (
	"os"

	"github.com/wharfhq/wharf/internal/runtime"
)

func main() {
	// The re-exec paths come first and touch nothing else: they run once per container start.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case runtime.InitArg:
			runtime.Init() // never returns
		case runtime.ShimArg:
			os.Exit(runtime.ShimMain(os.Args[2:]))
		case cleanupArg:
			os.Exit(runCleanup(os.Args[2:]))
		}
	}
	os.Exit(execute(os.Args[1:]))
}
