package network

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// Test resources: bridge "whtest0", table "whtest", subnet 10.213.77.0/24, and an "outside" peer: a netns
// reached through veth "whxtest0" with TEST-NET-2 addresses 198.51.100.1/30 (host) and .2 (outside).
// All test traffic goes to 127.0.0.1 or to these addresses.
const (
	testBridge = "whtest0"
	testTable  = "whtest"
	testSubnet = "10.213.77.0/24"
	extLink    = "whxtest0"
	extHostIP  = "198.51.100.1"
	extPeerIP  = "198.51.100.2"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := nftables.New(); err != nil {
		t.Skipf("no nftables: %v", err)
	}
}

func testOptions(t testing.TB) Options {
	return Options{
		StateDir:   t.TempDir(),
		BridgeName: testBridge,
		Subnet:     testSubnet,
		NetNSDir:   t.TempDir(),
		TableName:  testTable,
	}
}

// newTestManager creates a Manager and registers cleanup of everything it may have made.
func newTestManager(t testing.TB) (*Manager, Options) {
	t.Helper()
	requireRoot(t)
	opts := testOptions(t)
	// Leftovers of an earlier interrupted run.
	Cleanup(Options{StateDir: t.TempDir(), BridgeName: testBridge, TableName: testTable, NetNSDir: t.TempDir()})
	m, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		m.Close()
		if err := Cleanup(opts); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return m, opts
}

// inNS runs f on a thread inside the network namespace at path (sockets made there stay in it).
func inNS(t testing.TB, path string, f func() error) error {
	t.Helper()
	th, err := newNSThread(path, false)
	if err != nil {
		return err
	}
	defer th.close()
	return th.do(f)
}

