package network

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Options configures a Manager. Zero values take the defaults.
type Options struct {
	// StateDir holds network.json (subnet, network IDs) and endpoints/<container id>.json. Required.
	StateDir string
	// BridgeName is the default bridge's link name (default "wharf0", at most 15 bytes).
	BridgeName string
	// Subnet is the bridge's IPv4 subnet. Empty: the persisted one, else the bridge's current address, else
	// the first default candidate overlapping no route or address on the host.
	Subnet string
	// NetNSDir is where per-container network namespaces are bind-mounted (default "/run/wharf/netns").
	// It must be used by this Manager only.
	NetNSDir string
	// TableName is Wharf's own nftables table (family ip). Default "wharf" for the default bridge,
	// "wharf_<bridge>" otherwise.
	TableName string
}

const (
	defaultBridge   = "wharf0"
	defaultNetNSDir = "/run/wharf/netns"
	defaultTable    = "wharf"
	vethPrefix      = "wh"
	ctrIfName       = "eth0"
)

func (o *Options) setDefaults() error {
	if o.StateDir == "" {
		return errors.New("network: Options.StateDir is required")
	}
	if o.BridgeName == "" {
		o.BridgeName = defaultBridge
	}
	if len(o.BridgeName) > 15 || strings.ContainsAny(o.BridgeName, "/ ") {
		return fmt.Errorf("network: invalid bridge name %q", o.BridgeName)
	}
	if o.BridgeName == "docker0" {
		return errors.New("network: docker0 belongs to Docker; use another bridge name")
	}
	if o.NetNSDir == "" {
		o.NetNSDir = defaultNetNSDir
	}
	if o.TableName == "" {
		// One table per bridge, so that two Managers (e.g. a test and a daemon) never share base chains.
		o.TableName = defaultTable
		if o.BridgeName != defaultBridge {
			o.TableName = defaultTable + "_" + o.BridgeName
		}
	}
	return nil
}

// Manager implements API on the host's kernel (netlink + nftables). Safe for concurrent use.
type Manager struct {
	mu     sync.Mutex
	opts   Options
	st     netState
	ipam   *ipam
	fw     *firewall
	eps    map[string]*endpoint   // by container ID
	broken map[string]bool        // endpoint records that could not be read (cleaned by Reconcile)
	holds  map[string][]*portHold // published ports held open, by container ID
	closed bool

	def  *bnet            // the default bridge network
	nets map[string]*bnet // user-defined networks by ID
	// names answered by the embedded DNS servers, rebuilt after every change (read without mu).
	dnsTable atomic.Pointer[dnsTable]
	// upstream lists the resolvers ("ip:port") other names are forwarded to (tests replace it).
	upstream func() []string

	// Deleting a veth costs ~20 ms in the kernel (unregister waits for RCU): Detach takes the link down and
	// leaves the deletion to a goroutine. pending tracks them by name (own lock: the goroutines never take mu).
	pmu     sync.Mutex
	pending map[string]chan struct{}
	pwg     sync.WaitGroup
}

var _ API = (*Manager)(nil)

func hostVethName(id string) string {
	if len(id) > 10 {
		id = id[:10]
	}
	return vethPrefix + id
}

