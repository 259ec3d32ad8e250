package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
)

// User networks in these tests use 10.213.78-80.0/24 (next to the test bridge's 10.213.77.0/24).

func skipIfRouted(t *testing.T, cidrs ...string) {
	t.Helper()
	for _, c := range cidrs {
		p := netip.MustParsePrefix(c)
		if q, bad := overlapsAny(p, mustHostPrefixes(t)); bad {
			t.Skipf("%s is in use on this host (%s)", p, q)
		}
	}
}

// userSnapshot counts what user networks leave on the host: whbr-* bridges, our accept rules for them in
// iptables' filter table, and the network records.
type userSnapshot struct{ Bridges, UserRules int }

func takeUserSnapshot(t *testing.T) userSnapshot {
	t.Helper()
	var s userSnapshot
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, userBridgePrefix) {
			s.Bridges++
		}
	}
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	chains, _ := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	for _, c := range chains {
		if c.Table.Name != "filter" {
			continue
		}
		rules, _ := conn.GetRules(c.Table, c)
		for _, r := range rules {
			if strings.HasPrefix(ruleTag(r), tagPrefix+"bridge="+userBridgePrefix) {
				s.UserRules++
			}
		}
	}
	return s
}

// dnsAsk sends one question to server from inside the namespace at nsPath ("" = host).
func dnsAsk(t *testing.T, nsPath, server, name string, qtype uint16) (*dns.Msg, error) {
	t.Helper()
	var c net.Conn
	dial := func() (err error) { c, err = net.Dial("udp4", server); return err }
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNS(t, nsPath, dial)
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dc := &dns.Conn{Conn: c}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	for try := 0; try < 3; try++ { // UDP: the first datagram may race ARP resolution
		dc.SetDeadline(time.Now().Add(700 * time.Millisecond))
		if err = dc.WriteMsg(q); err != nil {
			return nil, err
		}
		var r *dns.Msg
		if r, err = dc.ReadMsg(); err == nil {
			return r, nil
		}
	}
	return nil, err
}

