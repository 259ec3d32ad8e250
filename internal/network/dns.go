package network

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// The embedded DNS server: one per user-defined network, in the daemon (host namespace), listening on
// the network's gateway address, port 53, UDP and TCP. Containers on the network get it as their only
// nameserver. It answers the names of the containers on that network (container name, network aliases,
// short container ID) and their PTR records, and forwards every other question to the host's resolvers
// (those of /etc/resolv.conf, loopback ones included: the server runs on the host). Internal networks get
// no forwarding. A container's own --dns servers replace the host's resolvers for its questions (as dockerd's
// embedded DNS does). A guard rule drops queries to the gateway's port 53 arriving from any interface other
// than a user network's bridge; names are answered by the asking container's networks, never others'.

const dnsTTL = 600

// netNames are the names of one network: lower-case name without the trailing dot → addresses, and
// address → canonical name (for PTR).
type netNames struct {
	addrs map[string][]netip.Addr
	ptr   map[netip.Addr]string
}

// dnsTable maps a user network ID to its names. Immutable once published. A container attached to several
// networks resolves the names of all of them (as with Docker's 127.0.0.11), whichever server it asks:
// owner finds the asking container by its source address, nets lists its user networks.
type dnsTable struct {
	nets  map[string]*netNames
	owner map[netip.Addr]string   // container address (any user network) → container ID
	ctrs  map[string][]string     // container ID → its user network IDs
	ups   map[netip.Addr][]string // container address → its own upstream resolvers (--dns), if any
}

// namesFor lists the name sets a query from src arriving on network netID is answered from: those of the
// asking container's user networks (whichever of their servers it asks: after it was disconnected from its
// first network, its resolv.conf still names that network's server), else those of netID.
func (t *dnsTable) namesFor(netID string, src netip.Addr) []*netNames {
	out := []*netNames{}
	nets, known := t.ctrs[t.owner[src]]
	if !known {
		nets = []string{netID}
	}
	for _, n := range nets {
		if nn := t.nets[n]; nn != nil {
			out = append(out, nn)
		}
	}
	return out
}

// upstreamsFor lists the resolvers a query from src is forwarded to: the container's --dns servers, else def.
func (t *dnsTable) upstreamsFor(src netip.Addr, def func() []string) []string {
	if ups := t.ups[src]; len(ups) > 0 {
		return ups
	}
	return def()
}

func (t *netNames) add(name string, a netip.Addr, canonical bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" {
		return
	}
	for _, have := range t.addrs[name] {
		if have == a {
			return
		}
	}
	t.addrs[name] = append(t.addrs[name], a)
	if _, ok := t.ptr[a]; canonical && !ok {
		t.ptr[a] = name
	}
}

// refreshDNSLocked rebuilds the name table from the endpoints. Caller holds m.mu.
func (m *Manager) refreshDNSLocked() {
	t := &dnsTable{nets: map[string]*netNames{}, owner: map[netip.Addr]string{}, ctrs: map[string][]string{},
		ups: map[netip.Addr][]string{}}
	for id := range m.nets {
		t.nets[id] = &netNames{addrs: map[string][]netip.Addr{}, ptr: map[netip.Addr]string{}}
	}
	addIface := func(ep *endpoint, key string, ifc *iface) {
		nn := t.nets[key]
		a, err := netip.ParseAddr(ifc.IP)
		if nn == nil || err != nil {
			return
		}
		t.owner[a] = ep.ContainerID
		t.ctrs[ep.ContainerID] = append(t.ctrs[ep.ContainerID], key)
		if len(ep.DNS) > 0 {
			t.ups[a] = ep.DNS
		}
		if ep.Name != "" {
			nn.add(ep.Name, a, true)
		}
		nn.add(endpointName(ep.ContainerID), a, ep.Name == "")
		for _, al := range ifc.Aliases {
			nn.add(al, a, false)
		}
	}
	for _, ep := range m.eps {
		if ep.IP != "" {
			addIface(ep, ep.Network, &ep.iface)
		}
		for i := range ep.Extra {
			addIface(ep, ep.Extra[i].Net, &ep.Extra[i])
		}
	}
	m.dnsTable.Store(t)
}

// dnsServer is the UDP and TCP listeners of one network.
type dnsServer struct {
	servers []*dns.Server
	wg      sync.WaitGroup
}

func (s *dnsServer) stop() {
	if s == nil {
		return
	}
	for _, srv := range s.servers {
		srv.Shutdown()
	}
	s.wg.Wait()
}