// New sets up (or adopts, after a restart) the default bridge, Wharf's nftables table and the persisted
// endpoints. Endpoint ports are held again; call Reconcile to drop what no longer runs.
func New(opts Options) (*Manager, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	for _, d := range []string{opts.StateDir, filepath.Join(opts.StateDir, "endpoints")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(opts.NetNSDir, 0o755); err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, eps: map[string]*endpoint{}, broken: map[string]bool{}, holds: map[string][]*portHold{},
		pending: map[string]chan struct{}{}, nets: map[string]*bnet{}, upstream: hostResolvers}
	m.dnsTable.Store(&dnsTable{})
	statePath := filepath.Join(opts.StateDir, "network.json")
	if data, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(data, &m.st); err != nil {
			return nil, fmt.Errorf("reading %s: %w", statePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	before := m.st.Subnet + "|" + m.st.Bridge + "|" + fmt.Sprint(m.st.IDs)

	brIdx := 0
	var brLink netlink.Link
	if l, err := netlink.LinkByName(opts.BridgeName); err == nil {
		brIdx, brLink = l.Attrs().Index, l
	}
	var subnet netip.Prefix
	var err error
	switch {
	case opts.Subnet != "":
		subnet, err = checkSubnet(opts.Subnet, brIdx)
	case m.st.Subnet != "" && m.st.Bridge == opts.BridgeName:
		subnet, err = netip.ParsePrefix(m.st.Subnet)
	default:
		subnet, err = bridgeSubnet(brLink)
		if err == nil && !subnet.IsValid() {
			subnet, err = pickSubnet(brIdx)
		}
	}
	if err != nil {
		return nil, err
	}
	m.ipam = newIPAM(subnet)
	m.st.Bridge, m.st.Subnet, m.st.Gateway = opts.BridgeName, subnet.String(), m.ipam.gateway.String()
	if m.st.IDs == nil {
		m.st.IDs = map[string]string{}
	}
	for _, n := range []string{"bridge", "host", "none"} {
		if m.st.IDs[n] == "" {
			m.st.IDs[n] = randomID()
		}
	}
	if after := m.st.Subnet + "|" + m.st.Bridge + "|" + fmt.Sprint(m.st.IDs); after != before {
		if err := writeJSON(statePath, &m.st); err != nil {
			return nil, err
		}
	}

	m.def = &bnet{ID: m.st.IDs["bridge"], Name: "bridge", Bridge: opts.BridgeName, Subnet: subnet.String(),
		Gateway: m.ipam.gateway.String(), ipam: m.ipam}
	if err := m.ensureHost(); err != nil {
		return nil, err
	}
	if err := m.loadNetworks(); err != nil {
		return nil, err
	}
	m.fw, err = newFirewall(opts.TableName, opts.BridgeName, subnet)
	if err != nil {
		return nil, err
	}
	m.fw.nets = m.fwNets()
	if err := m.ensureFirewall(); err != nil {
		m.fw.close()
		return nil, err
	}

	eps, err := loadEndpoints(m.endpointsDir())
	if err != nil {
		m.fw.close()
		return nil, err
	}
	for id, ep := range eps {
		if ep == nil {
			m.broken[id] = true
			continue
		}
		if !m.reserveEndpoint(ep) {
			m.broken[id] = true // e.g. the subnet changed under it: Reconcile removes it
			continue
		}
		m.eps[id] = ep
		m.holds[id] = rehold(ep.Ports)
	}
	m.refreshDNSLocked()
	m.startDNSServers()
	return m, nil
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// bridgeSubnet returns the subnet of an existing bridge's first IPv4 address (invalid prefix if none).
func bridgeSubnet(l netlink.Link) (netip.Prefix, error) {
	if l == nil {
		return netip.Prefix{}, nil
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return netip.Prefix{}, err
	}
	for _, a := range addrs {
		if p, ok := ipnetToPrefix(a.IPNet); ok && p.Bits() <= 30 {
			return p.Masked(), nil
		}
	}
	return netip.Prefix{}, nil
}

// rehold takes the host ports of a persisted endpoint again; ports another process took meanwhile are
// skipped (their DNAT rules still win for traffic from outside and from the host).
func rehold(ports []PortBinding) []*portHold {
	var hs []*portHold
	for _, p := range ports {
		ip, err := netip.ParseAddr(p.HostIP)
		if err != nil {
			continue
		}
		c, _, err := holdPort(p.Proto, ip, p.HostPort)
		k := portKey{proto: p.Proto, ip: ip, port: p.HostPort}
		if err != nil {
			c = nil
		}
		hs = append(hs, &portHold{key: k, c: c})
	}
	return hs
}

// ensureHost makes sure the bridge exists with the gateway address and is up, and sets the sysctls.
func (m *Manager) ensureHost() error {
	if err := ensureBridge(m.opts.BridgeName, m.ipam.gateway, m.ipam.subnet.Bits()); err != nil {
		return err
	}
	return setSysctl("/proc/sys/net/ipv4/ip_forward", "1")
}

// ensureBridge makes sure the bridge exists with exactly the gateway address, is up, IPv4-only and has
// route_localnet (see below).
func ensureBridge(name string, gw netip.Addr, bits int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("looking up bridge %s: %w", name, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = name
		// A fixed MAC, or the bridge takes the lowest MAC of its ports and changes as containers come and go.
		la.HardwareAddr = macFromIP(gw)
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating bridge %s: %w", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("looking up bridge %s: %w", name, err)
		}
	} else if link.Type() != "bridge" {
		return fmt.Errorf("%s exists and is not a bridge (%s)", name, link.Type())
	}
	want := &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(bits, 32)}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			have = true
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			return fmt.Errorf("removing stale address %s from %s: %w", a.IPNet, name, err)
		}
	}
	if !have {
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: want}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding %s to %s: %w", want, name, err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("bringing %s up: %w", name, err)
		}
	}
	// IPv4 only: no link-local IPv6 address, router solicitations or MLD on the bridge.
	if err := setSysctl("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Lets DNATed traffic from 127.0.0.1 leave through the bridge (and replies come back); set on our bridge
	// only, and the guard rule drops anything a container sends to 127.0.0.0/8.
	return setSysctl("/proc/sys/net/ipv4/conf/"+name+"/route_localnet", "1")
}

