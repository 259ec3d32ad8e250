// Package runtime owns running containers: one isolated process tree per
// container through libcontainer (namespaces, cgroups v1/hybrid/v2 with the
// cgroupfs driver, capabilities, masked paths), a small per-container
// supervisor process (the "shim": a re-exec of this binary) that owns the
// container's stdio, writes its log and records its exit, so that containers
// outlive a crash of the daemon; exec, tty resize, pause, stats and top.
package runtime

import (
	"context"
	"io"
	"syscall"
	"time"
)

// Mount is one mount into the container.
type Mount struct {
	Source      string
	Destination string
	Type        string // "bind" (default) or "tmpfs"
	ReadOnly    bool
	Options     []string
}

// Spec says how to run one container.
type Spec struct {
	ID       string
	Rootfs   string // a mounted rootfs (package snapshot)
	Args     []string
	Env      []string
	Cwd      string
	User     string // "", "name", "uid", "uid:gid", "name:group" resolved in the rootfs' /etc/passwd, /etc/group
	Hostname string
	Tty      bool
	Stdin    bool // keep stdin open (docker -i)
	// AttachOnStart (docker run without -d): the shim does not read the container's output until the
	// first Attach (or 5 s), so an Attach made right after Start misses nothing. The output waits in
	// the kernel's pipe (or pty) buffer meanwhile; the log gets it too once reading begins.
	AttachOnStart bool

	Mounts         []Mount
	ReadonlyRootfs bool

	Memory    int64 // bytes, 0 = unlimited
	NanoCPUs  int64 // 1e9 = one CPU
	CPUShares int64
	PidsLimit int64 // 0 = unlimited

	// NetNS is the path of a network namespace to join (made by package network),
	// "host" to stay in the host's, or "" for a new one with only loopback.
	NetNS string
	// Gate, if not nil, holds back the container's process: the container is set up (namespaces joined,
	// mounts made) but its process is exec'd only once Gate yields nil. An error aborts the start, and
	// Start returns it. The engine sets the network up meanwhile.
	Gate <-chan error `json:"-"`

	CapAdd, CapDrop []string
	Privileged      bool

	Ulimits []Ulimit          // docker --ulimit: replaces the default of the same name
	Sysctls map[string]string // docker --sysctl (namespaced ones only: see ValidateSysctl)
	ShmSize int64             // bytes of /dev/shm; 0 = Docker's 64 MiB
	Devices []Device          // docker --device

	LogPath string // docker json-file log the shim appends to
	// LogMaxSize and LogMaxFiles rotate it (json-file's max-size and max-file; 0: never).
	LogMaxSize  int64
	LogMaxFiles int
}

// Ulimit is one resource limit (docker --ulimit name=soft:hard); Name as in
// `ulimit`: nofile, nproc, core, memlock, stack, …
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// Device is a host device made available in the container (docker --device).
type Device struct {
	PathOnHost, PathInContainer string
	Permissions                 string // cgroup permissions: a subset of "rwm"
}

// ExitStatus is how a container's main process ended.
type ExitStatus struct {
	Code      int
	ExitedAt  time.Time
	OOMKilled bool
}

// StartError is returned by Start when the process could not be executed; Code is what docker run exits with:
// 127 for "executable file not found", 126 for "permission denied" / not executable, 125 otherwise.
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// Stats is one resource sample.
type Stats struct {
	Read          time.Time
	CPUTotalNanos uint64
	SystemNanos   uint64
	OnlineCPUs    uint32
	MemoryUsage   uint64
	MemoryLimit   uint64
	PidsCurrent   uint64
	PidsLimit     uint64
}

// ProcessSpec is an extra process run in a running container (docker exec).
type ProcessSpec struct {
	Args []string
	Env  []string
	Cwd  string
	User string
	Tty  bool
}

// Process is a running exec'd process.
type Process interface {
	Pid() int
	Wait() (int, error)
	Resize(width, height uint16) error
	Kill(sig syscall.Signal) error
}

// Task is a created container (running or exited, not yet deleted).
type Task interface {
	ID() string
	Pid() int
	// Wait blocks until the main process exits (or ctx ends). Works on tasks reattached after a daemon restart.
	Wait(ctx context.Context) (ExitStatus, error)
	Kill(sig syscall.Signal) error
	// Attach streams the live output (stdout, stderr; for a tty only stdout) and feeds stdin if not nil,
	// until the process exits or ctx ends. Output written before the call is not repeated.
	Attach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error
	Resize(width, height uint16) error
	Pause() error
	Resume() error
	Stats() (*Stats, error)
	Pids() ([]int, error)
	Exec(ctx context.Context, p ProcessSpec, stdin io.Reader, stdout, stderr io.Writer) (Process, error)
	// Delete destroys the container (cgroups, state) after it exited; the shim exits.
	Delete() error
}

// API is what the engine needs. *Runtime implements it.
type API interface {
	// Start launches the shim, which creates and starts the container; it returns once the main process runs.
	Start(ctx context.Context, spec Spec) (Task, error)
	// Load reattaches to a container started earlier (also by a previous daemon).
	Load(id string) (Task, error)
	// List returns the IDs of containers the runtime knows (running or exited but not deleted).
	List() ([]string, error)
}

// InitArg and ShimArg are argv[1] of this binary when re-exec'd as a container's init or as its shim.
const (
	InitArg = "init"
	ShimArg = "__shim"
)