func aRecords(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// fakeUpstream is a DNS server on 127.0.0.1 that answers every A question with 192.0.2.7.
func fakeUpstream(t *testing.T) string {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP("192.0.2.7").To4()})
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestUserNetworks(t *testing.T) {
	m, opts := newTestManager(t)
	skipIfRouted(t, "10.213.78.0/24", "10.213.79.0/24", "10.213.80.0/24")
	up := fakeUpstream(t)
	m.upstream = func() []string { return []string{up} }
	before := takeSnapshot(t, m, opts)
	ubefore := takeUserSnapshot(t)

	netA, err := m.CreateNetwork(NetworkConfig{Name: "neta", Subnet: "10.213.78.0/24", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if netA.Gateway != "10.213.78.1" || netA.Labels["k"] != "v" || !strings.HasPrefix(netA.Bridge, userBridgePrefix) {
		t.Fatalf("unexpected network %+v", netA)
	}
	if _, err := m.CreateNetwork(NetworkConfig{Name: "netb", Subnet: "10.213.79.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateNetwork(NetworkConfig{Name: "netc", Subnet: "10.213.80.0/24", Internal: true}); err != nil {
		t.Fatal(err)
	}
	// Docker's errors.
	if _, err := m.CreateNetwork(NetworkConfig{Name: "neta"}); !errors.Is(err, ErrConflict) || err.Error() != "network with name neta already exists" {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := m.CreateNetwork(NetworkConfig{Name: "over", Subnet: "10.213.78.128/25"}); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "Pool overlaps with other one on this address space") {
		t.Errorf("overlapping subnet: %v", err)
	}
	if _, err := m.CreateNetwork(NetworkConfig{Name: "over2", Subnet: testSubnet}); !errors.Is(err, ErrForbidden) {
		t.Errorf("subnet of the default bridge: %v", err)
	}
	if _, err := m.Network("nosuch"); !errors.Is(err, ErrNotFound) || err.Error() != "network nosuch not found" {
		t.Errorf("unknown network: %v", err)
	}
	if got, err := m.Network(netA.ID[:5]); err != nil || got.Name != "neta" {
		t.Errorf("lookup by ID prefix: %+v %v", got, err)
	}

	a1, err := m.Attach(AttachRequest{ContainerID: "a1a1a1a1a1a1a1", Network: "neta", Name: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := m.Attach(AttachRequest{ContainerID: "a2a2a2a2a2a2a2", Network: netA.ID, Name: "a2", Aliases: []string{"web"}, IP: net.ParseIP("10.213.78.50")})
	if err != nil {
		t.Fatal(err)
	}
	b1, err := m.Attach(AttachRequest{ContainerID: "b1b1b1b1b1b1b1", Network: "netb", Name: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := m.Attach(AttachRequest{ContainerID: "c1c1c1c1c1c1c1", Network: "netc", Name: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	d := attach(t, m, "d0d0d0d0d0d0d0") // default bridge
	if a2.IP.String() != "10.213.78.50" || a1.DNS.String() != "10.213.78.1" || d.DNS != nil || c1.Gateway != nil {
		t.Fatalf("attachments: a1 %+v a2 %+v c1 %+v d %+v", a1, a2, c1, d)
	}
	if _, err := m.Attach(AttachRequest{ContainerID: "x1x1x1x1x1x1x1", Network: "neta", IP: net.ParseIP("10.213.78.50")}); err == nil {
		t.Errorf("address in use accepted")
	}

	for _, a := range []*Attachment{a1, a2, b1, c1, d} {
		serveTCP(t, a.NetNSPath, ":8000", a.IP.String())
	}
	// ICC within a network; isolation between networks (both ways, and from/to the default bridge).
	if got, err := fetch(t, a2.NetNSPath, a1.IP.String()+":8000"); err != nil || !strings.HasPrefix(got, a1.IP.String()+" "+a2.IP.String()+":") {
		t.Errorf("a2 → a1 on the same network: %q %v", got, err)
	}
	for _, tc := range []struct {
		name     string
		from, to *Attachment
	}{{"b1→a1", b1, a1}, {"a1→b1", a1, b1}, {"d→a1", d, a1}, {"a1→d", a1, d}, {"c1→a1", c1, a1}, {"a1→c1", a1, c1}} {
		if got, err := fetchQuick(t, tc.from.NetNSPath, tc.to.IP.String()+":8000"); err == nil {
			t.Errorf("%s: isolation broken: %q", tc.name, got)
		}
	}
	// The host reaches containers on user networks directly.
	if _, err := fetch(t, "", a1.IP.String()+":8000"); err != nil {
		t.Errorf("host → a1: %v", err)
	}

	// Embedded DNS.
	gwA := "10.213.78.1:53"
	for name, want := range map[string]string{"a1": a1.IP.String(), "A2": a2.IP.String(), "web": a2.IP.String(), "a2a2a2a2a2a2": a2.IP.String(), "example.test": "192.0.2.7"} {
		r, err := dnsAsk(t, a1.NetNSPath, gwA, name, dns.TypeA)
		if err != nil || r.Rcode != dns.RcodeSuccess || strings.Join(aRecords(r), ",") != want {
			t.Errorf("DNS %s from a1: %v %v, want %s", name, r, err, want)
		}
	}
	if r, err := dnsAsk(t, a1.NetNSPath, gwA, "a2", dns.TypeAAAA); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("AAAA of a container: %v %v", r, err)
	}
	if r, err := dnsAsk(t, a1.NetNSPath, gwA, "50.78.213.10.in-addr.arpa", dns.TypePTR); err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "a2." {
		t.Errorf("PTR: %v %v", r, err)
	}
	// Names of another network are not known; another network's containers cannot ask this server.
	if r, err := dnsAsk(t, b1.NetNSPath, "10.213.79.1:53", "a1", dns.TypeA); err != nil || len(aRecords(r)) != 1 || aRecords(r)[0] != "192.0.2.7" {
		t.Errorf("a1 from netb should be forwarded upstream (not answered locally): %v %v", r, err)
	}
	// netb's container may reach neta's server (it may be the one its resolv.conf names after a disconnect
	// from its first network) but is answered with its own networks' names only.
	if r, err := dnsAsk(t, b1.NetNSPath, gwA, "a1", dns.TypeA); err != nil || strings.Join(aRecords(r), ",") != "192.0.2.7" {
		t.Errorf("a1 asked by netb's container of neta's server: %v %v", r, err)
	}
	// The host's other interfaces (here: loopback) cannot ask it.
	if r, err := dnsAsk(t, "", gwA, "a1", dns.TypeA); err == nil {
		t.Errorf("host loopback queried neta's DNS: %v", r)
	}
	// Internal network: own names only, nothing forwarded.
	if r, err := dnsAsk(t, c1.NetNSPath, "10.213.80.1:53", "c1", dns.TypeA); err != nil || strings.Join(aRecords(r), ",") != c1.IP.String() {
		t.Errorf("c1 on internal network: %v %v", r, err)
	}
	if r, err := dnsAsk(t, c1.NetNSPath, "10.213.80.1:53", "example.test", dns.TypeA); err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("internal network forwarded: %v %v", r, err)
	}

	// Connect b1 to neta: eth1, reachable by name and alias there; Disconnect undoes it.
	x, err := m.Connect(ConnectRequest{ContainerID: "b1b1b1b1b1b1b1", Network: "neta", Aliases: []string{"bee"}})
	if err != nil {
		t.Fatal(err)
	}
	if x.IfName != "eth1" || !strings.HasPrefix(x.IP.String(), "10.213.78.") || x.NetworkID != netA.ID {
		t.Fatalf("connect: %+v", x)
	}
	if _, err := m.Connect(ConnectRequest{ContainerID: "b1b1b1b1b1b1b1", Network: "neta"}); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "already exists in network neta") {
		t.Errorf("second connect: %v", err)
	}
	if got, err := fetch(t, a1.NetNSPath, x.IP.String()+":8000"); err != nil {
		t.Errorf("a1 → b1 over eth1: %q %v", got, err)
	}
	for _, n := range []string{"b1", "bee"} {
		if r, err := dnsAsk(t, a1.NetNSPath, gwA, n, dns.TypeA); err != nil || strings.Join(aRecords(r), ",") != x.IP.String() {
			t.Errorf("DNS %s after connect: %v %v", n, r, err)
		}
	}
	// b1 now resolves neta's names through its first network's server too (as Docker's 127.0.0.11).
	if r, err := dnsAsk(t, b1.NetNSPath, "10.213.79.1:53", "a1", dns.TypeA); err != nil || strings.Join(aRecords(r), ",") != a1.IP.String() {
		t.Errorf("a1 from b1 via netb's server after connect: %v %v", r, err)
	}
	if len(m.Attachments("b1b1b1b1b1b1b1")) != 2 {
		t.Errorf("attachments after connect: %+v", m.Attachments("b1b1b1b1b1b1b1"))
	}
	if err := m.RemoveNetwork("neta"); !errors.Is(err, ErrForbidden) || err.Error() != "error while removing network: network neta has active endpoints" {
		t.Errorf("remove in use: %v", err)
	}
	if err := m.RemoveNetwork("bridge"); !errors.Is(err, ErrForbidden) {
		t.Errorf("remove bridge: %v", err)
	}
	if err := m.Disconnect("b1b1b1b1b1b1b1", "neta"); err != nil {
		t.Fatal(err)
	}
	if err := m.Disconnect("b1b1b1b1b1b1b1", "neta"); !errors.Is(err, ErrForbidden) {
		t.Errorf("second disconnect: %v", err)
	}
	if _, err := fetchQuick(t, a1.NetNSPath, x.IP.String()+":8000"); err == nil {
		t.Errorf("b1 still reachable on neta after disconnect")
	}
	if r, err := dnsAsk(t, a1.NetNSPath, gwA, "bee", dns.TypeA); err == nil && len(aRecords(r)) == 1 && aRecords(r)[0] == x.IP.String() {
		t.Errorf("alias still answered after disconnect")
	}
	err = inNS(t, b1.NetNSPath, func() error {
		if _, err := netlink.LinkByName("eth1"); err == nil {
			return errors.New("eth1 still there")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	// Restart of the manager (a daemon crash): networks, DNS and endpoints come back.
	if _, err := m.Connect(ConnectRequest{ContainerID: "b1b1b1b1b1b1b1", Network: "neta"}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Close() })
	m2.upstream = m.upstream
	if err := m2.Reconcile(map[string]bool{"a1a1a1a1a1a1a1": true, "a2a2a2a2a2a2a2": true, "b1b1b1b1b1b1b1": true, "c1c1c1c1c1c1c1": true, "d0d0d0d0d0d0d0": true}); err != nil {
		t.Fatal(err)
	}
	if r, err := dnsAsk(t, a1.NetNSPath, gwA, "b1", dns.TypeA); err != nil || len(aRecords(r)) != 1 || !strings.HasPrefix(aRecords(r)[0], "10.213.78.") {
		t.Errorf("DNS after restart: %v %v", r, err)
	}
	if n := len(m2.Networks()); n != 6 {
		t.Errorf("networks after restart: %d", n)
	}
	// Everything goes away: endpoints (Reconcile with nothing to keep), then the networks.
	if err := m2.Reconcile(map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"neta", "netb", "netc"} {
		if err := m2.RemoveNetwork(n); err != nil {
			t.Errorf("remove %s: %v", n, err)
		}
	}
	if s := takeSnapshot(t, m2, opts); s.scoped() != before.scoped() {
		links, _ := netlink.LinkList()
		for _, l := range links {
			t.Logf("link %s master %d", l.Attrs().Name, l.Attrs().MasterIndex)
		}
	}
	requireSame(t, "after user networks", takeSnapshot(t, m2, opts), before)
	if got := takeUserSnapshot(t); got != ubefore {
		t.Errorf("user network leftovers: %+v, before %+v", got, ubefore)
	}
}

func TestUserNetworkAutoSubnet(t *testing.T) {
	m, _ := newTestManager(t)
	n, err := m.CreateNetwork(NetworkConfig{Name: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.RemoveNetwork("auto")
	p := netip.MustParsePrefix(n.Subnet)
	if p.Overlaps(netip.MustParsePrefix(testSubnet)) || p.Overlaps(netip.MustParsePrefix("172.17.0.0/16")) {
		t.Fatalf("picked %s", p)
	}
	// The host's own routes (e.g. a running dockerd's networks) are avoided; ours is now routed.
	br, _ := netlink.LinkByName(n.Bridge)
	routes, _ := hostPrefixes(br.Attrs().Index)
	if q, bad := overlapsAny(p, routes); bad {
		t.Fatalf("picked %s overlapping %s", p, q)
	}
	n2, err := m.CreateNetwork(NetworkConfig{Name: "auto2"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.RemoveNetwork("auto2")
	if netip.MustParsePrefix(n2.Subnet).Overlaps(p) {
		t.Fatalf("second network %s overlaps first %s", n2.Subnet, p)
	}
}

func TestAnswerDNS(t *testing.T) {
	names := &netNames{addrs: map[string][]netip.Addr{}, ptr: map[netip.Addr]string{}}
	names.add("web", netip.MustParseAddr("10.1.0.2"), true)
	names.add("Alias.", netip.MustParseAddr("10.1.0.2"), false)
	names.add("multi", netip.MustParseAddr("10.1.0.3"), true)
	names.add("multi", netip.MustParseAddr("10.1.0.4"), true)
	forwarded := 0
	fwd := func(q *dns.Msg) (*dns.Msg, error) {
		forwarded++
		r := new(dns.Msg)
		r.SetRcode(q, dns.RcodeNameError)
		r.Id = 0 // answerDNS restores the ID
		return r, nil
	}
	ask := func(name string, qt uint16, f func(*dns.Msg) (*dns.Msg, error)) *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion(name, qt)
		r := answerDNS(q, []*netNames{names}, f)
		if r == nil || r.Id != q.Id || !r.Response {
			t.Fatalf("%s: bad reply %v", name, r)
		}
		return r
	}
	if r := ask("WEB.", dns.TypeA, fwd); strings.Join(aRecords(r), ",") != "10.1.0.2" || !r.Authoritative || r.Answer[0].Header().Name != "WEB." {
		t.Errorf("A: %v", r)
	}
	if r := ask("alias.", dns.TypeA, fwd); strings.Join(aRecords(r), ",") != "10.1.0.2" {
		t.Errorf("alias: %v", r)
	}
	if r := ask("multi.", dns.TypeA, fwd); strings.Join(aRecords(r), ",") != "10.1.0.3,10.1.0.4" {
		t.Errorf("multi: %v", r)
	}
	if r := ask("web.", dns.TypeAAAA, fwd); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("AAAA: %v", r)
	}
	if r := ask("2.0.1.10.in-addr.arpa.", dns.TypePTR, fwd); len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "web." {
		t.Errorf("PTR: %v", r)
	}
	if r := ask("other.example.", dns.TypeA, fwd); r.Rcode != dns.RcodeNameError || forwarded != 1 {
		t.Errorf("forward: %v (forwarded %d)", r, forwarded)
	}
	if r := ask("other.example.", dns.TypeA, nil); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("internal: %v", r)
	}
	if r := ask("other.example.", dns.TypeA, func(*dns.Msg) (*dns.Msg, error) { return nil, errors.New("down") }); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("upstream down: %v", r)
	}
	q := new(dns.Msg)
	q.SetQuestion("web.", dns.TypeA)
	q.Question = append(q.Question, q.Question[0])
	if r := answerDNS(q, []*netNames{names}, fwd); r == nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v", r)
	}
	q.Question = q.Question[:1]
	q.Response = true
	if r := answerDNS(q, []*netNames{names}, fwd); r != nil {
		t.Errorf("answered a response: %v", r)
	}
	if got := resolversFrom("/nonexistent"); len(got) != 2 || got[0] != "8.8.8.8:53" {
		t.Errorf("fallback resolvers: %v", got)
	}
}

func FuzzAnswerDNS(f *testing.F) {
	for _, n := range []string{"web.", "2.0.1.10.in-addr.arpa.", "x.example."} {
		q := new(dns.Msg)
		q.SetQuestion(n, dns.TypeA)
		b, _ := q.Pack()
		f.Add(b)
	}
	names := &netNames{addrs: map[string][]netip.Addr{}, ptr: map[netip.Addr]string{}}
	names.add("web", netip.MustParseAddr("10.1.0.2"), true)
	fwd := func(q *dns.Msg) (*dns.Msg, error) {
		r := new(dns.Msg)
		r.SetReply(q)
		return r, nil
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(dns.Msg)
		if req.Unpack(data) != nil {
			return
		}
		for _, fw := range []func(*dns.Msg) (*dns.Msg, error){fwd, nil} {
			r := answerDNS(req, []*netNames{names}, fw)
			if r == nil {
				if !req.Response {
					t.Fatalf("no answer to a query")
				}
				continue
			}
			if r.Id != req.Id || !r.Response {
				t.Fatalf("reply id/flags: %v", r)
			}
			if _, err := r.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, r)
			}
		}
	})
}

// fakeUpstreamAt is a DNS server (UDP) on addr answering A questions for name with ip, NXDOMAIN otherwise.
func fakeUpstreamAt(t *testing.T, addr, name, ip string) string {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if strings.EqualFold(r.Question[0].Name, dns.Fqdn(name)) {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip).To4()})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestPerContainerDNSUpstreams: a container's --dns servers get the names the embedded DNS does not know
// (others keep the host's resolvers); the network's own names still win; the choice survives a restart.
func TestPerContainerDNSUpstreams(t *testing.T) {
	m, opts := newTestManager(t)
	skipIfRouted(t, "10.213.81.0/24")
	hostUp := fakeUpstream(t) // the "host's resolvers": every name → 192.0.2.7
	own := fakeUpstreamAt(t, "127.0.0.1:0", "probe.wharf.test", "198.51.100.9")
	m.upstream = func() []string { return []string{hostUp} }
	if _, err := m.CreateNetwork(NetworkConfig{Name: "dnsnet", Subnet: "10.213.81.0/24"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Reconcile(map[string]bool{}); m.RemoveNetwork("dnsnet") })
	if _, err := m.Attach(AttachRequest{ContainerID: "e1e1e1e1e1e1e1", Network: "dnsnet", Name: "e1", DNS: []string{"not-an-ip"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid --dns accepted: %v", err)
	}
	e1, err := m.Attach(AttachRequest{ContainerID: "e1e1e1e1e1e1e1", Network: "dnsnet", Name: "e1", DNS: []string{own}})
	if err != nil {
		t.Fatal(err)
	}
	e2, err := m.Attach(AttachRequest{ContainerID: "e2e2e2e2e2e2e2", Network: "dnsnet", Name: "e2"})
	if err != nil {
		t.Fatal(err)
	}
	if e1.HostGateway.String() != m.ipam.gateway.String() {
		t.Errorf("host gateway %v, want the default bridge's %v", e1.HostGateway, m.ipam.gateway)
	}
	gw := "10.213.81.1:53"
	check := func(m *Manager, when string) {
		t.Helper()
		for _, tc := range []struct {
			ns, name, want string
			rcode          int
		}{
			{e1.NetNSPath, "probe.wharf.test", "198.51.100.9", dns.RcodeSuccess}, // its own upstream
			{e1.NetNSPath, "other.example", "", dns.RcodeNameError},              // ... which says NXDOMAIN
			{e1.NetNSPath, "e2", e2.IP.String(), dns.RcodeSuccess},               // the network's names first
			{e2.NetNSPath, "probe.wharf.test", "192.0.2.7", dns.RcodeSuccess},    // the host's resolvers
		} {
			r, err := dnsAsk(t, tc.ns, gw, tc.name, dns.TypeA)
			if err != nil || r.Rcode != tc.rcode || strings.Join(aRecords(r), ",") != tc.want {
				t.Errorf("%s: %s: %v %v, want %q rcode %d", when, tc.name, r, err, tc.want, tc.rcode)
			}
		}
	}
	check(m, "running")
	m.Close()
	m2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	m = m2
	m2.upstream = func() []string { return []string{hostUp} }
	if err := m2.Reconcile(map[string]bool{"e1e1e1e1e1e1e1": true, "e2e2e2e2e2e2e2": true}); err != nil {
		t.Fatal(err)
	}
	check(m2, "after restart")
	t.Cleanup(func() { m2.Reconcile(map[string]bool{}); m2.RemoveNetwork("dnsnet"); m2.Close() })
}

// TestDisconnectFirstNetwork: a running container leaves its first network (eth0, its published port, its
// address) and keeps the others, with the default route and name resolution moved to them; a container
// started with "none" can leave it and join a network.
func TestDisconnectFirstNetwork(t *testing.T) {
	m, opts := newTestManager(t)
	skipIfRouted(t, "10.213.82.0/24", "10.213.83.0/24")
	up := fakeUpstream(t)
	m.upstream = func() []string { return []string{up} }
	before := takeSnapshot(t, m, opts)
	for i, n := range []string{"firsta", "firstb"} {
		if _, err := m.CreateNetwork(NetworkConfig{Name: n, Subnet: fmt.Sprintf("10.213.%d.0/24", 82+i)}); err != nil {
			t.Fatal(err)
		}
	}
	const id, peerA, peerB, noneID = "f1f1f1f1f1f1f1", "f2f2f2f2f2f2f2", "f3f3f3f3f3f3f3", "f4f4f4f4f4f4f4"
	t.Cleanup(func() { m.Reconcile(map[string]bool{}); m.RemoveNetwork("firsta"); m.RemoveNetwork("firstb") })
	a, err := m.Attach(AttachRequest{ContainerID: id, Network: "firsta", Name: "f1",
		Ports: []PortBinding{{HostIP: "127.0.0.1", ContainerPort: 8000, Proto: "tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := m.Attach(AttachRequest{ContainerID: peerA, Network: "firsta", Name: "pa"})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := m.Attach(AttachRequest{ContainerID: peerB, Network: "firstb", Name: "pb"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := m.Connect(ConnectRequest{ContainerID: id, Network: "firstb"})
	if err != nil {
		t.Fatal(err)
	}
	serveTCP(t, a.NetNSPath, ":8000", "f1")
	if _, err := fetch(t, "", "127.0.0.1:"+hostPort(a, 0)); err != nil {
		t.Fatalf("published port before: %v", err)
	}
	if err := m.Disconnect(id, "firsta"); err != nil {
		t.Fatal(err)
	}
	atts := m.Attachments(id)
	if len(atts) != 1 || atts[0].Network != "firstb" || atts[0].IP.String() != x.IP.String() || atts[0].IfName != "eth1" {
		t.Fatalf("attachments after disconnect: %+v", atts)
	}
	// The published port moved to the remaining network (dockerd moves external connectivity likewise).
	if len(atts[0].Ports) != 1 || atts[0].Ports[0].HostPort != a.Ports[0].HostPort {
		t.Errorf("ports after disconnect: %+v", atts[0].Ports)
	}
	if got, err := fetch(t, "", "127.0.0.1:"+hostPort(a, 0)); err != nil || !strings.HasPrefix(got, "f1 ") {
		t.Errorf("published port after disconnect: %q %v", got, err)
	}
	if got, err := fetchQuick(t, pa.NetNSPath, a.IP.String()+":8000"); err == nil {
		t.Errorf("reachable on firsta after disconnect: %q", got)
	}
	if _, err := fetch(t, pb.NetNSPath, x.IP.String()+":8000"); err != nil {
		t.Errorf("not reachable on firstb: %v", err)
	}
	err = inNS(t, a.NetNSPath, func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			return errors.New("eth0 still there")
		}
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				if r.Gw.String() != "10.213.83.1" {
					return fmt.Errorf("default route via %v", r.Gw)
				}
				return nil
			}
		}
		return errors.New("no default route")
	})
	if err != nil {
		t.Error(err)
	}
	// resolv.conf still names firsta's server: it answers with firstb's names now, never firsta's.
	for server, want := range map[string]string{"10.213.82.1:53": pb.IP.String(), "10.213.83.1:53": pb.IP.String()} {
		if r, err := dnsAsk(t, a.NetNSPath, server, "pb", dns.TypeA); err != nil || strings.Join(aRecords(r), ",") != want {
			t.Errorf("pb via %s: %v %v", server, r, err)
		}
	}
	if r, err := dnsAsk(t, a.NetNSPath, "10.213.82.1:53", "pa", dns.TypeA); err != nil || strings.Join(aRecords(r), ",") != "192.0.2.7" {
		t.Errorf("pa (firsta) still answered locally: %v %v", r, err)
	}
	// Reconnect: a new interface (eth0 is free again); a restart keeps the state without duplicates.
	if y, err := m.Connect(ConnectRequest{ContainerID: id, Network: "firsta"}); err != nil || y.IfName != "eth0" {
		t.Fatalf("reconnect: %+v %v", y, err)
	}
	if err := m.Disconnect(id, "firsta"); err != nil {
		t.Fatal(err)
	}
	// Leaving the last network: only lo, no ports; then back on firsta.
	if err := m.Disconnect(id, "firstb"); err != nil {
		t.Fatal(err)
	}
	if atts := m.Attachments(id); len(atts) != 0 {
		t.Errorf("attachments after leaving all: %+v", atts)
	}
	if got, err := fetchQuick(t, "", "127.0.0.1:"+hostPort(a, 0)); err == nil {
		t.Errorf("published port answers with no network: %q", got)
	}
	if x, err = m.Connect(ConnectRequest{ContainerID: id, Network: "firstb"}); err != nil {
		t.Fatal(err)
	}
	// --network none: leave it, then join a network.
	n, err := m.Attach(AttachRequest{ContainerID: noneID, Network: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Connect(ConnectRequest{ContainerID: noneID, Network: "firsta"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("connect while on none: %v", err)
	}
	if err := m.Disconnect(noneID, "none"); err != nil {
		t.Fatal(err)
	}
	nx, err := m.Connect(ConnectRequest{ContainerID: noneID, Network: "firsta"})
	if err != nil {
		t.Fatal(err)
	}
	if nx.NetNSPath != n.NetNSPath || nx.IfName != "eth0" {
		t.Errorf("none → firsta: %+v", nx)
	}
	serveTCP(t, n.NetNSPath, ":8000", "f4")
	if _, err := fetch(t, pa.NetNSPath, nx.IP.String()+":8000"); err != nil {
		t.Errorf("f4 on firsta: %v", err)
	}
	m.Close()
	m2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	m2.upstream = m.upstream
	t.Cleanup(func() { m2.Close() })
	keep := map[string]bool{id: true, peerA: true, peerB: true, noneID: true}
	if err := m2.Reconcile(keep); err != nil {
		t.Fatal(err)
	}
	if atts := m2.Attachments(id); len(atts) != 1 || atts[0].Network != "firstb" {
		t.Errorf("after restart: %+v", atts)
	}
	if _, err := fetch(t, pb.NetNSPath, x.IP.String()+":8000"); err != nil {
		t.Errorf("firstb after restart: %v", err)
	}
	if err := m2.Reconcile(map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"firsta", "firstb"} {
		if err := m2.RemoveNetwork(n); err != nil {
			t.Errorf("remove %s: %v", n, err)
		}
	}
	requireSame(t, "after disconnect test", takeSnapshot(t, m2, opts), before)
}

func TestResolverPrefixes(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	os.WriteFile(path, []byte("# x\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver fd00::1\nsearch example\nnameserver 192.0.2.1\n"), 0o644)
	got := resolverPrefixes(path)
	if len(got) != 2 || got[0].String() != "10.255.255.53/32" || got[1].String() != "192.0.2.1/32" {
		t.Fatalf("resolverPrefixes: %v", got)
	}
	// A candidate holding a resolver is passed over.
	if _, bad := overlapsAny(netip.MustParsePrefix("10.255.0.0/16"), got); !bad {
		t.Errorf("10.255.0.0/16 should overlap the resolver")
	}
}