func setSysctl(path, val string) error {
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == val {
		return nil
	}
	if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
		return fmt.Errorf("setting %s: %w", strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", "."), err)
	}
	return nil
}

func (m *Manager) ensureFirewall() error {
	if err := dropStaleTables(m.fw.conn, m.opts.BridgeName, m.opts.TableName); err != nil {
		return err
	}
	if err := m.fw.ensureBase(); err != nil {
		return err
	}
	for _, n := range m.nets {
		if err := ensureUserRules(m.fw.conn, n.Bridge); err != nil {
			return err
		}
	}
	return ensureUserRules(m.fw.conn, m.opts.BridgeName)
}

func normalizeNetwork(n string) (string, error) {
	switch n {
	case "", "default", "bridge":
		return "bridge", nil
	case "host", "none":
		return n, nil
	}
	if target, ok := strings.CutPrefix(n, "container:"); ok && checkID(target) == nil {
		return n, nil
	}
	return "", fmt.Errorf("network %s not found", n)
}

// Attach creates the container's network. On error nothing it made is left behind.
func (m *Manager) Attach(req AttachRequest) (_ *Attachment, err error) {
	id := req.ContainerID
	if err := checkID(id); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("network manager is closed")
	}
	netName, bn, err := m.normalizeNetworkLocked(req.Network)
	if err != nil {
		return nil, err
	}
	if old, ok := m.eps[id]; ok || m.broken[id] {
		n := netName
		if old != nil {
			n = old.Network
		}
		return nil, fmt.Errorf("endpoint with name %s already exists in network %s", id, n)
	}

	m.waitVeth(hostVethName(id)) // e.g. a restart: Detach then Attach of the same container

	var (
		undo     []func()
		saveDone chan error
	)
	ups, err := normalizeUpstreams(req.DNS)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{ContainerID: id, Network: netName, Name: req.Name, DNS: ups}
	// The record is written (fsync'd) while the kernel objects are being made; it must be on disk before
	// Attach returns. A crash before that leaves objects without a record: Reconcile's scan (links on the
	// bridge, files in NetNSDir, rules tagged with the ID) removes those too.
	startSave := func() {
		saveDone = make(chan error, 1)
		go func(ep endpoint) { saveDone <- m.saveEndpoint(&ep) }(*ep)
		undo = append(undo, func() { m.removeEndpointFile(id) })
	}
	finishSave := func() error {
		if saveDone == nil {
			return nil
		}
		err := <-saveDone
		saveDone = nil
		if err != nil {
			return fmt.Errorf("saving network endpoint: %w", err)
		}
		return nil
	}
	defer func() {
		if err != nil {
			finishSave()
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	kind := netName
	if bn != nil {
		kind = "bridge"
	}
	switch kind {
	case "bridge":
	default: // "container:<id>": join another container's namespace; nothing of its own to create
		target := strings.TrimPrefix(netName, "container:")
		tep := m.eps[target]
		if tep == nil || target == id {
			return nil, fmt.Errorf("cannot join network of a non running container: %s", target)
		}
		if strings.HasPrefix(tep.Network, "container:") {
			return nil, fmt.Errorf("cannot join network of a container that shares another container's network: %s", target)
		}
		ep.NetNSPath = tep.NetNSPath
		startSave()
		if err := finishSave(); err != nil {
			return nil, err
		}
		m.eps[id] = ep
		return &Attachment{Network: netName, NetNSPath: ep.NetNSPath, HostGateway: m.hostGateway()}, nil
	case "host":
		// Like Docker: published ports are discarded in host mode.
		ep.NetNSPath = "host"
		startSave()
		if err := finishSave(); err != nil {
			return nil, err
		}
		m.eps[id] = ep
		return &Attachment{Network: "host", NetNSPath: "host", HostGateway: m.hostGateway()}, nil
	case "none":
		ep.NetNSPath = filepath.Join(m.opts.NetNSDir, id)
		startSave()
		t, err := newNSThread(ep.NetNSPath, true)
		if err != nil {
			return nil, err
		}
		undo = append(undo, func() { removeNetNS(ep.NetNSPath) })
		err = t.do(loUp)
		t.close()
		if err != nil {
			return nil, err
		}
		if err := finishSave(); err != nil {
			return nil, err
		}
		m.eps[id] = ep
		return &Attachment{Network: "none", NetNSPath: ep.NetNSPath, HostGateway: m.hostGateway()}, nil
	}

	// bridge or a user-defined network
	ports, err := normalizePorts(req.Ports)
	if err != nil {
		return nil, err
	}
	ip, err := bn.allocate(id, req.IP)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { bn.ipam.release(ip, id) })

	resolved, holds, err := m.reservePorts(id, ports)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { closeHolds(holds) })

	ep.NetNSPath = filepath.Join(m.opts.NetNSDir, id)
	ep.iface = bn.newIface(hostVethName(id), "", ip, req.Aliases)
	ep.Ports = resolved
	startSave()

	t, err := newNSThread(ep.NetNSPath, true)
	if err != nil {
		return nil, err
	}
	defer t.close()
	undo = append(undo, func() { removeNetNS(ep.NetNSPath) })
	if req.NetNSReady != nil {
		req.NetNSReady(ep.NetNSPath)
	}
	if err := m.setupVeth(t, bn.Bridge, ep.NetNSPath, &ep.iface, !bn.Internal, &undo); err != nil {
		return nil, err
	}
	if err := m.fw.addPorts(id, ip, resolved); err != nil {
		return nil, driverFailed(id, err, "%v", err)
	}
	if len(resolved) > 0 {
		undo = append(undo, func() { m.fw.delPorts(id) })
	}
	if err := finishSave(); err != nil {
		return nil, err
	}
	m.eps[id] = ep
	m.holds[id] = holds
	m.refreshDNSLocked()
	return m.attachmentOf(ep, &ep.iface, ep.Network), nil
}

