package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharfhq/wharf/internal/image"
)

// CreateOptions is a container to create.
type CreateOptions struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	// NetworkingConfig carries per-network aliases and static addresses (EndpointsConfig, by network).
	NetworkingConfig *network.NetworkingConfig
}

// Create makes a container from an image: merges the image's config as Docker does, prepares its
// writable layer and records it. The image must be present locally.
func (e *Engine) Create(ctx context.Context, opts CreateOptions) (*Container, []string, error) {
	cfg, hc := opts.Config, opts.HostConfig
	if cfg == nil {
		return nil, nil, Invalid("config cannot be empty in order to create a container")
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if err := validateHostConfig(hc); err != nil {
		return nil, nil, err
	}
	if cfg.Image == "" {
		return nil, nil, Invalid("No command specified")
	}
	img, err := e.Images.Resolve(cfg.Image)
	if err != nil {
		if image.IsNotFound(err) {
			return nil, nil, NotFound("No such image: %s", familiarRef(cfg.Image))
		}
		return nil, nil, err
	}
	merged := mergeImageConfig(cfg, &img.Config.Config)
	mergeImageHealthcheck(merged, img)
	if len(merged.Entrypoint) == 0 && len(merged.Cmd) == 0 {
		return nil, nil, Invalid("No command specified")
	}
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = "bridge"
	}
	endpoints, err := e.resolveNetworking(hc, opts.NetworkingConfig)
	if err != nil {
		return nil, nil, err
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if hc.AutoRemove && hc.RestartPolicy.Name != container.RestartPolicyDisabled {
		return nil, nil, Invalid("conflicting options: cannot specify both --restart and --rm")
	}
	if hc.PublishAllPorts {
		for p := range merged.ExposedPorts {
			if _, ok := hc.PortBindings[p]; !ok {
				if hc.PortBindings == nil {
					hc.PortBindings = network.PortMap{}
				}
				hc.PortBindings[p] = []network.PortBinding{{}}
			}
		}
	}
	for p := range hc.PortBindings {
		if merged.ExposedPorts == nil {
			merged.ExposedPorts = network.PortSet{}
		}
		merged.ExposedPorts[p] = struct{}{}
	}

	id := newID()
	e.mu.Lock()
	name := opts.Name
	if name == "" {
		name = e.generateNameLocked()
	} else {
		if !validName.MatchString(name) {
			e.mu.Unlock()
			return nil, nil, Invalid("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
		}
		if !strings.HasPrefix(name, "/") {
			name = "/" + name
		}
	}
	if other, taken := e.names[name]; taken {
		e.mu.Unlock()
		return nil, nil, Conflict("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, other)
	}
	e.names[name] = id // reserve
	e.mu.Unlock()
	release := func() {
		e.mu.Lock()
		delete(e.names, name)
		e.mu.Unlock()
	}

	if merged.Hostname == "" {
		if hc.NetworkMode == "host" {
			merged.Hostname, _ = os.Hostname()
		} else {
			merged.Hostname = id[:12]
		}
	}
	dir := filepath.Join(e.cfg.DataRoot, "containers", id)
	if err := os.MkdirAll(dir, 0o710); err != nil {
		release()
		return nil, nil, err
	}
	c := &Container{
		ID: id, Name: name, Created: time.Now().UTC(), ImageRef: cfg.Image, ImageID: img.ID.String(),
		Config: merged, HostConfig: hc, State: ContainerState{Status: StateCreated}, Endpoints: endpoints,
		Dir: dir, LogPath: filepath.Join(dir, id+"-json.log"),
		HostsPath: filepath.Join(dir, "hosts"), HostnamePath: filepath.Join(dir, "hostname"),
		ResolvPath: filepath.Join(dir, "resolv.conf"),
		exited:     make(chan struct{}), removed: make(chan struct{}), execs: map[string]*Exec{}, mu: &sync.Mutex{}, startDone: make(chan struct{}),
	}
	close(c.exited) // not running
	if len(merged.Entrypoint) > 0 {
		c.Path, c.Args = merged.Entrypoint[0], append(append([]string{}, merged.Entrypoint[1:]...), merged.Cmd...)
	} else {
		c.Path, c.Args = merged.Cmd[0], append([]string{}, merged.Cmd[1:]...)
	}
	fail := func(err error) (*Container, []string, error) {
		e.snaps.Remove(id)
		os.RemoveAll(dir)
		release()
		return nil, nil, err
	}
	if err := os.WriteFile(c.LogPath, nil, 0o640); err != nil {
		return fail(err)
	}
	if err := e.unpackImage(img); err != nil {
		return fail(err)
	}
	mounts, err := e.prepareMounts(c, &img.Config.Config)
	if err != nil {
		return fail(err)
	}
	c.Mounts = mounts
	// The rootfs is mounted now and stays so for the start that usually follows (docker run): one
	// mount, not two. It is mounted while the record is written (an fsync): both are needed before
	// the answer, neither needs the other. (A record whose rootfs is not there yet is fine: start
	// prepares it again.)
	prepared := make(chan error, 1)
	go func() {
		_, err := e.snaps.Prepare(id, img.ChainIDs())
		prepared <- err
	}()
	serr := e.saveContainer(c)
	if perr := <-prepared; perr != nil {
		if serr == nil {
			e.deleteContainerRecord(id)
		}
		return fail(fmt.Errorf("prepare rootfs: %w", perr))
	}
	if serr != nil {
		return fail(serr)
	}
	e.mu.Lock()
	e.containers[id] = c
	e.mu.Unlock()
	e.containerEvent(c, "create", nil)
	return c, nil, nil
}

// unpackImage makes sure every layer of img is unpacked.
func (e *Engine) unpackImage(img *image.Image) error {
	chain := img.ChainIDs()
	for i, l := range img.Layers {
		blob := l.Blob
		if err := e.snaps.Unpack(chain[i], func() (io.ReadCloser, error) { return e.Images.OpenBlob(blob) }); err != nil {
			return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
		}
	}
	return nil
}

func validateHostConfig(hc *container.HostConfig) error {
	if hc.Memory != 0 && hc.Memory < 6*1024*1024 {
		return Invalid("Minimum memory limit allowed is 6MB")
	}
	if hc.NanoCPUs < 0 {
		return Invalid("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", numCPU(), numCPU())
	}
	if hc.NanoCPUs > 0 && hc.NanoCPUs > int64(numCPU())*1e9 {
		return Invalid("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", numCPU(), numCPU())
	}
	if _, _, err := logSettings(hc.LogConfig); err != nil {
		return err
	}
	if err := validateRuntimeOptions(hc); err != nil {
		return err
	}
	switch hc.RestartPolicy.Name {
	case "", container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if hc.RestartPolicy.MaximumRetryCount != 0 {
			return Invalid("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case container.RestartPolicyOnFailure:
		if hc.RestartPolicy.MaximumRetryCount < 0 {
			return Invalid("invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return Invalid("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", hc.RestartPolicy.Name)
	}
	return nil
}

// mergeImageConfig applies Docker's rules for combining a create request with the image's config.
func mergeImageConfig(cfg *container.Config, img *ocispec.ImageConfig) *container.Config {
	out := *cfg
	if out.User == "" {
		out.User = img.User
	}
	if len(out.Cmd) == 0 && len(out.Entrypoint) == 0 {
		out.Cmd = img.Cmd
	}
	if len(out.Entrypoint) == 0 {
		if out.Entrypoint == nil { // nil = not given; [] or [""] = reset
			out.Entrypoint = img.Entrypoint
		} else {
			out.Entrypoint = nil
		}
	} else if len(out.Entrypoint) == 1 && out.Entrypoint[0] == "" {
		out.Entrypoint = nil
	}
	out.Env = mergeEnv(img.Env, cfg.Env)
	if out.WorkingDir == "" {
		out.WorkingDir = img.WorkingDir
	}
	if out.StopSignal == "" {
		out.StopSignal = img.StopSignal
	}
	if len(img.ExposedPorts) > 0 {
		ps := network.PortSet{}
		for p := range img.ExposedPorts {
			if pp, err := network.ParsePort(p); err == nil {
				ps[pp] = struct{}{}
			}
		}
		for p := range cfg.ExposedPorts {
			ps[p] = struct{}{}
		}
		out.ExposedPorts = ps
	}
	if len(img.Labels) > 0 {
		l := map[string]string{}
		for k, v := range img.Labels {
			l[k] = v
		}
		for k, v := range cfg.Labels {
			l[k] = v
		}
		out.Labels = l
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if len(img.Volumes) > 0 {
		v := map[string]struct{}{}
		for k := range img.Volumes {
			v[k] = struct{}{}
		}
		for k := range cfg.Volumes {
			v[k] = struct{}{}
		}
		out.Volumes = v
	}
	return &out
}

// mergeEnv overlays override on base by variable name, keeping base's order.
func mergeEnv(base, override []string) []string {
	out := append([]string{}, base...)
	idx := map[string]int{}
	for i, kv := range out {
		idx[envKey(kv)] = i
	}
	for _, kv := range override {
		if i, ok := idx[envKey(kv)]; ok {
			out[i] = kv
		} else {
			idx[envKey(kv)] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func envKey(kv string) string {
	if i := strings.IndexByte(kv, '='); i >= 0 {
		return kv[:i]
	}
	return kv
}

func familiarRef(ref string) string {
	if strings.Contains(ref, "@") || strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
		return ref
	}
	return ref + ":latest"
}

func numCPU() int { return goruntime.NumCPU() }
