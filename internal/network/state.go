package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// netState is the network-wide persisted state (<StateDir>/network.json).
type netState struct {
	Bridge  string            `json:"bridge"`
	Subnet  string            `json:"subnet"`
	Gateway string            `json:"gateway"`
	IDs     map[string]string `json:"ids"` // network name → stable ID
}

// iface is one interface of a container on a bridged network (the default bridge or a user-defined one).
// The primary interface is embedded in endpoint, so its fields keep their original JSON names.
type iface struct {
	Net       string   `json:"net,omitempty"`    // network key of an extra interface ("bridge" or a network ID)
	IfName    string   `json:"ifname,omitempty"` // name in the container; "" = eth0
	HostVeth  string   `json:"host_veth,omitempty"`
	IP        string   `json:"ip,omitempty"`
	PrefixLen int      `json:"prefix_len,omitempty"`
	Gateway   string   `json:"gateway,omitempty"`
	MAC       string   `json:"mac,omitempty"`
	Aliases   []string `json:"aliases,omitempty"` // DNS aliases on this network
}

// endpoint is one container's attachment, persisted as <StateDir>/endpoints/<id>.json. It is written before
// any kernel object is created (an intent record), so that a crash half-way leaves something Reconcile can find.
type endpoint struct {
	ContainerID string `json:"container_id"`
	// Network: "bridge", a user-defined network's ID, "host", "none" or "container:<id>"; "" once the
	// container was disconnected from its first network (its namespace stays, with Extra or only lo).
	Network   string `json:"network"`
	Name      string `json:"name,omitempty"` // container name, answered by the embedded DNS
	NetNSPath string `json:"netns_path,omitempty"`
	iface
	Ports []PortBinding `json:"ports,omitempty"`
	// DNS are the container's own upstream resolvers ("ip:port", from --dns) for the embedded DNS server.
	DNS []string `json:"dns,omitempty"`
	// Extra are the interfaces of networks connected later (eth1, eth2, ...).
	Extra []iface `json:"extra,omitempty"`
}

// primaryIfName is the name of the primary interface in the container ("eth0" unless it was an extra one
// promoted when the container left its first network).
func (ep *endpoint) primaryIfName() string {
	if ep.IfName != "" {
		return ep.IfName
	}
	return ctrIfName
}

// checkID accepts [A-Za-z0-9][A-Za-z0-9_.-]{0,127}: the ID names files and links.
func checkID(id string) error {
	ok := len(id) > 0 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || (i > 0 && (c == '_' || c == '.' || c == '-'))
	}
	if !ok {
		return fmt.Errorf("invalid container ID %q", id)
	}
	return nil
}

// writeFileAtomic writes data to path via a temporary file in the same folder: write, fsync, rename, fsync folder.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

func (m *Manager) endpointsDir() string { return filepath.Join(m.opts.StateDir, "endpoints") }

func (m *Manager) endpointPath(id string) string {
	return filepath.Join(m.endpointsDir(), id+".json")
}

func (m *Manager) saveEndpoint(ep *endpoint) error {
	return writeJSON(m.endpointPath(ep.ContainerID), ep)
}

// removeEndpointFile deletes a record. No fsync of the folder: a record that reappears after a crash
// belongs to no kept container and Reconcile removes it again.
func (m *Manager) removeEndpointFile(id string) error {
	if err := os.Remove(m.endpointPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// loadEndpoints reads every endpoint record; unreadable ones are returned by ID with a nil value so that
// Reconcile can still clean up after them. Leftover temporary files are removed.
func loadEndpoints(dir string) (map[string]*endpoint, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return map[string]*endpoint{}, nil
		}
		return nil, err
	}
	out := make(map[string]*endpoint, len(ents))
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || checkID(id) != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			out[id] = nil
			continue
		}
		var ep endpoint
		if err := json.Unmarshal(data, &ep); err != nil || ep.ContainerID != id {
			out[id] = nil
			continue
		}
		out[id] = &ep
	}
	return out, nil
}
