package network

import (
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsThread is a goroutine locked to an OS thread that sits in a container's network namespace and runs
// functions there (so plain netlink calls act inside the namespace). The thread is never unlocked: when the
// goroutine ends, the Go runtime destroys the thread instead of reusing it with a foreign namespace.
type nsThread struct {
	reqs chan func()
}

// newNSThread creates a new network namespace bind-mounted at path (which must not exist) and returns a
// thread inside it. create=false enters the existing namespace at path instead.
func newNSThread(path string, create bool) (*nsThread, error) {
	if create {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return nil, fmt.Errorf("creating network namespace file: %w", err)
		}
		f.Close()
	}
	t := &nsThread{reqs: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread on purpose (see above).
		if err := t.enter(path, create); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range t.reqs {
			f()
		}
	}()
	if err := <-errc; err != nil {
		if create {
			os.Remove(path)
		}
		return nil, err
	}
	return t, nil
}

func (t *nsThread) enter(path string, create bool) error {
	if !create {
		h, err := netns.GetFromPath(path)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", path, err)
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("entering network namespace %s: %w", path, err)
		}
		return nil
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare network namespace: %w", err)
	}
	src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting network namespace at %s: %w", path, err)
	}
	return nil
}

// do runs f inside the namespace and returns its error.
func (t *nsThread) do(f func() error) error {
	errc := make(chan error, 1)
	t.reqs <- func() { errc <- f() }
	return <-errc
}

// close ends the thread.
func (t *nsThread) close() { close(t.reqs) }