// attachmentOf describes one interface of an endpoint (its primary one or one in Extra).
func (m *Manager) attachmentOf(ep *endpoint, ifc *iface, key string) *Attachment {
	a := &Attachment{Network: key, NetNSPath: ep.NetNSPath, PrefixLen: ifc.PrefixLen, MAC: ifc.MAC,
		IfName: ifc.IfName, Aliases: append([]string(nil), ifc.Aliases...), HostGateway: m.hostGateway()}
	if a.IfName == "" && ifc.HostVeth != "" {
		a.IfName = ctrIfName
	}
	if ifc == &ep.iface {
		a.Ports = append([]PortBinding(nil), ep.Ports...)
	}
	if ifc.IP != "" {
		a.IP = net.ParseIP(ifc.IP).To4()
	}
	if ifc.Gateway != "" {
		a.Gateway = net.ParseIP(ifc.Gateway).To4()
		a.BridgeIP = a.Gateway
	}
	if bn := m.bnetOf(key); bn != nil {
		a.NetworkID, a.Network = bn.ID, bn.Name
		if bn != m.def {
			a.DNS = a.Gateway
			if bn.Internal {
				a.Gateway = nil // no default route on an internal network
			}
		}
	}
	return a
}

// hostGateway is the address --add-host NAME:host-gateway stands for: the default bridge's gateway.
func (m *Manager) hostGateway() net.IP { return m.ipam.gateway.AsSlice() }