// startDNS starts the network's DNS server on its gateway, port 53.
func (m *Manager) startDNS(n *bnet) error {
	addr := net.JoinHostPort(n.ipam.gateway.String(), "53")
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return errKind(ErrForbidden, "starting the embedded DNS server of network %s on %s: %v", n.Name, addr, err)
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return errKind(ErrForbidden, "starting the embedded DNS server of network %s on %s: %v", n.Name, addr, err)
	}
	s := &dnsServer{}
	id, internal := n.ID, n.Internal
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: m.dnsHandler(id, internal, "udp")},
		{Listener: l, Handler: m.dnsHandler(id, internal, "tcp"), ReadTimeout: 5 * time.Second},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.servers = append(s.servers, srv)
		s.wg.Add(1)
		go func(srv *dns.Server) {
			defer s.wg.Done()
			srv.ActivateAndServe()
		}(srv)
		<-started
	}
	n.dns = s
	return nil
}

// startDNSServers starts the servers of the loaded networks; a failure leaves that network without DNS
// (its containers fall back to nothing better) rather than stopping the daemon.
func (m *Manager) startDNSServers() {
	for _, n := range m.nets {
		if n.dns == nil {
			m.startDNS(n)
		}
	}
}

func (m *Manager) stopDNSServers() {
	for _, n := range m.nets {
		n.dns.stop()
		n.dns = nil
	}
}

func (m *Manager) dnsHandler(netID string, internal bool, proto string) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		var src netip.Addr
		if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
			src = ap.Addr().Unmap()
		}
		t := m.dnsTable.Load()
		names := t.namesFor(netID, src)
		var fwd func(*dns.Msg) (*dns.Msg, error)
		if !internal {
			fwd = func(q *dns.Msg) (*dns.Msg, error) { return forward(q, proto, t.upstreamsFor(src, m.upstream)) }
		}
		if resp := answerDNS(req, names, fwd); resp != nil {
			w.WriteMsg(resp)
		}
	})
}

// answerDNS computes the reply to one request: names of the network first, then forwarding (fwd nil: no
// forwarding). nil: send nothing (the request was a response).
func answerDNS(req *dns.Msg, sets []*netNames, fwd func(*dns.Msg) (*dns.Msg, error)) *dns.Msg {
	if req == nil || req.Response {
		return nil
	}
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		resp.Question = nil
		return resp
	}
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		resp.Question = nil
		return resp
	}
	q := req.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	for _, names := range sets {
		if q.Qclass != dns.ClassINET {
			break
		}
		if addrs, ok := names.addrs[name]; ok {
			resp.SetReply(req)
			resp.Authoritative = true
			resp.RecursionAvailable = true
			if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
				for _, a := range addrs {
					resp.Answer = append(resp.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL},
						A:   a.AsSlice(),
					})
				}
			}
			// Other types of a known name (AAAA on an IPv4-only network, ...): no data, no error.
			return resp
		}
		if q.Qtype == dns.TypePTR {
			if a, ok := ptrAddr(name); ok {
				if target, ok := names.ptr[a]; ok {
					resp.SetReply(req)
					resp.Authoritative = true
					resp.RecursionAvailable = true
					resp.Answer = append(resp.Answer, &dns.PTR{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: dnsTTL},
						Ptr: dns.Fqdn(target),
					})
					return resp
				}
			}
		}
	}
	if fwd == nil {
		resp.SetRcode(req, dns.RcodeServerFailure)
		resp.RecursionAvailable = true
		return resp
	}
	out, err := fwd(req)
	if err != nil || out == nil {
		resp.SetRcode(req, dns.RcodeServerFailure)
		resp.RecursionAvailable = true
		return resp
	}
	out.Id = req.Id
	return out
}

// ptrAddr parses d.c.b.a.in-addr.arpa.
func ptrAddr(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	p := strings.Split(rest, ".")
	if len(p) != 4 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(p[3] + "." + p[2] + "." + p[1] + "." + p[0])
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// forward asks the upstream resolvers in turn (same transport as the question came in; a truncated UDP
// answer is passed on so that the client retries over TCP).
func forward(req *dns.Msg, proto string, upstreams []string) (*dns.Msg, error) {
	c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
	var lastErr error = errNoUpstream
	for _, up := range upstreams {
		r, _, err := c.Exchange(req, up)
		if err == nil && r != nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

var errNoUpstream = errKind(ErrNotFound, "no upstream resolver")

// hostResolvers reads the nameservers of the host's /etc/resolv.conf ("ip:53"); none: Docker's fallback.
func hostResolvers() []string {
	return resolversFrom("/etc/resolv.conf")
}

func resolversFrom(path string) []string {
	data, _ := os.ReadFile(path)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			a, err := netip.ParseAddr(strings.SplitN(f[1], "%", 2)[0])
			if err == nil {
				out = append(out, net.JoinHostPort(a.String(), "53"))
			}
		}
	}
	if len(out) == 0 {
		out = []string{"8.8.8.8:53", "8.8.4.4:53"}
	}
	return out
}
