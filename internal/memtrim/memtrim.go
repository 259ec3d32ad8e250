// Package memtrim drops the pages of this process's own executable that start-up
// touched. Go maps the whole binary and, with the kernel's fault-around, start-up
// (package initialisation, the runtime's first GC) leaves most of a large binary
// resident; an idle daemon then shows tens of MB of RSS it will not touch again.
// Read-only mappings of the executable are clean file pages: unmapping them is
// safe, and whatever is used again faults back in from the page cache.
package memtrim

import (
	"bufio"
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

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

// IdleTrimmer gives memory back once a burst of work is over. Go keeps freed heap pages for a while
// and a burst touches much of the executable again, so a daemon that just ran a hundred containers
// shows twice its idle RSS for minutes. After quiet (no Touch) it frees the heap's unused pages and
// drops the executable's resident pages, once per burst.
type IdleTrimmer struct {
	quiet time.Duration
	mu    sync.Mutex
	last  time.Time
	dirty bool
	trims int
}

// NewIdleTrimmer returns a trimmer that acts after quiet without Touch.
func NewIdleTrimmer(quiet time.Duration) *IdleTrimmer { return &IdleTrimmer{quiet: quiet} }

// Touch records activity (a request began or ended).
func (t *IdleTrimmer) Touch() {
	t.mu.Lock()
	t.last = time.Now()
	t.dirty = true
	t.mu.Unlock()
}

// Trims says how many times the trimmer has acted.
func (t *IdleTrimmer) Trims() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.trims
}

// Run checks for quiet until ctx ends.
func (t *IdleTrimmer) Run(ctx context.Context) {
	tick := time.NewTicker(t.quiet / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		due := t.dirty && time.Since(t.last) >= t.quiet
		if due {
			t.dirty = false
			t.trims++
		}
		t.mu.Unlock()
		if due {
			debug.FreeOSMemory()
			TrimExecutable()
		}
	}
}
