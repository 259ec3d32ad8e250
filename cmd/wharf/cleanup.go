package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/wharfhq/wharf/internal/network"
)

// cleanupArg is the hidden command that removes what a daemon made on the host (mounts under its
// roots, its bridge, its nftables table, its netns): for tests and uninstall. Containers must be gone.
const cleanupArg = "__cleanup"

func runCleanup(args []string) int {
	fs := flag.NewFlagSet(cleanupArg, flag.ContinueOnError)
	dataRoot := fs.String("data-root", "/var/lib/wharf", "")
	execRoot := fs.String("exec-root", "/run/wharf", "")
	bridge := fs.String("bridge-name", "wharf0", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	code := 0
	if err := network.Cleanup(network.Options{
		StateDir: filepath.Join(*dataRoot, "network"), BridgeName: *bridge, NetNSDir: filepath.Join(*execRoot, "netns"),
	}); err != nil {
		fmt.Fprintln(os.Stderr, "network cleanup:", err)
		code = 1
	}
	for _, root := range []string{*execRoot, *dataRoot} {
		unmountUnder(root)
	}
	return code
}

// unmountUnder lazily unmounts every mount point below root, deepest first.
func unmountUnder(root string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	root = filepath.Clean(root) + "/"
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4]+"/", root) {
			mps = append(mps, fields[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
}
