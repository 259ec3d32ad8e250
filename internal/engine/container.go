package engine

import (
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/wharfhq/wharf/internal/runtime"
)

// The engine stores a container's configuration in the Engine API's own
// types (container.Config and container.HostConfig): they are the de facto
// schema of a container, which both front doors and the node agent fill in.
// The engine never deals in HTTP or the Engine API's JSON streams.

// State values, as Docker names them.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateExited     = "exited"
	StateDead       = "dead"
	StateRemoving   = "removing"
)

// ContainerState is the persisted state of a container.
type ContainerState struct {
	Status       string
	Pid          int
	ExitCode     int
	Error        string
	OOMKilled    bool
	StartedAt    time.Time
	FinishedAt   time.Time
	RestartCount int
	// StoppedByUser records an explicit stop, which unless-stopped and always honour across restarts.
	StoppedByUser  bool
	HasBeenStarted bool
}

// NetworkState is the container's network while it runs. The top-level address fields describe the
// primary network (HostConfig.NetworkMode); Networks (absent in records written before user networks
// existed) lists every bridged network the container is attached to, by network name, primary included.
type NetworkState struct {
	Network   string
	NetNSPath string
	IP        string
	PrefixLen int
	Gateway   string
	MAC       string
	Ports     network.PortMap
	Networks  map[string]*EndpointState `json:",omitempty"`
}

// EndpointState is the container's interface on one network. The map holding it is replaced, never
// modified in place, so that snapshots may share it.
type EndpointState struct {
	NetworkID string
	IfName    string
	IP        string
	PrefixLen int
	Gateway   string
	MAC       string
	Aliases   []string `json:",omitempty"`
	DNS       string   `json:",omitempty"`
}

// Container is the engine's record of one container.
type Container struct {
	ID         string
	Name       string // with the leading "/"
	Created    time.Time
	ImageRef   string // as the user gave it (Config.Image)
	ImageID    string
	Path       string
	Args       []string
	Config     *container.Config
	HostConfig *container.HostConfig
	State      ContainerState
	Net        *NetworkState `json:",omitempty"`
	Mounts     []container.MountPoint
	// Endpoints is the requested per-network configuration (aliases, static address), by network name:
	// the primary network (HostConfig.NetworkMode) and the networks connected at start.
	Endpoints map[string]*network.EndpointSettings `json:",omitempty"`

	// Paths inside the container's directories.
	Dir          string
	LogPath      string
	HostsPath    string
	HostnamePath string
	ResolvPath   string

	mu       *sync.Mutex      `json:"-"`
	task     runtime.Task     `json:"-"`
	exited   chan struct{}    `json:"-"` // closed when the current run's main process has exited
	removed  chan struct{}    `json:"-"` // closed when the container is removed
	waitNext []chan int       `json:"-"`
	execs    map[string]*Exec `json:"-"`
	stopping bool             `json:"-"`
	// startDone is closed when the pending start attempt ends (then replaced); attachers wait on it.
	startDone     chan struct{} `json:"-"`
	pendingAttach int           `json:"-"`
}

// ShortID is the 12-hex form Docker prints.
func (c *Container) ShortID() string { return c.ID[:12] }

// Running reports whether the main process runs (including paused).
func (c *Container) Running() bool {
	return c.State.Status == StateRunning || c.State.Status == StatePaused
}

// Snapshot returns a copy of the record that is safe to read without the lock.
func (c *Container) Snapshot() Container {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := Container{
		ID: c.ID, Name: c.Name, Created: c.Created, ImageRef: c.ImageRef, ImageID: c.ImageID,
		Path: c.Path, Args: c.Args, Config: c.Config, HostConfig: c.HostConfig, State: c.State,
		Mounts: c.Mounts, Dir: c.Dir, LogPath: c.LogPath, HostsPath: c.HostsPath,
		HostnamePath: c.HostnamePath, ResolvPath: c.ResolvPath, Endpoints: c.Endpoints,
	}
	if c.Net != nil {
		n := *c.Net
		cp.Net = &n
	}
	return cp
}

// ExecIDs lists the container's exec sessions.
func (c *Container) ExecIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id := range c.execs {
		ids = append(ids, id)
	}
	return ids
}
