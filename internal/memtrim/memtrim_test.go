package memtrim

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func rssFileKB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "RssFile:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

func TestTrimExecutableKeepsWorkingAndReleases(t *testing.T) {
	before := rssFileKB(t)
	n, err := TrimExecutable()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no read-only mapping of the executable was found")
	}
	after := rssFileKB(t)
	if after >= before {
		t.Errorf("RssFile did not drop: %d kB -> %d kB", before, after)
	}
	// The process still runs code from the dropped pages.
	if s := strings.Repeat("x", 3); s != "xxx" {
		t.Fatal("impossible")
	}
}

// After a burst (a few MB of garbage and Touch calls), quiet makes the trimmer act once; more quiet
// without Touch does not make it act again.
func TestIdleTrimmerActsOncePerBurst(t *testing.T) {
	tr := NewIdleTrimmer(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.Run(ctx)
	var keep [][]byte
	for i := 0; i < 64; i++ {
		keep = append(keep, make([]byte, 64<<10))
		tr.Touch()
	}
	keep = nil
	_ = keep
	deadline := time.Now().Add(3 * time.Second)
	for tr.Trims() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if tr.Trims() != 1 {
		t.Fatalf("trims after a burst and quiet: %d, want 1", tr.Trims())
	}
	time.Sleep(300 * time.Millisecond)
	if tr.Trims() != 1 {
		t.Fatalf("trims without new activity: %d, want still 1", tr.Trims())
	}
	tr.Touch()
	time.Sleep(400 * time.Millisecond)
	if tr.Trims() != 2 {
		t.Fatalf("trims after a second burst: %d, want 2", tr.Trims())
	}
}
