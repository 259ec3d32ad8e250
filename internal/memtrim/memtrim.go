// Package memtrim drops the pages of this process's own executable that start-up
// touched. Go maps the whole binary and, with the kernel's fault-around, start-up
// (package initialisation, the runtime's first GC) leaves most of a large binary
// resident; an idle daemon then shows tens of MB of RSS it will not touch again.
// Read-only mappings of the executable are clean file pages: unmapping them is
// safe, and whatever is used again faults back in from the page cache.
package memtrim

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// TrimExecutable drops the resident read-only pages of this process's executable and returns the bytes
// released from its mappings (as mapped; what was resident is less).
func TrimExecutable() (uint64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno == 0 {
			total += end - start
		}
	}
	return total, sc.Err()
}
