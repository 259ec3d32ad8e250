package network

import (
	"errors"
	"net"
	"net/netip"
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
	if r, err := dnsAsk(t, b1.NetNSPath, gwA, "a1", dns.TypeA); err == nil {
		t.Errorf("netb container queried neta's DNS: %v", r)
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