// serveTCP starts a server inside a netns that answers every connection with "<name> <remote addr>\n".
func serveTCP(t testing.TB, nsPath, addr, name string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := inNS(t, nsPath, func() (err error) { l, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatalf("listen in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr())
			c.Close()
		}
	}()
	return l
}

// serveUDP answers every datagram with "<name> <remote addr> <payload>".
func serveUDP(t testing.TB, nsPath, addr, name string) {
	t.Helper()
	var pc net.PacketConn
	if err := inNS(t, nsPath, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		t.Fatalf("listen udp in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(fmt.Sprintf("%s %s %s", name, from, buf[:n])), from)
		}
	}()
}

// fetch dials addr (from nsPath, or the host if "") and returns the server's line.
func fetch(t testing.TB, nsPath, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	dial := func() (err error) { c, err = net.DialTimeout("tcp4", addr, 3*time.Second); return err }
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNS(t, nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func udpAsk(t testing.TB, nsPath, addr, msg string) (string, error) {
	t.Helper()
	var c net.Conn
	dial := func() (err error) { c, err = net.Dial("udp4", addr); return err }
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNS(t, nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ { // UDP: a first datagram may race ARP resolution
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", errors.New("no UDP answer")
}

// outside creates a netns standing for another host, linked to the host by a veth with TEST-NET-2 addresses.
func outside(t testing.TB) string {
	t.Helper()
	if l, err := netlink.LinkByName(extLink); err == nil {
		netlink.LinkDel(l)
	}
	for _, p := range mustHostPrefixes(t) {
		if p.Overlaps(netip.MustParsePrefix("198.51.100.0/30")) {
			t.Skipf("198.51.100.0/30 is in use on this host (%s)", p)
		}
	}
	path := filepath.Join(t.TempDir(), "outside")
	th, err := newNSThread(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNetNS(path) })
	defer th.close()
	nsf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsf.Close()
	la := netlink.NewLinkAttrs()
	la.Name = extLink
	la.Flags = net.FlagUp
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(nsf.Fd()))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { delLinkByName(extLink) })
	host, _ := netlink.LinkByName(extLink)
	if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: mustCIDR(extHostIP + "/30")}); err != nil {
		t.Fatal(err)
	}
	err = th.do(func() error {
		if err := loUp(); err != nil {
			return err
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(eth, &netlink.Addr{IPNet: mustCIDR(extPeerIP + "/30")}); err != nil {
			return err
		}
		return netlink.LinkSetUp(eth)
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func mustHostPrefixes(t testing.TB) []netip.Prefix {
	ps, err := hostPrefixes(0)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func mustCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func attach(t testing.TB, m *Manager, id string, ports ...PortBinding) *Attachment {
	t.Helper()
	a, err := m.Attach(AttachRequest{ContainerID: id, Ports: ports})
	if err != nil {
		t.Fatalf("Attach %s: %v", id, err)
	}
	return a
}

func hostPort(a *Attachment, i int) string { return strconv.Itoa(int(a.Ports[i].HostPort)) }

func TestTwoContainersReachEachOther(t *testing.T) {
	m, _ := newTestManager(t)
	a := attach(t, m, "aaaaaaaaaaaa1111")
	b := attach(t, m, "bbbbbbbbbbbb2222")
	if a.IP.String() != "10.213.77.2" || b.IP.String() != "10.213.77.3" || a.PrefixLen != 24 ||
		a.Gateway.String() != "10.213.77.1" || a.MAC != "02:42:0a:d5:4d:02" || a.NetNSPath == "" {
		t.Fatalf("unexpected attachment %+v", a)
	}
	serveTCP(t, a.NetNSPath, ":8000", "a")
	got, err := fetch(t, b.NetNSPath, a.IP.String()+":8000")
	if err != nil {
		t.Fatalf("b → a: %v", err)
	}
	if want := "a " + b.IP.String() + ":"; !strings.HasPrefix(got, want) {
		t.Fatalf("b → a: got %q, want prefix %q", got, want)
	}
	// The host reaches a container directly too (through the bridge).
	if _, err := fetch(t, "", a.IP.String()+":8000"); err != nil {
		t.Fatalf("host → a: %v", err)
	}
	// Inside: only lo and eth0, default route via the gateway.
	err = inNS(t, a.NetNSPath, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		var names []string
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		if len(names) != 2 {
			return fmt.Errorf("links in container: %v", names)
		}
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == "10.213.77.1" {
				return nil
			}
		}
		return fmt.Errorf("no default route via gateway: %v", routes)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPublishedPorts(t *testing.T) {
	m, _ := newTestManager(t)
	ext := outside(t)
	c := attach(t, m, "cccccccccccc3333",
		PortBinding{ContainerPort: 80, Proto: "tcp"},
		PortBinding{ContainerPort: 53, Proto: "udp"},
		PortBinding{HostIP: "127.0.0.1", ContainerPort: 81})
	d := attach(t, m, "dddddddddddd4444")
	serveTCP(t, c.NetNSPath, ":80", "c80")
	serveTCP(t, c.NetNSPath, ":81", "c81")
	serveUDP(t, c.NetNSPath, ":53", "c53")
	tcpPort, udpPort, loPort := hostPort(c, 0), hostPort(c, 1), hostPort(c, 2)
	for i, p := range c.Ports {
		if p.HostPort == 0 || p.HostIP == "" {
			t.Fatalf("port %d not resolved: %+v", i, p)
		}
	}

	cases := []struct {
		name, from, addr, wantPeer string
	}{
		{"host→127.0.0.1", "", "127.0.0.1:" + tcpPort, "10.213.77.1:"}, // loopback source masqueraded
		{"host→gateway", "", "10.213.77.1:" + tcpPort, "10.213.77.1:"},
		{"host→own iface", "", extHostIP + ":" + tcpPort, extHostIP + ":"},
		// From another host: prerouting DNAT, then FORWARD (Docker's policy DROP) into the bridge; the
		// client's address is kept.
		{"outside→host", ext, extHostIP + ":" + tcpPort, extPeerIP + ":"},
		// Hairpin: a container reaches a published port through the host; it is masqueraded.
		{"container→gateway", d.NetNSPath, "10.213.77.1:" + tcpPort, "10.213.77.1:"},
		{"container→own iface", d.NetNSPath, extHostIP + ":" + tcpPort, "10.213.77.1:"},
		{"self hairpin", c.NetNSPath, "10.213.77.1:" + tcpPort, "10.213.77.1:"},
		{"host→127.0.0.1 only binding", "", "127.0.0.1:" + loPort, "10.213.77.1:"},
	}
	for _, tc := range cases {
		got, err := fetch(t, tc.from, tc.addr)
		if err != nil {
			t.Errorf("%s (%s): %v", tc.name, tc.addr, err)
			continue
		}
		if _, peer, _ := strings.Cut(got, " "); !strings.HasPrefix(peer, tc.wantPeer) {
			t.Errorf("%s: server saw %q, want peer %s*", tc.name, got, tc.wantPeer)
		}
	}
	// A binding on 127.0.0.1 is not published on other addresses.
	if got, err := fetch(t, ext, extHostIP+":"+loPort); err == nil {
		t.Errorf("127.0.0.1-only port reachable from outside: %q", got)
	}
	// A container cannot use route_localnet to reach the host's loopback services: blocked by the guard.
	// (Checked indirectly: the host itself still gets its own 127.0.0.1.)

	// UDP
	for _, tc := range []struct{ from, addr string }{{"", "127.0.0.1:" + udpPort}, {ext, extHostIP + ":" + udpPort}, {d.NetNSPath, "10.213.77.1:" + udpPort}} {
		got, err := udpAsk(t, tc.from, tc.addr, "ping")
		if err != nil || !strings.HasPrefix(got, "c53 ") || !strings.HasSuffix(got, " ping") {
			t.Errorf("udp %s from %q: %q, %v", tc.addr, tc.from, got, err)
		}
	}

	// Outbound: masqueraded out of a non-bridge interface.
	serveTCP(t, ext, extPeerIP+":9000", "ext")
	got, err := fetch(t, c.NetNSPath, extPeerIP+":9000")
	if err != nil || !strings.HasPrefix(got, "ext "+extHostIP+":") {
		t.Errorf("container → outside: %q, %v (want masqueraded to %s)", got, err, extHostIP)
	}
	// Outside cannot reach a container address directly (only published ports).
	err = inNS(t, ext, func() error {
		return netlink.RouteAdd(&netlink.Route{Dst: mustCIDR(testSubnet), Gw: net.ParseIP(extHostIP)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fetchQuick(t, ext, c.IP.String()+":80"); err == nil {
		t.Errorf("outside reached container address directly: %q", got)
	}

	// After Detach the ports are gone and free again.
	if err := m.Detach("cccccccccccc3333"); err != nil {
		t.Fatal(err)
	}
	if _, err := fetchQuick(t, "", "127.0.0.1:"+tcpPort); err == nil {
		t.Errorf("port still answers after Detach")
	}
	l, err := net.Listen("tcp4", "0.0.0.0:"+tcpPort)
	if err != nil {
		t.Errorf("port not released after Detach: %v", err)
	} else {
		l.Close()
	}
}

func fetchQuick(t testing.TB, nsPath, addr string) (string, error) {
	var c net.Conn
	dial := func() (err error) { c, err = net.DialTimeout("tcp4", addr, 500*time.Millisecond); return err }
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNS(t, nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	b, err := io.ReadAll(c)
	if len(b) == 0 && err == nil {
		err = errors.New("empty answer")
	}
	return string(b), err
}

// ---- leak accounting ----

type snapshot struct {
	TableRules, UserRules    int // rules in our table; our rules in iptables' filter table
	Links, Addrs, NetNSFiles int // our links (bridge, its ports, "wh*"), their addresses, files in NetNSDir
	NSMounts, Endpoints      int // nsfs mounts under NetNSDir, endpoint records
	AllLinks, AllAddrs       int // whole host (informational: other work may run on the machine)
}

func (s snapshot) scoped() snapshot { s.AllLinks, s.AllAddrs = 0, 0; return s }

func takeSnapshot(t testing.TB, m *Manager, opts Options) snapshot {
	t.Helper()
	if m != nil {
		m.waitAllVeths() // Detach deletes veths in the background
	}
	var s snapshot
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		switch {
		case c.Table.Name == opts.TableName:
			rules, err := conn.GetRules(c.Table, c)
			if err != nil {
				t.Fatal(err)
			}
			s.TableRules += len(rules)
		case c.Table.Name == "filter":
			rules, err := conn.GetRules(c.Table, c)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rules {
				if strings.HasPrefix(ruleTag(r), userTagPrefix(opts.BridgeName)) {
					s.UserRules++
				}
			}
		}
	}
	links, _ := netlink.LinkList()
	s.AllLinks = len(links)
	brIdx := -1
	for _, l := range links {
		if l.Attrs().Name == opts.BridgeName {
			brIdx = l.Attrs().Index
		}
	}
	for _, l := range links {
		a := l.Attrs()
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		s.AllAddrs += len(addrs)
		// Ours: the bridge, its ports, and "wh*" veths not plugged into another daemon's bridge (other
		// Wharf daemons, e.g. e2e runs, may work on the machine meanwhile).
		foreign := a.MasterIndex != 0 && a.MasterIndex != brIdx && !ownUserBridge(m, a.MasterIndex)
		if a.Index == brIdx || a.MasterIndex == brIdx || strings.HasPrefix(a.Name, vethPrefix) && l.Type() == "veth" && !foreign {
			s.Links++
			s.Addrs += len(addrs)
		}
	}
	ents, _ := os.ReadDir(opts.NetNSDir)
	s.NetNSFiles = len(ents)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, " "+opts.NetNSDir+"/") {
			s.NSMounts++
		}
	}
	eps, _ := os.ReadDir(filepath.Join(opts.StateDir, "endpoints"))
	s.Endpoints = len(eps)
	return s
}

// ownUserBridge: idx is the bridge of one of m's user networks.
func ownUserBridge(m *Manager, idx int) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		if l, err := netlink.LinkByName(n.Bridge); err == nil && l.Attrs().Index == idx {
			return true
		}
	}
	return false
}

func requireSame(t testing.TB, what string, got, want snapshot) {
	t.Helper()
	if got.scoped() != want.scoped() {
		t.Fatalf("%s: resources differ\n got %+v\nwant %+v", what, got, want)
	}
	if got.AllLinks != want.AllLinks || got.AllAddrs != want.AllAddrs {
		t.Logf("%s: host-wide link/address counts changed (%d/%d → %d/%d); other work on the machine?",
			what, want.AllLinks, want.AllAddrs, got.AllLinks, got.AllAddrs)
	}
}

func TestPortConflictsLeaveNothingBehind(t *testing.T) {
	m, opts := newTestManager(t)
	a := attach(t, m, "eeeeeeeeeeee5555", PortBinding{ContainerPort: 80})
	p := a.Ports[0].HostPort
	before := takeSnapshot(t, m, opts)

	// Held by Wharf: Docker's wording.
	_, err := m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", Ports: []PortBinding{
		{ContainerPort: 443}, {HostPort: p, ContainerPort: 80}}})
	want := fmt.Sprintf("Bind for 0.0.0.0:%d failed: port is already allocated", p)
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrPortAllocated) ||
		!strings.HasPrefix(err.Error(), "driver failed programming external connectivity on endpoint ffffffffffff (ffffffffffff6666): ") {
		t.Fatalf("got %v, want ...%s", err, want)
	}
	requireSame(t, "after refused attach (wharf-held)", takeSnapshot(t, m, opts), before)
	// 127.0.0.1:p conflicts with 0.0.0.0:p too.
	if _, err := m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", Ports: []PortBinding{{HostIP: "127.0.0.1", HostPort: p, ContainerPort: 80}}}); !errors.Is(err, ErrPortAllocated) {
		t.Fatalf("127.0.0.1:%d: got %v", p, err)
	}
	// The same host port twice in one request.
	if _, err := m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", Ports: []PortBinding{{HostPort: p + 1, ContainerPort: 80}, {HostPort: p + 1, ContainerPort: 81}}}); !errors.Is(err, ErrPortAllocated) {
		t.Fatalf("duplicate in request: got %v", err)
	}
	// Same number, other protocol: fine.
	if _, err := m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", Ports: []PortBinding{{HostPort: p, ContainerPort: 80, Proto: "udp"}}}); err != nil {
		t.Fatalf("udp on a tcp-published number: %v", err)
	}
	if err := m.Detach("ffffffffffff6666"); err != nil {
		t.Fatal(err)
	}

	// Held by another process.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	op := l.Addr().(*net.TCPAddr).Port
	_, err = m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", Ports: []PortBinding{{ContainerPort: 443}, {HostPort: uint16(op), ContainerPort: 80}}})
	want = fmt.Sprintf("listen tcp4 0.0.0.0:%d: bind: address already in use", op)
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrAddressInUse) ||
		!strings.HasPrefix(err.Error(), "driver failed programming external connectivity on endpoint ffffffffffff (ffffffffffff6666): ") {
		t.Fatalf("got %v, want ...%s", err, want)
	}
	t.Logf("error text: %v", err)
	requireSame(t, "after refused attach (other process)", takeSnapshot(t, m, opts), before)

	// Other failures are undone as well: an address already leased.
	if _, err := m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", IP: a.IP}); err == nil || err.Error() != "Address already in use" {
		t.Fatalf("duplicate IP: %v", err)
	}
	if _, err := m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", IP: net.ParseIP("10.1.2.3")}); err == nil {
		t.Fatalf("IP outside the subnet accepted")
	}
	// A name clash with an existing link fails late (after the namespace was made): still nothing left.
	la := netlink.NewLinkAttrs()
	la.Name = hostVethName("ffffffffffff6666")
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		t.Fatal(err)
	}
	withDummy := takeSnapshot(t, m, opts)
	if _, err := m.Attach(AttachRequest{ContainerID: "ffffffffffff6666", Ports: []PortBinding{{ContainerPort: 80}}}); err == nil {
		t.Fatalf("attach over an existing link name succeeded")
	} else {
		t.Logf("late failure: %v", err)
	}
	requireSame(t, "after late failure", takeSnapshot(t, m, opts), withDummy)
	delLinkByName(la.Name)
	requireSame(t, "end", takeSnapshot(t, m, opts), before)
}

