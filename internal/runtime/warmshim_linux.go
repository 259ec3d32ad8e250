package runtime

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// A shim is a Go program: exec'ing it and booting its runtime costs a couple
// of milliseconds of every start. So one shim is kept started ahead, idle
// until a container needs it: it blocks reading its container's ID from a
// control pipe (fd 4), then carries on exactly as a shim started for that ID.
// If the daemon dies, the pipe reaches EOF and the idle shim exits, so none is
// ever left behind. An idle shim costs ≈ 1.5 MB of private memory; it is made
// after the first start, not at daemon start.
//
// It is used only when the monitor program is beside the shim: the idle
// shim's command line names no container, and the monitor's exec gives it the
// one that shimPid looks for.

// warmArg is the container ID argument of an idle shim: "read it from fd 4".
const warmArg = "-"

// warmShim is a started, idle shim.
type warmShim struct {
	cmd    *exec.Cmd
	report *os.File // read end of its start-report pipe (its fd 3)
	ctl    *os.File // write end of its control pipe (its fd 4)
	done   chan struct{}
}

// warmPool holds at most one idle shim.
type warmPool struct {
	mu       sync.Mutex
	idle     *warmShim
	spawning bool
	closed   bool
	enabled  bool
}

// takeWarm returns the idle shim, if there is one still alive.
func (r *Runtime) takeWarm() *warmShim {
	r.warm.mu.Lock()
	w := r.warm.idle
	r.warm.idle = nil
	r.warm.mu.Unlock()
	if w == nil {
		return nil
	}
	select {
	case <-w.done: // it died (killed by someone): start one the usual way
		w.report.Close()
		w.ctl.Close()
		return nil
	default:
	}
	return w
}

// refillWarm starts an idle shim if there is none (in the background: callers do not wait).
func (r *Runtime) refillWarm() {
	r.warm.mu.Lock()
	if !r.warm.enabled || r.warm.closed || r.warm.idle != nil || r.warm.spawning {
		r.warm.mu.Unlock()
		return
	}
	r.warm.spawning = true
	r.warm.mu.Unlock()
	go func() {
		w, err := r.spawnWarm()
		r.warm.mu.Lock()
		r.warm.spawning = false
		if err == nil && (r.warm.closed || r.warm.idle != nil) {
			r.warm.mu.Unlock()
			w.stop()
			return
		}
		if err == nil {
			r.warm.idle = w
		}
		r.warm.mu.Unlock()
	}()
}

func (r *Runtime) spawnWarm() (*warmShim, error) {
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		repR.Close()
		repW.Close()
		return nil, err
	}
	cmd := r.shimCommand(warmArg, shimEnvWith(shimCloseFdsIdleEnv), repW, ctlR)
	err = cmd.Start()
	repW.Close()
	ctlR.Close()
	if err != nil {
		repR.Close()
		ctlW.Close()
		return nil, err
	}
	w := &warmShim{cmd: cmd, report: repR, ctl: ctlW, done: make(chan struct{})}
	go func() { cmd.Wait(); close(w.done) }()
	return w, nil
}

// hand gives the idle shim its container; it then starts it as a shim started for id would. The
// control pipe stays open for the gate's word (Start closes it).
func (w *warmShim) hand(id string) error {
	_, err := w.ctl.WriteString(id + "\n")
	return err
}

// stop ends an idle shim (closing its control pipe is enough; it reads EOF and leaves).
func (w *warmShim) stop() {
	w.ctl.Close()
	<-w.done
	w.report.Close()
}

// Close ends the idle shim, if any, and makes no more. Containers keep running.
func (r *Runtime) Close() error {
	r.warm.mu.Lock()
	r.warm.closed = true
	w := r.warm.idle
	r.warm.idle = nil
	r.warm.mu.Unlock()
	if w != nil {
		w.stop()
	}
	return nil
}

// warmShimID is the idle shim's side: it waits for its container's ID on fd 4 and sends its output to
// that container's shim.log from then on. ok=false: the daemon went away (or closed the pool) first.
func warmShimID(root string) (id string, ctl *bufio.Reader, ok bool) {
	warmUp()
	ctl = bufio.NewReader(os.NewFile(4, "shim-control")) // also carries the gate's word (shim.awaitGate)
	line, err := ctl.ReadString('\n')
	if err != nil || len(line) < 2 {
		return "", nil, false
	}
	id = line[:len(line)-1]
	if checkID(id) != nil {
		return "", nil, false
	}
	normalPriority()
	if f, err := os.OpenFile(filepath.Join(root, id, shimLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		syscall.Dup3(int(f.Fd()), 1, 0)
		syscall.Dup3(int(f.Fd()), 2, 0)
		f.Close()
	}
	return id, ctl, true
}

// normalPriority puts every thread of this process back to nice 0 (an idle shim boots at 19; the
// container's processes inherit the priority of the thread that forks them).
func normalPriority() {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		syscall.Setpriority(syscall.PRIO_PROCESS, 0, 0)
		return
	}
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			syscall.Setpriority(syscall.PRIO_PROCESS, tid, 0)
		}
	}
}

// warmUp encodes and decodes a container configuration like the one the idle shim will read, so that
// encoding/json's per-type caches are built and that code is paged in while nobody waits (reading
// shim.json took ≈ 1 ms of a start in a fresh process, ≈ 0.2 ms after this).
func warmUp() {
	spec := Spec{ID: "warmup", Rootfs: "/", Args: []string{"true"}, Cwd: "/",
		Mounts: []Mount{{Source: "/", Destination: "/warmup", Type: "bind"}}}
	cfg, proc, err := buildConfig(&spec, DefaultCgroupParent)
	if err != nil {
		return
	}
	b, err := json.Marshal(shimConfig{Spec: spec, Config: cfg, Process: *proc})
	if err == nil {
		var sc shimConfig
		_ = json.Unmarshal(b, &sc)
	}
}

// shimEnvWith is shimEnv with another descriptor-closing mode (shimCloseFdsCtlEnv, shimCloseFdsIdleEnv).
func shimEnvWith(closeFds string) []string {
	env := shimEnv()
	for i, kv := range env {
		if kv == shimCloseFdsEnv {
			env[i] = closeFds
		}
	}
	return env
}
