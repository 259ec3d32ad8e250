package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/wharfhq/wharf/internal/runtime/monitor"
)

// Exec runs an extra process in the running container (docker exec) as a child
// of the calling process. Env is added to the container's environment, User
// and Cwd default to the container's. Output is copied to stdout/stderr (nil:
// discarded; a tty has only stdout); stdin, if not nil, is fed to the process
// and closed when it ends.
func (t *task) Exec(ctx context.Context, ps ProcessSpec, stdin io.Reader, stdout, stderr io.Writer) (Process, error) {
	if len(ps.Args) == 0 {
		return nil, errors.New("no exec command specified")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := t.running()
	if err != nil {
		return nil, err
	}
	if st, _ := c.Status(); st == libcontainer.Paused {
		return nil, fmt.Errorf("container %s is paused, unpause the container before exec", t.id)
	}
	cfg, err := t.config()
	if err != nil {
		return nil, err
	}
	userSpec := ps.User
	if userSpec == "" {
		userSpec = cfg.Spec.User
	}
	u, err := resolveUser(cfg.Spec.Rootfs, userSpec)
	if err != nil {
		return nil, err
	}
	hostname := cfg.Config.Hostname
	env := mergeEnv(append([]string(nil), cfg.Spec.Env...), ps.Env)
	cwd := ps.Cwd
	if cwd == "" {
		cwd = cfg.Process.Cwd
	}
	var caps []string
	if cfg.Config.Capabilities != nil {
		caps = cfg.Config.Capabilities.Bounding
	}
	p := &libcontainer.Process{
		Args:             ps.Args,
		Env:              envWithDefaults(env, hostname, ps.Tty, u.Home),
		Cwd:              cwd,
		UID:              u.UID,
		GID:              u.GID,
		AdditionalGroups: u.Groups,
		Capabilities:     capsFor(caps, u.UID),
	}

	ep := &execProcess{p: p, copied: make(chan struct{})}
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	var consoleSock *os.File
	if ps.Tty {
		parent, child, err := socketpair()
		if err != nil {
			return nil, err
		}
		consoleSock = parent
		defer parent.Close()
		p.ConsoleSocket = child
		childEnds = append(childEnds, child)
	} else {
		for _, out := range []struct {
			w    io.Writer
			dest *io.Writer
		}{{stdout, &p.Stdout}, {stderr, &p.Stderr}} {
			if out.w == nil {
				continue
			}
			r, w, err := os.Pipe()
			if err != nil {
				ep.closeAll()
				return nil, err
			}
			*out.dest = w
			childEnds = append(childEnds, w)
			ep.readers = append(ep.readers, r)
			ep.outs = append(ep.outs, out.w)
		}
		if stdin != nil {
			r, w, err := os.Pipe()
			if err != nil {
				ep.closeAll()
				return nil, err
			}
			p.Stdin = r
			childEnds = append(childEnds, r)
			ep.stdinW = w
		}
	}
	if err := c.Run(p); err != nil {
		ep.closeAll()
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return nil, fmt.Errorf("container %s: %w", t.id, ErrNotRunning)
		}
		se := startErrorFor(err, ps.Args)
		return nil, se
	}
	for _, f := range childEnds {
		f.Close()
	}
	childEnds = nil
	ep.pid, _ = p.Pid()
	if consoleSock != nil {
		master, err := recvFd(consoleSock)
		if err != nil {
			p.Signal(unix.SIGKILL)
			p.Wait()
			return nil, fmt.Errorf("exec: receiving the console: %w", err)
		}
		master = pollable(master)
		ep.console = master
		ep.readers = []*os.File{master}
		ep.outs = []io.Writer{stdout}
		if stdin != nil {
			ep.stdinW = master
		}
	}
	var wg sync.WaitGroup
	for i, r := range ep.readers {
		wg.Add(1)
		go func(r *os.File, w io.Writer) {
			defer wg.Done()
			if w == nil {
				w = io.Discard
			}
			io.Copy(w, r)
		}(r, ep.outs[i])
	}
	go func() { wg.Wait(); close(ep.copied) }()
	if stdin != nil {
		go func(w *os.File) {
			io.Copy(w, stdin)
			if w != ep.console {
				w.Close()
			}
		}(ep.stdinW)
	}
	return ep, nil
}

type execProcess struct {
	p       *libcontainer.Process
	pid     int
	console *os.File
	readers []*os.File
	outs    []io.Writer
	stdinW  *os.File
	copied  chan struct{}

	once sync.Once
	code int
	err  error
}

func (e *execProcess) Pid() int { return e.pid }

// Wait waits for the process to exit and its output to be copied (at most
// drainTimeout past the exit, should something in the container keep the
// stream open), and returns its exit code (128+n when killed by signal n).
func (e *execProcess) Wait() (int, error) {
	e.once.Do(func() {
		st, err := e.p.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			st, err = ee.ProcessState, nil
		}
		if err != nil && st == nil {
			e.code, e.err = -1, err
		} else {
			e.code = monitor.ExitCode(unix.WaitStatus(st.Sys().(syscall.WaitStatus)))
		}
		select {
		case <-e.copied:
		case <-time.After(monitor.DrainTimeout):
			for _, r := range e.readers {
				r.SetReadDeadline(time.Now())
			}
			<-e.copied
		}
		e.closeAll()
	})
	return e.code, e.err
}

func (e *execProcess) closeAll() {
	for _, r := range e.readers {
		r.Close()
	}
	if e.stdinW != nil && e.stdinW != e.console {
		e.stdinW.Close()
	}
}

func (e *execProcess) Resize(width, height uint16) error {
	if e.console == nil {
		return nil
	}
	return setWinsize(e.console, width, height)
}

func (e *execProcess) Kill(sig syscall.Signal) error {
	return e.p.Signal(sig)
}
