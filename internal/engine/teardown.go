package engine

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/wharfhq/wharf/internal/runtime"
)

// Tearing down what a run used — the runtime's state folder and cgroups, the
// network endpoint (veth, netns, port rules), the rootfs mount — takes a few
// milliseconds that no client observes: once the main process has exited and
// its exit is recorded, `docker wait` answers and a --rm container is reported
// removed as soon as its record is gone. So the teardown runs in the
// background. Whatever needs the same container's resources again (start,
// rm, cp, commit) waits for it first; a start that claims host ports or a
// fixed address waits for every pending teardown, since those may still hold
// them. A crash before a teardown ends leaves things no record names:
// restore's sweepOrphans removes them.

// teardowns tracks the background teardowns in progress, by container ID.
type teardowns struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// startTeardown releases, in the background, what the run of container id held; task may be nil
// (then only the network and the mount are released). then, if not nil, runs once that is done.
// It never takes a container's lock: callers may hold it.
func (e *Engine) startTeardown(id string, task runtime.Task, then func()) {
	done := make(chan struct{})
	e.td.mu.Lock()
	prev := e.td.m[id]
	e.td.m[id] = done
	e.td.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if prev != nil {
			<-prev
		}
		if task != nil {
			if err := task.Delete(); err != nil {
				e.log.Warn("delete task", "id", id, "err", err)
			}
		}
		e.net.Detach(id)
		e.snaps.Unmount(id)
		if then != nil {
			then()
		}
		e.td.mu.Lock()
		if e.td.m[id] == done {
			delete(e.td.m, id)
		}
		e.td.mu.Unlock()
		close(done)
	}()
}

// awaitTeardown returns once no teardown of container id is pending.
func (e *Engine) awaitTeardown(id string) {
	e.td.mu.Lock()
	ch := e.td.m[id]
	e.td.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// awaitAllTeardowns returns once the teardowns pending now have ended.
func (e *Engine) awaitAllTeardowns() {
	e.td.mu.Lock()
	chs := make([]chan struct{}, 0, len(e.td.m))
	for _, ch := range e.td.m {
		chs = append(chs, ch)
	}
	e.td.mu.Unlock()
	for _, ch := range chs {
		<-ch
	}
}

// sweepOrphans removes what containers without a record left behind (a crash between deleting a
// record and the end of its background teardown): runtime state and cgroups, rootfs mounts and
// writable layers, container folders. Networks are reconciled by restore itself.
func (e *Engine) sweepOrphans(known map[string]bool) {
	if ids, err := e.rt.List(); err == nil {
		for _, id := range ids {
			if known[id] {
				continue
			}
			if t, err := e.rt.Load(id); err == nil {
				t.Kill(9)
				if err := t.Delete(); err != nil {
					e.log.Warn("sweep: delete orphaned task", "id", id, "err", err)
				}
			}
		}
	}
	if lister, ok := e.snaps.(interface{ Keys() ([]string, error) }); ok {
		if keys, err := lister.Keys(); err == nil {
			for _, k := range keys {
				if !known[k] {
					if err := e.snaps.Remove(k); err != nil {
						e.log.Warn("sweep: remove orphaned rootfs", "id", k, "err", err)
					}
				}
			}
		}
	}
	dir := filepath.Join(e.cfg.DataRoot, "containers")
	if ents, err := os.ReadDir(dir); err == nil {
		for _, ent := range ents {
			if ent.IsDir() && !known[ent.Name()] && len(ent.Name()) == 64 {
				os.RemoveAll(filepath.Join(dir, ent.Name()))
			}
		}
	}
}
