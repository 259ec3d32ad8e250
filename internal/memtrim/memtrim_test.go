package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
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
