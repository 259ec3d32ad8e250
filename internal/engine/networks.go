package engine

import (
	"errors"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	wnet "github.com/wharfhq/wharf/internal/network"
)

// networkError maps the network package's error kinds onto engine errors (same text).
func networkError(err error) error {
	if err == nil {
		return nil
	}
	var ee *Error
	if errors.As(err, &ee) {
		return err
	}
	switch {
	case errors.Is(err, wnet.ErrNotFound):
		return NotFound("%s", err.Error())
	case errors.Is(err, wnet.ErrConflict):
		return Conflict("%s", err.Error())
	case errors.Is(err, wnet.ErrForbidden):
		return &Error{Kind: KindForbidden, Msg: err.Error()}
	case errors.Is(err, wnet.ErrInvalid):
		return Invalid("%s", err.Error())
	}
	return err
}

func forbidden(format string, a ...any) error { return errorf(KindForbidden, format, a...) }

func isBuiltinNetwork(n string) bool { return n == "bridge" || n == "host" || n == "none" }

// resolveNetworking validates HostConfig.NetworkMode and the create request's EndpointsConfig, as dockerd:
// NetworkMode becomes the network's name ("bridge", "host", "none", a user network, or
// "container:<full id>"); the endpoint settings are returned by network name.
func (e *Engine) resolveNetworking(hc *container.HostConfig, nc *network.NetworkingConfig) (map[string]*network.EndpointSettings, error) {
	nm := string(hc.NetworkMode)
	if ref, ok := strings.CutPrefix(nm, "container:"); ok {
		// What belongs to the other container's namespace cannot be set here (dockerd's checks, its words).
		switch {
		case len(hc.PortBindings) > 0 || hc.PublishAllPorts:
			return nil, Invalid("conflicting options: port publishing and the container type network mode")
		case len(hc.DNS) > 0:
			return nil, Invalid("conflicting options: dns and the network mode")
		case len(hc.ExtraHosts) > 0:
			return nil, Invalid("conflicting options: custom host-to-IP mapping and the network mode")
		case len(hc.Links) > 0:
			return nil, Invalid("conflicting options: container type network can't be used with links. This would result in undefined behavior")
		}
		c, err := e.Container(ref)
		if err != nil {
			return nil, err
		}
		hc.NetworkMode = container.NetworkMode("container:" + c.ID)
		if nc != nil && len(nc.EndpointsConfig) > 1 {
			return nil, Invalid("conflicting options: container type network can't be used with multiple networks")
		}
		return nil, nil
	}
	info, err := e.net.Network(nm)
	if err != nil {
		// Not a 404: the docker CLI would take it for a missing image and try to pull.
		return nil, Invalid("%s", err.Error())
	}
	hc.NetworkMode = container.NetworkMode(info.Name)
	// The first network is recorded among the endpoints too (as dockerd's NetworkSettings.Networks), so that
	// a disconnect from it is remembered.
	out := map[string]*network.EndpointSettings{info.Name: {}}
	if nc == nil {
		return out, nil
	}
	for ref, es := range nc.EndpointsConfig {
		if es == nil {
			es = &network.EndpointSettings{}
		}
		if ref == "default" || ref == "" {
			ref = "bridge"
		}
		ni, err := e.net.Network(ref)
		if err != nil {
			return nil, Invalid("%s", err.Error())
		}
		if ni.Name != info.Name && (ni.Name == "host" || ni.Name == "none" || info.Name == "host" || info.Name == "none") {
			return nil, Invalid("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
		}
		if ni.BuiltIn {
			if len(es.Aliases) > 0 {
				return nil, Invalid("network-scoped alias is supported only for containers in user defined networks")
			}
			if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
				return nil, Invalid("user specified IP address is supported on user defined networks only")
			}
		}
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() && !es.IPAMConfig.IPv4Address.Is4() {
			return nil, Invalid("invalid IPv4 address: %s", es.IPAMConfig.IPv4Address)
		}
		cp := *es
		out[ni.Name] = &cp
	}
	return out, nil
}

// dnsServers lists the container's --dns servers for the embedded DNS server of user networks.
func dnsServers(hc *container.HostConfig) []string {
	var out []string
	for _, a := range hc.DNS {
		out = append(out, a.String())
	}
	return out
}

// connectedTo tells whether the container is attached to the network (by name) as far as its record says:
// its endpoints, or (records from before the first network was listed there) its network mode.
func connectedTo(c *Container, name string) bool {
	if _, ok := c.Endpoints[name]; ok {
		return true
	}
	return len(c.Endpoints) == 0 && string(c.HostConfig.NetworkMode) == name && name != "none"
}

