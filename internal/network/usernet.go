package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Error kinds of network operations; front doors map them to status codes. Errors carry Docker's wording.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrForbidden = errors.New("forbidden")
	ErrInvalid   = errors.New("invalid parameter")
)

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errKind(kind error, format string, a ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// bnet is a bridged network: the default bridge or a user-defined one. User-defined networks are
// persisted as <StateDir>/networks/<id>.json.
type bnet struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Bridge   string            `json:"bridge"`
	Subnet   string            `json:"subnet"`
	Gateway  string            `json:"gateway"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Created  time.Time         `json:"created"`

	ipam *ipam
	dns  *dnsServer
}

// userBridgePrefix + 10 hex digits of the network ID names a user network's bridge (15 bytes).
const userBridgePrefix = "whbr-"

var validNetName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (n *bnet) info() Info {
	return Info{ID: n.ID, Name: n.Name, Driver: "bridge", Subnet: n.Subnet, Gateway: n.Gateway, Bridge: n.Bridge,
		Internal: n.Internal, Labels: copyMap(n.Labels), Options: copyMap(n.Options), Created: n.Created}
}

func copyMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// allocate reserves the requested address, or the next free one.
func (n *bnet) allocate(id string, want net.IP) (netip.Addr, error) {
	if want != nil {
		a, ok := netip.AddrFromSlice(want.To4())
		if !ok {
			return netip.Addr{}, errKind(ErrInvalid, "invalid IPv4 address %s", want)
		}
		if err := n.ipam.reserve(a, id); err != nil {
			return netip.Addr{}, errKind(ErrInvalid, "%v", err)
		}
		return a, nil
	}
	return n.ipam.allocate(id)
}

func (n *bnet) newIface(hostVeth, ifName string, ip netip.Addr, aliases []string) iface {
	return iface{IfName: ifName, HostVeth: hostVeth, IP: ip.String(), PrefixLen: n.ipam.subnet.Bits(),
		Gateway: n.ipam.gateway.String(), MAC: macFromIP(ip).String(), Aliases: append([]string(nil), aliases...)}
}

func (m *Manager) networksDir() string { return filepath.Join(m.opts.StateDir, "networks") }

// loadNetworks reads the user-defined networks and makes sure their bridges exist.
func (m *Manager) loadNetworks() error {
	if err := os.MkdirAll(m.networksDir(), 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(m.networksDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			os.Remove(filepath.Join(m.networksDir(), name)) // temporary file of an interrupted write
			continue
		}
		data, err := os.ReadFile(filepath.Join(m.networksDir(), name))
		if err != nil {
			return err
		}
		n := &bnet{}
		if err := json.Unmarshal(data, n); err != nil || n.ID+".json" != name {
			return fmt.Errorf("reading network record %s: invalid", name)
		}
		sub, err := netip.ParsePrefix(n.Subnet)
		if err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		n.ipam = newIPAM(sub)
		if gw, err := netip.ParseAddr(n.Gateway); err == nil {
			n.ipam.gateway = gw
		}
		if err := ensureBridge(n.Bridge, n.ipam.gateway, sub.Bits()); err != nil {
			return err
		}
		m.nets[n.ID] = n
	}
	return nil
}

// fwNets lists the user networks for the firewall, ordered by bridge name.
func (m *Manager) fwNets() []fwNet {
	var out []fwNet
	for _, n := range m.nets {
		out = append(out, fwNet{bridge: n.Bridge, subnet: n.ipam.subnet, gateway: n.ipam.gateway, internal: n.Internal})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].bridge < out[j].bridge })
	return out
}

// bnetOf returns the bridged network an endpoint key refers to ("bridge" or a user network ID).
func (m *Manager) bnetOf(key string) *bnet {
	if key == "bridge" {
		return m.def
	}
	return m.nets[key]
}

func (m *Manager) isOurBridgeIndex(idx int) bool {
	if idx == 0 {
		return false
	}
	names := []string{m.opts.BridgeName}
	for _, n := range m.nets {
		names = append(names, n.Bridge)
	}
	for _, name := range names {
		if l, err := netlink.LinkByName(name); err == nil && l.Attrs().Index == idx {
			return true
		}
	}
	return false
}

// lookupUserLocked finds a user network by name, full ID or unique ID prefix.
func (m *Manager) lookupUserLocked(ref string) (*bnet, error) {
	if ref == "" {
		return nil, errKind(ErrNotFound, "network %s not found", ref)
	}
	for _, n := range m.nets {
		if n.Name == ref {
			return n, nil
		}
	}
	if n, ok := m.nets[ref]; ok {
		return n, nil
	}
	var found *bnet
	for id, n := range m.nets {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errKind(ErrInvalid, "network %s is ambiguous (%d matches found on name)", ref, 2)
			}
			found = n
		}
	}
	if found == nil {
		return nil, errKind(ErrNotFound, "network %s not found", ref)
	}
	return found, nil
}

// normalizeNetworkLocked resolves what a container asks for: the endpoint key and, for bridged networks,
// the network.
func (m *Manager) normalizeNetworkLocked(n string) (string, *bnet, error) {
	switch n {
	case "", "default", "bridge", m.st.IDs["bridge"]:
		return "bridge", m.def, nil
	case "host", "none":
		return n, nil, nil
	case m.st.IDs["host"]:
		return "host", nil, nil
	case m.st.IDs["none"]:
		return "none", nil, nil
	}
	if target, ok := strings.CutPrefix(n, "container:"); ok {
		if checkID(target) == nil {
			return n, nil, nil
		}
		return "", nil, errKind(ErrInvalid, "invalid container reference %s", n)
	}
	u, err := m.lookupUserLocked(n)
	if err != nil {
		return "", nil, err
	}
	return u.ID, u, nil
}

// reserveEndpoint takes the addresses of a persisted endpoint again. Extra interfaces on networks that no
// longer exist are dropped (their veths are swept by Reconcile). false: the record is unusable.
func (m *Manager) reserveEndpoint(ep *endpoint) bool {
	if ep.IP != "" {
		bn := m.bnetOf(ep.Network)
		a, err := netip.ParseAddr(ep.IP)
		if bn == nil || err != nil || bn.ipam.reserve(a, ep.ContainerID) != nil {
			return false
		}
	} else if ep.Network != "host" && ep.Network != "none" && ep.Network != "" && !strings.HasPrefix(ep.Network, "container:") && m.bnetOf(ep.Network) == nil {
		return false
	}
	kept := ep.Extra[:0]
	for _, x := range ep.Extra {
		bn := m.bnetOf(x.Net)
		a, err := netip.ParseAddr(x.IP)
		if bn == nil || err != nil || bn.ipam.reserve(a, ep.ContainerID) != nil {
			continue
		}
		kept = append(kept, x)
	}
	ep.Extra = kept
	return true
}

func (m *Manager) releaseIface(id, key string, ifc *iface) {
	bn := m.bnetOf(key)
	if bn == nil || ifc.IP == "" {
		return
	}
	if a, err := netip.ParseAddr(ifc.IP); err == nil {
		bn.ipam.release(a, id)
	}
}

func (m *Manager) userInfosLocked() []Info {
	var out []Info
	for _, n := range m.nets {
		out = append(out, n.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Network finds a network by name, ID or unique ID prefix (at least 1 character, as Docker).
func (m *Manager) Network(ref string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range []string{"bridge", "host", "none"} {
		if ref == name || ref == m.st.IDs[name] {
			for _, i := range m.builtinInfosLocked() {
				if i.Name == name {
					return i, nil
				}
			}
		}
	}
	n, err := m.lookupUserLocked(ref)
	if err != nil {
		// A prefix of a built-in network's ID.
		for _, i := range m.builtinInfosLocked() {
			if ref != "" && strings.HasPrefix(i.ID, ref) {
				return i, nil
			}
		}
		return Info{}, err
	}
	return n.info(), nil
}

func (m *Manager) builtinInfosLocked() []Info {
	return []Info{
		{ID: m.st.IDs["bridge"], Name: "bridge", Driver: "bridge", Subnet: m.st.Subnet, Gateway: m.st.Gateway, Bridge: m.opts.BridgeName, BuiltIn: true},
		{ID: m.st.IDs["host"], Name: "host", Driver: "host", BuiltIn: true},
		{ID: m.st.IDs["none"], Name: "none", Driver: "null", BuiltIn: true},
	}
}

// userSubnetCandidates are tried in order for user networks without --subnet (as Docker: 172.18-31/16,
// then 192.168.x.0/20).
func userSubnetCandidates() []netip.Prefix {
	var out []netip.Prefix
	for i := 18; i <= 31; i++ {
		out = append(out, netip.MustParsePrefix(fmt.Sprintf("172.%d.0.0/16", i)))
	}
	for i := 0; i < 256; i += 16 {
		out = append(out, netip.MustParsePrefix(fmt.Sprintf("192.168.%d.0/20", i)))
	}
	return out
}

// usedPrefixesLocked: what a new network's subnet must not overlap.
func (m *Manager) usedPrefixesLocked() ([]netip.Prefix, error) {
	used, err := hostPrefixes(0)
	if err != nil {
		return nil, err
	}
	used = append(used, m.ipam.subnet)
	for _, n := range m.nets {
		used = append(used, n.ipam.subnet)
	}
	return used, nil
}

// CreateNetwork makes a user-defined bridge network. On error nothing it made is left behind.
func (m *Manager) CreateNetwork(cfg NetworkConfig) (_ Info, err error) {
	if !validNetName.MatchString(cfg.Name) || len(cfg.Name) > 128 {
		return Info{}, errKind(ErrInvalid, "invalid network name %q: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*", cfg.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Info{}, errors.New("network manager is closed")
	}
	switch cfg.Name {
	case "bridge", "host", "none", "default":
		return Info{}, errKind(ErrConflict, "network with name %s already exists", cfg.Name)
	}
	for _, n := range m.nets {
		if n.Name == cfg.Name {
			return Info{}, errKind(ErrConflict, "network with name %s already exists", cfg.Name)
		}
	}
	used, err := m.usedPrefixesLocked()
	if err != nil {
		return Info{}, err
	}
	var subnet netip.Prefix
	if cfg.Subnet != "" {
		p, perr := netip.ParsePrefix(cfg.Subnet)
		if perr != nil || !p.Addr().Is4() {
			return Info{}, errKind(ErrInvalid, "invalid subnet %s: must be an IPv4 CIDR", cfg.Subnet)
		}
		if p.Bits() > 30 {
			return Info{}, errKind(ErrInvalid, "invalid subnet %s: prefix must be /30 or shorter", cfg.Subnet)
		}
		subnet = p.Masked()
		if _, bad := overlapsAny(subnet, used); bad {
			return Info{}, errKind(ErrForbidden, "invalid pool request: Pool overlaps with other one on this address space")
		}
	} else {
		used = append(used, resolverPrefixes("/etc/resolv.conf")...)
		for _, c := range userSubnetCandidates() {
			if _, bad := overlapsAny(c, neverPick); bad {
				continue
			}
			if _, bad := overlapsAny(c, used); bad {
				continue
			}
			subnet = c
			break
		}
		if !subnet.IsValid() {
			return Info{}, errKind(ErrForbidden, "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
		}
	}
	n := &bnet{ID: randomID(), Name: cfg.Name, Subnet: subnet.String(), Internal: cfg.Internal,
		Labels: copyMap(cfg.Labels), Options: copyMap(cfg.Options), Created: time.Now().UTC(), ipam: newIPAM(subnet)}
	if cfg.Gateway != "" {
		gw, gerr := netip.ParseAddr(cfg.Gateway)
		if gerr != nil || !subnet.Contains(gw) || gw == subnet.Addr() || addrToU32(gw) == addrToU32(subnet.Addr())+n.ipam.size()-1 {
			return Info{}, errKind(ErrInvalid, "no matching subnet for gateway %s", cfg.Gateway)
		}
		n.ipam.gateway = gw
	}
	n.Gateway = n.ipam.gateway.String()
	n.Bridge = userBridgePrefix + n.ID[:10]
	path := filepath.Join(m.networksDir(), n.ID+".json")

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := writeJSON(path, n); err != nil {
		return Info{}, err
	}
	undo = append(undo, func() { os.Remove(path) })
	undo = append(undo, func() { delLinkByName(n.Bridge) })
	if err := ensureBridge(n.Bridge, n.ipam.gateway, subnet.Bits()); err != nil {
		return Info{}, err
	}
	m.nets[n.ID] = n
	undo = append(undo, func() {
		delete(m.nets, n.ID)
		m.fw.nets = m.fwNets()
		m.fw.ensureBase()
		removeUserRules(m.fw.conn, n.Bridge)
	})
	m.fw.nets = m.fwNets()
	if err := m.ensureFirewall(); err != nil {
		return Info{}, err
	}
	if err := m.startDNS(n); err != nil {
		return Info{}, err
	}
	return n.info(), nil
}

// RemoveNetwork removes a user-defined network without endpoints.
func (m *Manager) RemoveNetwork(ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("network manager is closed")
	}
	for _, name := range []string{"bridge", "host", "none"} {
		if ref == name || ref == m.st.IDs[name] {
			return errKind(ErrForbidden, "%s is a pre-defined network and cannot be removed", name)
		}
	}
	n, err := m.lookupUserLocked(ref)
	if err != nil {
		return err
	}
	if users := m.usersLocked(n.ID); len(users) > 0 {
		return errKind(ErrForbidden, "error while removing network: network %s has active endpoints", n.Name)
	}
	n.dns.stop()
	n.dns = nil
	delete(m.nets, n.ID)
	m.fw.nets = m.fwNets()
	var errs []error
	if err := m.fw.ensureBase(); err != nil {
		errs = append(errs, err)
	}
	if err := removeUserRules(m.fw.conn, n.Bridge); err != nil {
		errs = append(errs, err)
	}
	m.waitAllVeths()
	if err := delBridgeAndPorts(n.Bridge); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// Keep the record: the network stays listed and a retry (or the next start) finishes the job.
		m.nets[n.ID] = n
		m.fw.nets = m.fwNets()
		m.startDNS(n)
		return fmt.Errorf("error while removing network: %w", errors.Join(errs...))
	}
	if err := os.Remove(filepath.Join(m.networksDir(), n.ID+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// usersLocked lists the containers with an interface on the network.
func (m *Manager) usersLocked(key string) []string {
	var out []string
	for id, ep := range m.eps {
		if ep.Network == key {
			out = append(out, id)
			continue
		}
		for _, x := range ep.Extra {
			if x.Net == key {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// delBridgeAndPorts deletes the veths plugged into a bridge, then the bridge.
func delBridgeAndPorts(name string) error {
	br, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if br.Type() != "bridge" {
		return nil
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
			if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("removing %s: %w", l.Attrs().Name, err)
			}
		}
	}
	if err := netlink.LinkDel(br); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("removing bridge %s: %w", name, err)
	}
	return nil
}

// extraVethName names the host side of a container's interface eth<n> (n ≥ 1), at most 15 bytes.
func extraVethName(id string, n int) string {
	if len(id) > 10 {
		id = id[:10]
	}
	return fmt.Sprintf("%s%s-%d", vethPrefix, id, n)
}

// Connect adds an interface on another bridged network to a running container's namespace.
func (m *Manager) Connect(req ConnectRequest) (_ *Attachment, err error) {
	id := req.ContainerID
	if err := checkID(id); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("network manager is closed")
	}
	key, bn, err := m.normalizeNetworkLocked(req.Network)
	if err != nil {
		return nil, err
	}
	ep := m.eps[id]
	if ep == nil {
		return nil, errKind(ErrConflict, "container %s is not running", id)
	}
	switch {
	case key == "host" || ep.Network == "host":
		return nil, errKind(ErrForbidden, "container cannot be disconnected from host network or connected to host network")
	case key == "none" || ep.Network == "none":
		return nil, errKind(ErrForbidden, "container cannot be connected to multiple networks with one of the networks in private (none) mode")
	case bn == nil || strings.HasPrefix(ep.Network, "container:"):
		return nil, errKind(ErrForbidden, "container sharing network namespace with another container or host cannot be connected to any other network")
	}
	name := ep.Name
	if name == "" {
		name = endpointName(id)
	}
	used := map[string]bool{}
	if ep.HostVeth != "" {
		used[ep.primaryIfName()] = true
	}
	if ep.HostVeth != hostVethName(id) {
		m.waitVeth(hostVethName(id)) // a first interface just disconnected: its eth0 may be going away
	}
	if ep.Network == key {
		return nil, errKind(ErrForbidden, "endpoint with name %s already exists in network %s", name, bn.Name)
	}
	for _, x := range ep.Extra {
		if x.Net == key {
			return nil, errKind(ErrForbidden, "endpoint with name %s already exists in network %s", name, bn.Name)
		}
		used[x.IfName] = true
	}
	num := 0
	for used[fmt.Sprintf("eth%d", num)] {
		num++
	}
	ip, err := bn.allocate(id, req.IP)
	if err != nil {
		return nil, err
	}
	x := bn.newIface(extraVethName(id, num), fmt.Sprintf("eth%d", num), ip, req.Aliases)
	x.Net = key
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() { bn.ipam.release(ip, id) })
	m.waitVeth(x.HostVeth)
	ep.Extra = append(ep.Extra, x)
	undo = append(undo, func() {
		ep.Extra = ep.Extra[:len(ep.Extra)-1]
		m.saveEndpoint(ep)
	})
	if err := m.saveEndpoint(ep); err != nil {
		return nil, fmt.Errorf("saving network endpoint: %w", err)
	}
	t, err := newNSThread(ep.NetNSPath, false)
	if err != nil {
		return nil, err
	}
	defer t.close()
	if err := m.setupVeth(t, bn.Bridge, ep.NetNSPath, &ep.Extra[len(ep.Extra)-1], !bn.Internal, &undo); err != nil {
		return nil, err
	}
	m.refreshDNSLocked()
	return m.attachmentOf(ep, &ep.Extra[len(ep.Extra)-1], key), nil
}

// Disconnect removes a container's interface on a network it was connected to with Connect.
func (m *Manager) Disconnect(containerID, network string) error {
	if err := checkID(containerID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("network manager is closed")
	}
	key, bn, err := m.normalizeNetworkLocked(network)
	if err != nil {
		return err
	}
	ep := m.eps[containerID]
	if ep == nil {
		return errKind(ErrConflict, "container %s is not running", containerID)
	}
	if key == "host" || ep.Network == "host" {
		return errKind(ErrForbidden, "container cannot be disconnected from host network or connected to host network")
	}
	if strings.HasPrefix(ep.Network, "container:") {
		return errKind(ErrForbidden, "container sharing network namespace with another container or host cannot be connected to any other network")
	}
	if key == "none" && ep.Network == "none" {
		// The namespace (only lo) stays; the container may now be connected to other networks.
		ep.Network = ""
		return m.saveEndpoint(ep)
	}
	if bn != nil && ep.Network == key {
		return m.disconnectPrimaryLocked(ep)
	}
	for i, x := range ep.Extra {
		if x.Net != key {
			continue
		}
		if err := m.delOwnVeth(x.HostVeth); err != nil {
			return err
		}
		m.releaseIface(containerID, key, &ep.Extra[i])
		ep.Extra = append(ep.Extra[:i:i], ep.Extra[i+1:]...)
		m.refreshDNSLocked()
		return m.saveEndpoint(ep)
	}
	name := ep.Name
	if name == "" {
		name = containerID
	}
	return errKind(ErrForbidden, "container %s is not connected to network %s", name, network)
}

// disconnectPrimaryLocked removes a running container's first interface: its veth and address. As dockerd
// moves external connectivity to the next gateway endpoint, the first remaining interface on a network with
// a gateway (else the first remaining one) becomes the primary: it gets the default route and the published
// ports. With no other interface the namespace keeps only lo.
func (m *Manager) disconnectPrimaryLocked(ep *endpoint) error {
	id := ep.ContainerID
	if len(ep.Ports) > 0 {
		if err := m.fw.delPorts(id); err != nil {
			return err
		}
	}
	if err := m.delOwnVeth(ep.HostVeth); err != nil {
		return err
	}
	m.releaseIface(id, ep.Network, &ep.iface)
	k := -1
	for i := range ep.Extra {
		if bn := m.bnetOf(ep.Extra[i].Net); bn != nil && !bn.Internal {
			k = i
			break
		}
	}
	if k < 0 && len(ep.Extra) > 0 {
		k = 0
	}
	var errs []error
	if k < 0 {
		closeHolds(m.holds[id])
		delete(m.holds, id)
		ep.Network, ep.iface, ep.Ports = "", iface{}, nil
	} else {
		x := ep.Extra[k]
		ep.Extra = append(ep.Extra[:k:k], ep.Extra[k+1:]...)
		ep.Network = x.Net
		x.Net = ""
		ep.iface = x
		bn := m.bnetOf(ep.Network)
		if bn != nil && !bn.Internal {
			errs = append(errs, m.defaultRoute(ep))
			if len(ep.Ports) > 0 {
				if err := m.fw.addPorts(id, netip.MustParseAddr(ep.IP), ep.Ports); err != nil {
					errs = append(errs, err)
				}
			}
		} else {
			closeHolds(m.holds[id])
			delete(m.holds, id)
			ep.Ports = nil
		}
	}
	m.refreshDNSLocked()
	if err := m.saveEndpoint(ep); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// defaultRoute points the namespace's default route at the primary interface's gateway (replacing the
// route through an interface that went away).
func (m *Manager) defaultRoute(ep *endpoint) error {
	gw := net.ParseIP(ep.Gateway).To4()
	ifName := ep.IfName
	if ifName == "" {
		ifName = ctrIfName
	}
	t, err := newNSThread(ep.NetNSPath, false)
	if err != nil {
		return err
	}
	defer t.close()
	return t.do(func() error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("looking up %s in the container: %w", ifName, err)
		}
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw, Scope: netlink.SCOPE_UNIVERSE}); err != nil {
			return fmt.Errorf("adding default route via %s: %w", gw, err)
		}
		return nil
	})
}

// Attachments lists a container's interfaces on bridged networks, primary first.
func (m *Manager) Attachments(containerID string) []*Attachment {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep := m.eps[containerID]
	if ep == nil {
		return nil
	}
	var out []*Attachment
	if ep.HostVeth != "" {
		out = append(out, m.attachmentOf(ep, &ep.iface, ep.Network))
	}
	for i := range ep.Extra {
		out = append(out, m.attachmentOf(ep, &ep.Extra[i], ep.Extra[i].Net))
	}
	return out
}

// repairExtra re-creates an extra interface's veth if it is gone but the namespace survived.
func (m *Manager) repairExtra(ep *endpoint, x *iface) error {
	bn := m.bnetOf(x.Net)
	if bn == nil {
		return nil
	}
	if l, err := netlink.LinkByName(x.HostVeth); err == nil {
		if br, err := netlink.LinkByName(bn.Bridge); err == nil && l.Attrs().MasterIndex != br.Attrs().Index {
			if err := netlink.LinkSetMaster(l, br); err != nil {
				return fmt.Errorf("re-attaching %s to %s: %w", x.HostVeth, bn.Bridge, err)
			}
			netlink.LinkSetHairpin(l, true)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			return netlink.LinkSetUp(l)
		}
		return nil
	}
	if _, err := os.Stat(ep.NetNSPath); err != nil {
		return nil
	}
	t, err := newNSThread(ep.NetNSPath, false)
	if err != nil {
		return err
	}
	defer t.close()
	t.do(func() error {
		if l, err := netlink.LinkByName(x.IfName); err == nil {
			netlink.LinkDel(l)
		}
		return nil
	})
	var undo []func()
	if err := m.setupVeth(t, bn.Bridge, ep.NetNSPath, x, !bn.Internal, &undo); err != nil {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return fmt.Errorf("re-creating network interface %s of %s: %w", x.IfName, ep.ContainerID, err)
	}
	return nil
}

// cleanupUserNetworks removes the user networks recorded under stateDir: their accept rules in
// iptables' filter table, their bridges (with any veth left on them) and the records.
func cleanupUserNetworks(conn *nftables.Conn, stateDir string) error {
	dir := filepath.Join(stateDir, "networks")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var n bnet
		if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &n) == nil && strings.HasPrefix(n.Bridge, userBridgePrefix) {
			if err := removeUserRules(conn, n.Bridge); err != nil {
				errs = append(errs, err)
			}
			if err := delBridgeAndPorts(n.Bridge); err != nil {
				errs = append(errs, err)
			}
		}
		os.Remove(p)
	}
	os.Remove(dir)
	return errors.Join(errs...)
}
