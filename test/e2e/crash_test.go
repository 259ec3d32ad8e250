package e2e

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashDuringStoreWrites kills the daemon (-9) at random moments while load, commit, rm and rmi run,
// many times; every restart must open its stores, and what they list must be usable.
func TestCrashDuringStoreWrites(t *testing.T) {
	d, c := ownDaemon(t, "2")
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	c.ok(t, "save", "-o", tarPath, "busybox")
	rounds := 8
	if testing.Short() {
		rounds = 2
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < rounds; round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("crash-%d-%d-%d", round, w, i)
					quiet := func(args ...string) { c.run(t, "", args...) }
					quiet("load", "-q", "-i", tarPath)
					quiet("tag", "busybox", name+":img")
					quiet("create", "--name", name, "busybox", "sh", "-c", "echo x > /f")
					quiet("commit", name, name+":committed")
					quiet("rm", "-f", name)
					quiet("rmi", name+":img")
					quiet("rmi", "-f", name+":committed")
				}
			}(w)
		}
		time.Sleep(time.Duration(50+rng.Intn(400)) * time.Millisecond)
		d.kill9()
		close(stop)
		wg.Wait()
		if err := d.start(); err != nil {
			t.Fatalf("round %d: daemon does not start after kill -9: %v", round, err)
		}
		// Everything listed is usable.
		for _, ref := range strings.Fields(c.ok(t, "images", "--format", "{{.Repository}}:{{.Tag}}")) {
			if ref == "<none>:<none>" {
				continue
			}
			c.ok(t, "image", "inspect", ref)
		}
		if out := c.ok(t, "run", "--rm", "busybox", "echo", "alive"); out != "alive\n" {
			t.Fatalf("round %d: run after restart: %q", round, out)
		}
		for _, id := range strings.Fields(c.ok(t, "ps", "-aq")) {
			c.ok(t, "rm", "-f", id)
		}
		for _, ref := range strings.Fields(c.ok(t, "images", "--format", "{{.Repository}}:{{.Tag}}")) {
			if strings.HasPrefix(ref, "crash-") {
				c.ok(t, "rmi", "-f", ref)
			}
		}
	}
}