func TestNoLeaksAndReconcile(t *testing.T) {
	m, opts := newTestManager(t)
	empty := takeSnapshot(t, m, opts)
	ids := []string{"111111111111aaaa", "222222222222bbbb", "333333333333cccc"}
	ports := func() []PortBinding {
		return []PortBinding{{ContainerPort: 80}, {ContainerPort: 53, Proto: "udp"}}
	}
	for round := 0; round < 2; round++ {
		for _, id := range ids {
			attach(t, m, id, ports()...)
		}
		for _, id := range ids {
			if err := m.Detach(id); err != nil {
				t.Fatal(err)
			}
		}
		requireSame(t, fmt.Sprintf("attach+detach round %d", round), takeSnapshot(t, m, opts), empty)
	}
	if err := m.Detach(ids[0]); err != nil { // idempotent
		t.Fatal(err)
	}

	// Baseline with only the survivor.
	keep := attach(t, m, ids[0], ports()...)
	serveTCP(t, keep.NetNSPath, ":80", "keep")
	one := takeSnapshot(t, m, opts)
	attach(t, m, ids[1], ports()...)
	attach(t, m, ids[2], ports()...)
	if _, err := m.Attach(AttachRequest{ContainerID: "444444444444none", Network: "none"}); err != nil {
		t.Fatal(err)
	}

	// Crash: the process dies (held ports close), ids[2]'s record is lost, one of the survivor's rules was
	// deleted by hand and another duplicated.
	m.Close()
	os.Remove(filepath.Join(opts.StateDir, "endpoints", ids[2]+".json"))
	fw, err := newFirewall(opts.TableName, opts.BridgeName, netip.MustParsePrefix(testSubnet))
	if err != nil {
		t.Fatal(err)
	}
	byID, err := fw.portRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(byID[ids[0]]) != 2 {
		t.Fatalf("survivor rules: %d", len(byID[ids[0]]))
	}
	if err := fw.delRules(byID[ids[0]][:1]); err != nil {
		t.Fatal(err)
	}
	dup := byID[ids[0]][1]
	fw.conn.AddRule(&nftables.Rule{Table: fw.table, Chain: fw.chain(chainPorts), Exprs: dup.Exprs, UserData: dup.UserData})
	if err := fw.conn.Flush(); err != nil {
		t.Fatal(err)
	}
	fw.close()

	m2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	for i := 0; i < 2; i++ {
		if err := m2.Reconcile(map[string]bool{ids[0]: true}); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		requireSame(t, fmt.Sprintf("after crash + Reconcile #%d", i+1), takeSnapshot(t, m2, opts), one)
	}
	// The survivor still works through its published port, and its host port is held again.
	p := strconv.Itoa(int(keep.Ports[0].HostPort))
	if got, err := fetch(t, "", "127.0.0.1:"+p); err != nil || !strings.HasPrefix(got, "keep ") {
		t.Fatalf("survivor after Reconcile: %q, %v", got, err)
	}
	if l, err := net.Listen("tcp4", "0.0.0.0:"+p); err == nil {
		l.Close()
		t.Fatalf("survivor's host port not held after Reconcile")
	}
	// Its lease is still taken.
	a, err := m2.Attach(AttachRequest{ContainerID: ids[1]})
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.Equal(keep.IP) {
		t.Fatalf("lease of the survivor handed out again")
	}
	if err := m2.Detach(ids[1]); err != nil {
		t.Fatal(err)
	}

	// The veth vanishes while the container lives: Reconcile re-creates it.
	delLinkByName(hostVethName(ids[0]))
	if err := m2.Reconcile(map[string]bool{ids[0]: true}); err != nil {
		t.Fatal(err)
	}
	requireSame(t, "after veth repair", takeSnapshot(t, m2, opts), one)
	if got, err := fetch(t, "", "127.0.0.1:"+p); err != nil || !strings.HasPrefix(got, "keep ") {
		t.Fatalf("survivor after veth repair: %q, %v", got, err)
	}
	// The bridge itself is deleted (its ports survive, unplugged): Reconcile re-creates and re-plugs.
	if err := delLinkByName(opts.BridgeName); err != nil {
		t.Fatal(err)
	}
	if err := m2.Reconcile(map[string]bool{ids[0]: true}); err != nil {
		t.Fatal(err)
	}
	requireSame(t, "after bridge re-creation", takeSnapshot(t, m2, opts), one)
	if got, err := fetch(t, "", "127.0.0.1:"+p); err != nil || !strings.HasPrefix(got, "keep ") {
		t.Fatalf("survivor after bridge re-creation: %q, %v", got, err)
	}
	if err := m2.Reconcile(nil); err != nil {
		t.Fatal(err)
	}
	requireSame(t, "after Reconcile(nil)", takeSnapshot(t, m2, opts), empty)
}