// normalizeUpstreams turns --dns values ("ip" or "ip:port") into "ip:port" addresses.
func normalizeUpstreams(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, net.JoinHostPort(ap.Addr().Unmap().String(), fmt.Sprint(ap.Port())))
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, errKind(ErrInvalid, "%s is not an ip address", s)
		}
		out = append(out, net.JoinHostPort(a.Unmap().String(), "53"))
	}
	return out, nil
}

func loUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("looking up lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// setupVeth creates the veth pair (host side on the bridge and up; container side ep.IfName, default
// eth0, in the namespace t sits in) and configures it, lo and (defRoute) the default route. Undo steps
// are appended to *undo.
func (m *Manager) setupVeth(t *nsThread, bridge, nsPath string, ep *iface, defRoute bool, undo *[]func()) error {
	ctrIfName := ep.IfName
	if ctrIfName == "" {
		ctrIfName = "eth0"
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("looking up bridge %s: %w", bridge, err)
	}
	nsf, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer nsf.Close()
	mac, _ := net.ParseMAC(ep.MAC)
	la := netlink.NewLinkAttrs()
	la.Name = ep.HostVeth
	la.MasterIndex = br.Attrs().Index
	la.MTU = br.Attrs().MTU
	la.Flags = net.FlagUp
	veth := &netlink.Veth{LinkAttrs: la, PeerName: ctrIfName, PeerHardwareAddr: mac,
		PeerNamespace: netlink.NsFd(int(nsf.Fd())), PeerMTU: uint32(br.Attrs().MTU)}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating veth pair %s: an interface with that name already exists", ep.HostVeth)
		}
		return fmt.Errorf("creating veth pair %s: %w", ep.HostVeth, err)
	}
	*undo = append(*undo, func() { delLinkByName(ep.HostVeth) })
	// IPv4 only: no link-local IPv6 address (nor RS/MLD chatter) on the host side; bridging is unaffected.
	if err := setSysctl("/proc/sys/net/ipv6/conf/"+ep.HostVeth+"/disable_ipv6", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Hairpin: with br_netfilter, a container reaching its own published port through the host is DNATed
	// at bridge level and must be sent back out of the port it came in on.
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		return fmt.Errorf("setting hairpin mode on %s: %w", ep.HostVeth, err)
	}
	ip := net.ParseIP(ep.IP).To4()
	gw := net.ParseIP(ep.Gateway).To4()
	return t.do(func() error {
		if err := loUp(); err != nil {
			return err
		}
		eth, err := netlink.LinkByName(ctrIfName)
		if err != nil {
			return fmt.Errorf("looking up %s in the container: %w", ctrIfName, err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(ep.PrefixLen, 32)}}
		if err := netlink.AddrAdd(eth, addr); err != nil {
			return fmt.Errorf("adding %s to %s: %w", addr.IPNet, ctrIfName, err)
		}
		if err := netlink.LinkSetUp(eth); err != nil {
			return fmt.Errorf("bringing %s up: %w", ctrIfName, err)
		}
		if !defRoute {
			return nil
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw, Scope: netlink.SCOPE_UNIVERSE}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding default route via %s: %w", gw, err)
		}
		return nil
	})
}