// extraNetworks lists the networks besides the primary one to connect at start, in name order.
func (e *Engine) extraNetworks(c *Container) []string {
	var out []string
	for name := range c.Endpoints {
		if name != string(c.HostConfig.NetworkMode) && name != "host" && name != "none" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func connectRequest(id, netName string, es *network.EndpointSettings) wnet.ConnectRequest {
	req := wnet.ConnectRequest{ContainerID: id, Network: netName}
	if es != nil {
		req.Aliases = es.Aliases
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
			req.IP = net.IP(es.IPAMConfig.IPv4Address.AsSlice())
		}
	}
	return req
}

// endpointStates reads the container's interfaces from the network manager, by network name.
func (e *Engine) endpointStates(id string) map[string]*EndpointState {
	atts := e.net.Attachments(id)
	if len(atts) == 0 {
		return nil
	}
	out := map[string]*EndpointState{}
	for _, a := range atts {
		st := &EndpointState{NetworkID: a.NetworkID, IfName: a.IfName, PrefixLen: a.PrefixLen, MAC: a.MAC, Aliases: a.Aliases}
		if a.IP != nil {
			st.IP = a.IP.String()
		}
		if a.Gateway != nil {
			st.Gateway = a.Gateway.String()
		}
		if a.DNS != nil {
			st.DNS = a.DNS.String()
		}
		out[a.Network] = st
	}
	return out
}

// NetworkConfig is a network to create.
type NetworkConfig = wnet.NetworkConfig

// CreateNetwork makes a user-defined bridge network (driver "bridge" or empty only).
func (e *Engine) CreateNetwork(driver string, cfg NetworkConfig) (wnet.Info, error) {
	if driver != "" && driver != "bridge" {
		return wnet.Info{}, NotFound("plugin %q not found", driver)
	}
	info, err := e.net.CreateNetwork(cfg)
	if err != nil {
		return wnet.Info{}, networkError(err)
	}
	e.ev.publish(Event{Type: "network", Action: "create", ID: info.ID, Attrs: map[string]string{"name": info.Name, "type": "bridge"}})
	return info, nil
}

// Network finds a network by name, ID or ID prefix.
func (e *Engine) Network(ref string) (wnet.Info, error) {
	info, err := e.net.Network(ref)
	return info, networkError(err)
}

// RemoveNetwork removes a user-defined network without running containers on it.
func (e *Engine) RemoveNetwork(ref string) error {
	e.awaitAllTeardowns() // containers that just ended are still detaching
	info, err := e.net.Network(ref)
	if err != nil {
		return networkError(err)
	}
	if err := e.net.RemoveNetwork(info.ID); err != nil {
		return networkError(err)
	}
	e.ev.publish(Event{Type: "network", Action: "destroy", ID: info.ID, Attrs: map[string]string{"name": info.Name, "type": "bridge"}})
	return nil
}

// PruneNetworks removes the user-defined networks no running container uses and that keep returns true
// for (label filters); it returns their names.
func (e *Engine) PruneNetworks(keep func(wnet.Info) bool) []string {
	var out []string
	e.awaitAllTeardowns()
	for _, n := range e.net.Networks() {
		if n.BuiltIn || keep != nil && !keep(n) {
			continue
		}
		if e.net.RemoveNetwork(n.ID) == nil {
			out = append(out, n.Name)
			e.ev.publish(Event{Type: "network", Action: "destroy", ID: n.ID, Attrs: map[string]string{"name": n.Name, "type": "bridge"}})
		}
	}
	return out
}

// NetworkContainers lists the running containers attached to a network with their endpoint there.
func (e *Engine) NetworkContainers(name string) map[*Container]*EndpointState {
	out := map[*Container]*EndpointState{}
	for _, c := range e.Containers() {
		c.mu.Lock()
		if c.Net != nil {
			if st := c.Net.Networks[name]; st != nil {
				out[c] = st
			} else if c.Net.Networks == nil && string(c.HostConfig.NetworkMode) == name && c.Net.IP != "" {
				out[c] = &EndpointState{IP: c.Net.IP, PrefixLen: c.Net.PrefixLen, Gateway: c.Net.Gateway, MAC: c.Net.MAC}
			}
		}
		c.mu.Unlock()
	}
	return out
}

// ConnectNetwork connects a container to a network: at once if it runs, at its next start otherwise.
func (e *Engine) ConnectNetwork(netRef, ctrRef string, es *network.EndpointSettings) error {
	info, err := e.net.Network(netRef)
	if err != nil {
		return networkError(err)
	}
	c, err := e.Container(ctrRef)
	if err != nil {
		return err
	}
	if es == nil {
		es = &network.EndpointSettings{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	mode := string(c.HostConfig.NetworkMode)
	_, onNone := c.Endpoints["none"]
	switch {
	case info.Name == "host" || mode == "host":
		return forbidden("container cannot be disconnected from host network or connected to host network")
	case strings.HasPrefix(mode, "container:"):
		return forbidden("container sharing network namespace with another container or host cannot be connected to any other network")
	case info.Name == "none" || onNone:
		// dockerd looks at the networks the container is on: once disconnected from "none" it may join others.
		return forbidden("container cannot be connected to multiple networks with one of the networks in private (none) mode")
	}
	if info.BuiltIn && (len(es.Aliases) > 0 || es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid()) {
		return forbidden("network-scoped alias or static address is supported only for containers in user defined networks")
	}
	if connectedTo(c, info.Name) {
		return forbidden("endpoint with name %s already exists in network %s", strings.TrimPrefix(c.Name, "/"), info.Name)
	}
	if c.Running() && c.Net != nil {
		if _, err := e.net.Connect(connectRequest(c.ID, info.Name, es)); err != nil {
			return networkError(err)
		}
		n := *c.Net
		n.Networks = e.endpointStates(c.ID)
		c.Net = &n
	}
	eps := map[string]*network.EndpointSettings{}
	for k, v := range c.Endpoints {
		eps[k] = v
	}
	cp := *es
	eps[info.Name] = &cp
	c.Endpoints = eps
	if mode == "none" {
		// It had left "none": this network becomes its first one (eth0 at the next start).
		hc := *c.HostConfig
		hc.NetworkMode = container.NetworkMode(info.Name)
		c.HostConfig = &hc
		if c.Net != nil {
			n := *c.Net
			n.Network = info.Name
			c.Net = &n
		}
	}
	e.saveContainerLocked(c)
	e.ev.publish(Event{Type: "network", Action: "connect", ID: info.ID, Attrs: map[string]string{"name": info.Name, "type": "bridge", "container": c.ID}})
	return nil
}

// DisconnectNetwork disconnects a container from a network, its first one included (as dockerd): it keeps
// its other networks, or only lo. The next network in name order (or "none") becomes its network mode, so
// that a restart attaches what it is still connected to.
func (e *Engine) DisconnectNetwork(netRef, ctrRef string, force bool) error {
	info, err := e.net.Network(netRef)
	if err != nil {
		return networkError(err)
	}
	c, err := e.Container(ctrRef)
	if err != nil {
		if force && KindOf(err) == KindNotFound {
			return nil
		}
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	mode := string(c.HostConfig.NetworkMode)
	if info.Name == "host" || mode == "host" {
		return forbidden("container cannot be disconnected from host network or connected to host network")
	}
	if strings.HasPrefix(mode, "container:") {
		return forbidden("container sharing network namespace with another container or host cannot be connected to any other network")
	}
	if !connectedTo(c, info.Name) {
		return forbidden("container %s is not connected to network %s", c.ID, info.Name)
	}
	if c.Running() && c.Net != nil {
		if err := e.net.Disconnect(c.ID, info.Name); err != nil && !force {
			return networkError(err)
		}
		n := *c.Net
		n.Networks = e.endpointStates(c.ID)
		if info.Name == mode {
			n.IP, n.Gateway, n.PrefixLen, n.MAC, n.Ports = "", "", 0, "", network.PortMap{}
			if atts := e.net.Attachments(c.ID); len(atts) > 0 {
				// The published ports moved with the first interface.
				for _, p := range atts[0].Ports {
					port, _ := network.PortFrom(p.ContainerPort, network.IPProtocol(p.Proto))
					hip := p.HostIP
					if hip == "" {
						hip = "0.0.0.0"
					}
					addr, _ := netip.ParseAddr(hip)
					n.Ports[port] = append(n.Ports[port], network.PortBinding{HostIP: addr, HostPort: strconv.Itoa(int(p.HostPort))})
				}
			}
		}
		c.Net = &n
	}
	eps := map[string]*network.EndpointSettings{}
	for k, v := range c.Endpoints {
		if k != info.Name {
			eps[k] = v
		}
	}
	c.Endpoints = eps
	if info.Name == mode && mode != "none" {
		// The network that became the first one: the manager's choice for a running container (the next
		// one with a gateway), else the next by name.
		next := "none"
		var rest []string
		for k := range eps {
			rest = append(rest, k)
		}
		if sort.Strings(rest); len(rest) > 0 {
			next = rest[0]
		}
		if c.Running() && c.Net != nil {
			if atts := e.net.Attachments(c.ID); len(atts) > 0 {
				next = atts[0].Network
			} else {
				next = "none"
			}
		}
		hc := *c.HostConfig
		hc.NetworkMode = container.NetworkMode(next)
		c.HostConfig = &hc
		if c.Net != nil {
			n := *c.Net
			n.Network = next
			c.Net = &n
		}
	}
	e.saveContainerLocked(c)
	e.ev.publish(Event{Type: "network", Action: "disconnect", ID: info.ID, Attrs: map[string]string{"name": info.Name, "type": "bridge", "container": c.ID}})
	return nil
}