func TestNoneHostAndNetworks(t *testing.T) {
	m, opts := newTestManager(t)
	nets := m.Networks()
	if len(nets) != 3 || nets[0].Name != "bridge" || nets[0].Subnet != testSubnet || nets[0].Gateway != "10.213.77.1" ||
		nets[1].Driver != "host" || nets[2].Driver != "null" || len(nets[0].ID) != 64 {
		t.Fatalf("Networks: %+v", nets)
	}
	h, err := m.Attach(AttachRequest{ContainerID: "host1", Network: "host", Ports: []PortBinding{{ContainerPort: 80}}})
	if err != nil || h.NetNSPath != "host" {
		t.Fatalf("host: %+v %v", h, err)
	}
	n, err := m.Attach(AttachRequest{ContainerID: "none1", Network: "none"})
	if err != nil || n.NetNSPath != filepath.Join(opts.NetNSDir, "none1") {
		t.Fatalf("none: %+v %v", n, err)
	}
	err = inNS(t, n.NetNSPath, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("links: %v", links)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(AttachRequest{ContainerID: "none1", Network: "none"}); err == nil {
		t.Fatal("second attach of the same container accepted")
	}
	if _, err := m.Attach(AttachRequest{ContainerID: "x1", Network: "mynet"}); err == nil || err.Error() != "network mynet not found" {
		t.Fatalf("unknown network: %v", err)
	}
	// --network container:<id> joins the other container's namespace.
	tgt := attach(t, m, "tgt100000000")
	j, err := m.Attach(AttachRequest{ContainerID: "join1", Network: "container:tgt100000000", Ports: []PortBinding{{ContainerPort: 80}}})
	if err != nil || j.NetNSPath != tgt.NetNSPath {
		t.Fatalf("container: %+v %v", j, err)
	}
	if _, err := m.Attach(AttachRequest{ContainerID: "join2", Network: "container:nope"}); err == nil ||
		err.Error() != "cannot join network of a non running container: nope" {
		t.Fatalf("container:nope: %v", err)
	}
	if err := m.Detach("join1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tgt.NetNSPath); err != nil {
		t.Fatalf("joiner's Detach removed the target's namespace: %v", err)
	}
	for _, id := range []string{"host1", "none1", "tgt100000000"} {
		if err := m.Detach(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(n.NetNSPath); !os.IsNotExist(err) {
		t.Fatalf("none netns left: %v", err)
	}
	m.Close()
	m2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := m2.Networks(); fmt.Sprint(got) != fmt.Sprint(nets) {
		t.Fatalf("IDs not stable: %v vs %v", got, nets)
	}
}

func TestDefaultSubnetAvoidsHostRoutes(t *testing.T) {
	requireRoot(t)
	p, err := pickSubnet(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range mustHostPrefixes(t) {
		if p.Overlaps(q) {
			t.Fatalf("picked %s overlaps %s", p, q)
		}
	}
	if p.Overlaps(netip.MustParsePrefix("172.17.0.0/16")) || p.Overlaps(netip.MustParsePrefix("10.88.0.0/16")) {
		t.Fatalf("picked %s", p)
	}
	if _, err := checkSubnet("172.17.5.0/24", 0); err == nil && routed("172.17.0.0/16") {
		t.Fatalf("overlapping explicit subnet accepted")
	}
	t.Logf("default subnet here: %s", p)
}

func routed(s string) bool {
	ps, _ := hostPrefixes(0)
	for _, p := range ps {
		if p.Overlaps(netip.MustParsePrefix(s)) {
			return true
		}
	}
	return false
}

func TestIPAM(t *testing.T) {
	p := newIPAM(netip.MustParsePrefix("10.0.0.0/29")) // .1 gateway, .2-.6 usable, .7 broadcast
	var got []string
	for i := 0; i < 5; i++ {
		a, err := p.allocate(fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if strings.Join(got, ",") != "10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6" {
		t.Fatal(got)
	}
	if _, err := p.allocate("x"); err == nil {
		t.Fatal("allocated past the end")
	}
	p.release(netip.MustParseAddr("10.0.0.4"), "2")
	if a, _ := p.allocate("y"); a.String() != "10.0.0.4" {
		t.Fatal(a)
	}
	if err := p.reserve(netip.MustParseAddr("10.0.0.1"), "z"); err == nil {
		t.Fatal("gateway reserved")
	}
	if macFromIP(netip.MustParseAddr("172.17.0.2")).String() != "02:42:ac:11:00:02" {
		t.Fatal("mac")
	}
}

// With Docker's iptables FORWARD policy DROP, our own accepts are not enough: the DOCKER-USER rules are
// what lets published traffic into the bridge. Removing only them breaks it; Reconcile puts them back.
func TestIptablesForwardDropNeedsUserRules(t *testing.T) {
	m, opts := newTestManager(t)
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := iptablesAcceptChain(conn); err != nil || c == nil {
		t.Skipf("no iptables filter chain with a DROP FORWARD policy here (%v)", err)
	} else {
		t.Logf("accept rules live in table ip filter chain %s", c.Name)
	}
	ext := outside(t)
	c := attach(t, m, "gggggggggggg7777", PortBinding{ContainerPort: 80})
	serveTCP(t, c.NetNSPath, ":80", "g")
	addr := extHostIP + ":" + hostPort(c, 0)
	if _, err := fetch(t, ext, addr); err != nil {
		t.Fatalf("outside → published port: %v", err)
	}
	want := takeSnapshot(t, m, opts)
	if err := removeUserRules(conn, opts.BridgeName); err != nil {
		t.Fatal(err)
	}
	if got, err := fetchQuick(t, ext, addr); err == nil {
		t.Fatalf("reachable without the DOCKER-USER rules (%q): the test does not exercise the DROP policy", got)
	}
	if err := m.Reconcile(map[string]bool{"gggggggggggg7777": true}); err != nil {
		t.Fatal(err)
	}
	requireSame(t, "after Reconcile", takeSnapshot(t, m, opts), want)
	if _, err := fetch(t, ext, addr); err != nil {
		t.Fatalf("outside → published port after Reconcile: %v", err)
	}
}

// route_localnet=1 on the bridge (needed for 127.0.0.1 DNAT) must not let a container reach services the
// host binds on 127.0.0.1: the guard rule drops packets from the bridge to 127.0.0.0/8.
func TestContainerCannotReachHostLoopback(t *testing.T) {
	m, _ := newTestManager(t)
	c := attach(t, m, "hhhhhhhhhhhh8888")
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "host-loopback %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	// Make the container send 127.0.0.1 traffic to the gateway: drop its own loopback address and route
	// 127.0.0.0/8 via eth0.
	err = inNS(t, c.NetNSPath, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.AddrDel(lo, &netlink.Addr{IPNet: mustCIDR("127.0.0.1/8")}); err != nil {
			return err
		}
		for _, f := range []string{"all", "eth0"} {
			if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+f+"/route_localnet", []byte("1"), 0o644); err != nil {
				return err
			}
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: mustCIDR("127.0.0.0/8"), Gw: net.ParseIP("10.213.77.1")})
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if got, err := fetchQuick(t, c.NetNSPath, addr); err == nil {
		t.Fatalf("container reached the host's %s: %q", addr, got)
	}
	// Control: without the guard rule the same attempt succeeds, so the check above means something.
	rules, err := m.fw.conn.GetRules(m.fw.table, m.fw.chain(chainGuard))
	if err != nil || len(rules) != 1 {
		t.Fatalf("guard rules: %d %v", len(rules), err)
	}
	if err := m.fw.delRules(rules); err != nil {
		t.Fatal(err)
	}
	if got, err := fetchQuick(t, c.NetNSPath, addr); err != nil {
		t.Logf("control without guard also failed (%v): kernel blocks it anyway here", err)
	} else {
		t.Logf("control without guard: %q (so the guard is what blocks it)", got)
	}
	if err := m.Reconcile(map[string]bool{"hhhhhhhhhhhh8888": true}); err != nil {
		t.Fatal(err)
	}
	if got, err := fetchQuick(t, c.NetNSPath, addr); err == nil {
		t.Fatalf("guard not restored by Reconcile: %q", got)
	}
}

func TestConcurrentAttachDetach(t *testing.T) {
	m, opts := newTestManager(t)
	empty := takeSnapshot(t, m, opts)
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; i < 5; i++ {
				id := fmt.Sprintf("%d%dconc00000000", g, i)
				a, err := m.Attach(AttachRequest{ContainerID: id, Ports: []PortBinding{{ContainerPort: 80}}})
				if err != nil {
					errc <- err
					return
				}
				if err := m.Detach(id); err != nil {
					errc <- err
					return
				}
				_ = a
			}
			errc <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	requireSame(t, "after concurrent attach/detach", takeSnapshot(t, m, opts), empty)
}

func TestCheckID(t *testing.T) {
	for id, ok := range map[string]bool{"abc": true, "a_b.c-d": true, strings.Repeat("f", 64): true, "": false,
		"-a": false, "a/b": false, "../x": false, "a b": false, strings.Repeat("a", 129): false} {
		if (checkID(id) == nil) != ok {
			t.Errorf("checkID(%q): want ok=%v", id, ok)
		}
	}
}

// A table left for the same bridge under another name (e.g. by an older default) is removed by New.
func TestStaleTableForSameBridgeRemoved(t *testing.T) {
	requireRoot(t)
	opts := testOptions(t)
	opts.TableName = "wharf_whtest_a"
	t.Cleanup(func() {
		Cleanup(opts)
		o := opts
		o.TableName = "wharf_whtest_b"
		Cleanup(o)
	})
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	opts.TableName = "wharf_whtest_b"
	m2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	conn, _ := nftables.New()
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, "wharf_whtest") {
			names = append(names, tb.Name)
		}
	}
	if fmt.Sprint(names) != "[wharf_whtest_b]" {
		t.Fatalf("tables: %v", names)
	}
}
