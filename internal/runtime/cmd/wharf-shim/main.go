// Command wharf-shim is the small re-exec target for containers: their init
// (argv[1] == "init") and their supervisor (argv[1] == "__shim"). Giving its
// path to runtime.New keeps the per-container processes free of the daemon's
// dependencies (their package initialisation costs time and memory).
package main

import (
	"fmt"
	"os"

	"github.com/wharfhq/wharf/internal/runtime"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case runtime.InitArg:
			runtime.Init() // never returns
		case runtime.ShimArg:
			os.Exit(runtime.ShimMain(os.Args[2:]))
		}
	}
	fmt.Fprintln(os.Stderr, "wharf-shim is started by the wharf daemon, not by hand")
	os.Exit(2)
}
