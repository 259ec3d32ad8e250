package runtime

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Moving a task into a cgroup (what libcontainer does for every container's
// init, in each v1 hierarchy and in the v2 one) takes the kernel's cgroup
// threadgroup rwsem for writing. By default that lock is tuned for readers
// (fork, exit), so the first writer after a quiet spell waits for a whole RCU
// grace period: 10–15 ms on a 2-core host at HZ=250, measured here as the
// first write to cgroup.procs of a start, longer than all the rest of it. The
// cgroup2 root flag "favordynmods" (Linux 6.0+, cgroup-v2.rst: "reduce the
// latencies of dynamic cgroup modifications such as task migrations ... at
// the cost of making hot path operations such as forks and exits more
// expensive") switches the lock to writer-friendly mode, for every hierarchy.
//
// The flag belongs to the cgroup2 root and is set by mounting it: the kernel
// applies ALL root flags of a new cgroup2 mount (nsdelegate,
// memory_recursiveprot, …) to the one root, so the mount must carry the flags
// the root already has, and only adds favordynmods. A fresh mount on a
// private folder is used, then undone: the host's own mount is not touched.

// favorDynmodsFlag is the cgroup2 root flag, as /proc/self/mountinfo shows it.
const favorDynmodsFlag = "favordynmods"

// cgroup2RootFlags are the root flags a cgroup2 mount applies (the others in
// its super options, rw/ro, are not root flags).
var cgroup2RootFlags = map[string]bool{
	"nsdelegate": true, "favordynmods": true, "memory_localevents": true,
	"memory_recursiveprot": true, "memory_hugetlb_accounting": true, "pids_localevents": true,
}

// FavorDynmods makes cgroup migrations cheap (see above). It reports whether
// the flag is on afterwards; changed says whether this call set it. Outside
// the host's cgroup namespace the kernel ignores root flags: nothing is done.
func FavorDynmods(scratchDir string) (on, changed bool, err error) {
	if !inInitCgroupNS() {
		return false, false, nil
	}
	flags, found, err := cgroup2Flags()
	if err != nil {
		return false, false, err
	}
	if found && flags[favorDynmodsFlag] {
		return true, false, nil
	}
	var opts []string
	for f := range flags {
		if cgroup2RootFlags[f] {
			opts = append(opts, f)
		}
	}
	opts = append(opts, favorDynmodsFlag)
	if err := os.MkdirAll(scratchDir, 0o700); err != nil {
		return false, false, err
	}
	defer os.Remove(scratchDir)
	if err := unix.Mount("cgroup2", scratchDir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, strings.Join(opts, ",")); err != nil {
		return false, false, fmt.Errorf("mounting cgroup2 with %s: %w", favorDynmodsFlag, err)
	}
	if err := unix.Unmount(scratchDir, unix.MNT_DETACH); err != nil {
		return true, true, fmt.Errorf("unmounting %s: %w", scratchDir, err)
	}
	return true, true, nil
}

// cgroup2Flags returns the super options of a mounted cgroup2 (found=false when none is mounted, as on
// a v1-only host: the root exists all the same, with no flags but those an earlier mount left).
func cgroup2Flags() (flags map[string]bool, found bool, err error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2"))
	if err != nil {
		return nil, false, err
	}
	flags = map[string]bool{}
	if len(mounts) == 0 {
		return flags, false, nil
	}
	for _, o := range strings.Split(mounts[0].VFSOptions, ",") {
		flags[o] = true
	}
	return flags, true, nil
}

// inInitCgroupNS reports whether this process sees the host's cgroup namespace (root flags apply only
// there). The initial namespaces have fixed inode numbers (PROC_CGROUP_INIT_INO), so no other process
// need be looked at (pid 1's may not be readable).
func inInitCgroupNS() bool {
	self, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		return false // no cgroup namespaces at all: a kernel this old has no favordynmods either
	}
	return self == "cgroup:[4026531835]"
}