func delLinkByName(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("removing %s: %w", name, err)
	}
	return nil
}

// Detach removes everything Attach made for the container. Unknown IDs are not an error (it also sweeps
// leftovers by name, so it is safe to call again after a partial failure).
func (m *Manager) Detach(containerID string) error {
	if err := checkID(containerID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("network manager is closed")
	}
	return m.detachLocked(containerID)
}

func (m *Manager) detachLocked(id string) error {
	ep := m.eps[id]
	var errs []error
	if ep == nil || len(ep.Ports) > 0 {
		if err := m.fw.delPorts(id); err != nil {
			errs = append(errs, err)
		}
	}
	if veth := hostVethName(id); ep == nil || ep.HostVeth != "" {
		if ep != nil {
			veth = ep.HostVeth
		}
		if err := m.delOwnVeth(veth); err != nil {
			errs = append(errs, err)
		}
	}
	if ep != nil {
		for _, x := range ep.Extra {
			if err := m.delOwnVeth(x.HostVeth); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if ep == nil || ep.NetNSPath != "host" {
		if err := removeNetNS(filepath.Join(m.opts.NetNSDir, id)); err != nil {
			errs = append(errs, err)
		}
	}
	closeHolds(m.holds[id])
	delete(m.holds, id)
	if ep != nil {
		m.releaseIface(id, ep.Network, &ep.iface)
		for i := range ep.Extra {
			m.releaseIface(id, ep.Extra[i].Net, &ep.Extra[i])
		}
	}
	if len(errs) > 0 {
		// Keep the record so that a retry or Reconcile finishes the job.
		return fmt.Errorf("detaching network of %s: %w", id, errors.Join(errs...))
	}
	if err := m.removeEndpointFile(id); err != nil {
		return err
	}
	delete(m.eps, id)
	delete(m.broken, id)
	m.refreshDNSLocked()
	return nil
}

// delOwnVeth deletes a veth only if it is a port of our bridge (never someone else's link of that name).
// The link is taken down at once (the bridge stops forwarding to it, so its address can be reused), and
// deleted in the background; waitVeth/waitAllVeths wait for that.
func (m *Manager) delOwnVeth(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if !m.isOurBridgeIndex(l.Attrs().MasterIndex) || l.Type() != "veth" {
		return nil
	}
	if err := netlink.LinkSetDown(l); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("removing %s: %w", name, err)
	}
	m.delLinkAsync(l)
	return nil
}

func (m *Manager) delLinkAsync(l netlink.Link) {
	name := l.Attrs().Name
	done := make(chan struct{})
	m.pmu.Lock()
	m.pending[name] = done
	m.pmu.Unlock()
	m.pwg.Add(1)
	go func() {
		defer m.pwg.Done()
		netlink.LinkDel(l) // ENODEV: the namespace's teardown took it first
		m.pmu.Lock()
		if m.pending[name] == done {
			delete(m.pending, name)
		}
		m.pmu.Unlock()
		close(done)
	}()
}

// waitVeth waits until a background deletion of the named link (if any) is finished.
func (m *Manager) waitVeth(name string) {
	m.pmu.Lock()
	ch := m.pending[name]
	m.pmu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (m *Manager) waitAllVeths() { m.pwg.Wait() }

// Reconcile, after a restart, keeps the listed containers' networks (re-creating missing rules, ports held,
// and the veth if it vanished while the namespace survived) and removes everything else Wharf made on
// this bridge: endpoint records, veths, namespaces, rules and leases. It never creates duplicates.
func (m *Manager) Reconcile(keep map[string]bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("network manager is closed")
	}
	var errs []error
	if err := m.ensureHost(); err != nil {
		return err
	}
	if err := m.ensureFirewall(); err != nil {
		return err
	}
	// 1. Records of containers that are gone.
	for id := range m.broken { // unreadable records: nothing to keep them by
		if err := m.detachLocked(id); err != nil {
			errs = append(errs, err)
		}
	}
	for id := range m.eps {
		if !keep[id] {
			if err := m.detachLocked(id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// 2. Kernel objects no record accounts for.
	ownVeth, ownNS := map[string]bool{}, map[string]bool{}
	for _, ep := range m.eps {
		if ep.HostVeth != "" {
			ownVeth[ep.HostVeth] = true
		}
		for _, x := range ep.Extra {
			ownVeth[x.HostVeth] = true
		}
		if ep.NetNSPath != "host" && ep.NetNSPath != "" {
			ownNS[filepath.Base(ep.NetNSPath)] = true
		}
	}
	m.waitAllVeths()
	{
		links, err := netlink.LinkList()
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, err)
		}
		for _, l := range links {
			a := l.Attrs()
			if m.isOurBridgeIndex(a.MasterIndex) && l.Type() == "veth" && !ownVeth[a.Name] {
				if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
					errs = append(errs, fmt.Errorf("removing %s: %w", a.Name, err))
				}
			}
		}
	}
	if ents, err := os.ReadDir(m.opts.NetNSDir); err == nil {
		for _, e := range ents {
			if !ownNS[e.Name()] {
				if err := removeNetNS(filepath.Join(m.opts.NetNSDir, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	// 3. Rules: exactly one DNAT rule per published port of a kept container.
	want := map[string][]ruleSpec{}
	for id, ep := range m.eps {
		if ep.IP != "" && len(ep.Ports) > 0 {
			want[id] = portSpecs(id, netip.MustParseAddr(ep.IP), ep.Ports)
		}
	}
	if err := m.fw.syncPorts(want); err != nil {
		errs = append(errs, err)
	}
	// 4. Kept endpoints: ports held, veth present.
	for id, ep := range m.eps {
		if ep.HostVeth == "" {
			for i := range ep.Extra { // disconnected from its first network: only the others
				if err := m.repairExtra(ep, &ep.Extra[i]); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		if _, ok := m.holds[id]; !ok {
			m.holds[id] = rehold(ep.Ports)
		} else {
			for i, h := range m.holds[id] {
				if h.c == nil {
					if c, _, err := holdPort(h.key.proto, h.key.ip, h.key.port); err == nil {
						m.holds[id][i].c = c
					}
				}
			}
		}
		if err := m.repairVeth(ep); err != nil {
			errs = append(errs, err)
		}
		for i := range ep.Extra {
			if err := m.repairExtra(ep, &ep.Extra[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// repairVeth re-creates a kept endpoint's veth pair if it is gone but its namespace is still there.
func (m *Manager) repairVeth(ep *endpoint) error {
	bn := m.bnetOf(ep.Network)
	if bn == nil {
		return nil
	}
	if l, err := netlink.LinkByName(ep.HostVeth); err == nil {
		// Still there; if the bridge was re-created, plug it back in.
		br, err := netlink.LinkByName(bn.Bridge)
		if err != nil {
			return err
		}
		if l.Attrs().MasterIndex != br.Attrs().Index {
			if err := netlink.LinkSetMaster(l, br); err != nil {
				return fmt.Errorf("re-attaching %s to %s: %w", ep.HostVeth, bn.Bridge, err)
			}
			netlink.LinkSetHairpin(l, true)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			return netlink.LinkSetUp(l)
		}
		return nil
	}
	if _, err := os.Stat(ep.NetNSPath); err != nil {
		return nil // namespace gone too: nothing to repair into
	}
	t, err := newNSThread(ep.NetNSPath, false)
	if err != nil {
		return err
	}
	defer t.close()
	// A half-configured eth0 may survive if only the host side was renamed away; start clean.
	t.do(func() error {
		if l, err := netlink.LinkByName(ep.primaryIfName()); err == nil {
			netlink.LinkDel(l)
		}
		return nil
	})
	var undo []func()
	if err := m.setupVeth(t, bn.Bridge, ep.NetNSPath, &ep.iface, !bn.Internal, &undo); err != nil {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return fmt.Errorf("re-creating network interface of %s: %w", ep.ContainerID, err)
	}
	return nil
}

// Networks lists the default bridge, host and none networks with their persisted IDs, then the
// user-defined networks by name.
func (m *Manager) Networks() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Info{
		{ID: m.st.IDs["bridge"], Name: "bridge", Driver: "bridge", Subnet: m.st.Subnet, Gateway: m.st.Gateway, Bridge: m.opts.BridgeName, BuiltIn: true},
		{ID: m.st.IDs["host"], Name: "host", Driver: "host", BuiltIn: true},
		{ID: m.st.IDs["none"], Name: "none", Driver: "null", BuiltIn: true},
	}
	return append(out, m.userInfosLocked()...)
}

// Close releases the Manager's resources (held ports, netlink sockets). Containers' networks stay.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.stopDNSServers()
	m.waitAllVeths()
	for _, hs := range m.holds {
		closeHolds(hs)
	}
	m.holds = nil
	return m.fw.close()
}

// Cleanup removes everything Wharf's networking made for these options: the nftables table, the accept
// rules in iptables' filter table, the veths on the bridge, the bridge, the namespaces under NetNSDir and
// the state files. Close any Manager using the same options first.
func Cleanup(opts Options) error {
	if err := opts.setDefaults(); err != nil {
		return err
	}
	var errs []error
	fw, err := newFirewall(opts.TableName, opts.BridgeName, netip.Prefix{})
	if err != nil {
		return err
	}
	defer fw.close()
	if tables, err := fw.conn.ListTablesOfFamily(fw.table.Family); err == nil {
		for _, t := range tables {
			if t.Name == opts.TableName {
				fw.conn.DelTable(fw.table)
				if err := fw.conn.Flush(); err != nil {
					errs = append(errs, fmt.Errorf("deleting nftables table %s: %w", opts.TableName, err))
				}
			}
		}
	} else {
		errs = append(errs, err)
	}
	if err := dropStaleTables(fw.conn, opts.BridgeName, opts.TableName); err != nil {
		errs = append(errs, err)
	}
	if err := removeUserRules(fw.conn, opts.BridgeName); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, cleanupUserNetworks(fw.conn, opts.StateDir))
	if br, err := netlink.LinkByName(opts.BridgeName); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
				if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
					errs = append(errs, err)
				}
			}
		}
		if br.Type() == "bridge" {
			if err := netlink.LinkDel(br); err != nil {
				errs = append(errs, fmt.Errorf("removing bridge %s: %w", opts.BridgeName, err))
			}
		}
	}
	if ents, err := os.ReadDir(opts.NetNSDir); err == nil {
		for _, e := range ents {
			if err := removeNetNS(filepath.Join(opts.NetNSDir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	epDir := filepath.Join(opts.StateDir, "endpoints")
	if ents, err := os.ReadDir(epDir); err == nil {
		for _, e := range ents {
			os.Remove(filepath.Join(epDir, e.Name()))
		}
		os.Remove(epDir)
	}
	os.Remove(filepath.Join(opts.StateDir, "network.json"))
	return errors.Join(errs...)
}
