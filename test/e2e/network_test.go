package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// leftovers lists what still mentions the bridges (links, nftables rules of any table) or the containers'
// host-side veths ("wh" + 10 hex digits of the ID).
func leftovers(t *testing.T, bridges, ids []string) []string {
	t.Helper()
	var out []string
	links, _ := exec.Command("ip", "-o", "link").Output()
	rules, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		t.Skipf("nft: %v", err)
	}
	for _, b := range bridges {
		if strings.Contains(string(links), " "+b+":") || strings.Contains(string(links), "master "+b+" ") {
			out = append(out, "link "+b)
		}
		if strings.Contains(string(rules), b) {
			out = append(out, "nft rule for "+b)
		}
	}
	for _, id := range ids {
		if len(id) >= 10 && strings.Contains(string(links), " wh"+id[:10]) {
			out = append(out, "veth of "+id[:12])
		}
	}
	return out
}

func bridgeOf(t *testing.T, c cli, netName string) string {
	var insp []map[string]any
	json.Unmarshal([]byte(c.ok(t, "network", "inspect", netName)), &insp)
	if len(insp) != 1 {
		t.Fatalf("inspect %s: %v", netName, insp)
	}
	b, _ := insp[0]["Options"].(map[string]any)["com.docker.network.bridge.name"].(string)
	if id, _ := insp[0]["Id"].(string); b == "" && len(id) >= 12 && netName != "bridge" {
		b = "br-" + id[:12] // dockerd's name for a user network's bridge
	}
	return b
}

func TestUserNetworksE2E(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		if _, err := exec.LookPath("nft"); err != nil {
			t.Skip("nft not installed")
		}
		base := uniqueName(t, c)
		netA, netB := base+"-a", base+"-b"
		c.ok(t, "network", "create", "--label", "wharf.test=1", netA)
		c.ok(t, "network", "create", netB)
		bridges := []string{bridgeOf(t, c, netA), bridgeOf(t, c, netB)}
		var ids []string
		defer func() {
			c.run(t, "", "rm", "-f", base+"-a1", base+"-a2", base+"-b1", base+"-none")
			c.run(t, "", "network", "rm", netA, netB)
			if left := leftovers(t, bridges, ids); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		}()
		if bridges[0] == "" || len(leftovers(t, bridges, nil)) != 4 {
			t.Fatalf("bridges %v not found with their rules: %v", bridges, leftovers(t, bridges, nil))
		}
		if r := c.run(t, "", "network", "create", netA); r.Code == 0 || !strings.Contains(r.Stderr, "network with name "+netA+" already exists") {
			t.Errorf("duplicate create: %s", r)
		}
		var insp []map[string]any
		json.Unmarshal([]byte(c.ok(t, "network", "inspect", netA)), &insp)
		if len(insp) != 1 {
			t.Fatalf("inspect: %v", insp)
		}
		subnet := insp[0]["IPAM"].(map[string]any)["Config"].([]any)[0].(map[string]any)["Subnet"].(string)
		if r := c.run(t, "", "network", "create", "--subnet", subnet, base+"-over"); r.Code == 0 || !strings.Contains(r.Stderr, "Pool overlaps with other one on this address space") {
			t.Errorf("overlapping subnet: %s", r)
		}

		a1, a2, b1 := base+"-a1", base+"-a2", base+"-b1"
		c.ok(t, "run", "-d", "--name", a1, "--network", netA, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
		c.ok(t, "run", "-d", "--name", a2, "--network", netA, "--network-alias", "web", "busybox", "sleep", "300")
		c.ok(t, "run", "-d", "--name", b1, "--network", netB, "busybox", "sleep", "300")
		for _, n := range []string{a1, a2, b1} {
			ids = append(ids, strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.Id}}", n)))
		}

		// By name and by alias, over the embedded DNS.
		if out := c.ok(t, "exec", a2, "wget", "-qO-", "http://"+a1+"/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("a2 → a1 by name: empty answer")
		}
		if out := c.ok(t, "exec", a1, "ping", "-c1", "-W2", "web"); !strings.Contains(out, "1 packets received") {
			t.Errorf("a1 → web (alias): %s", out)
		}
		// The embedded server: on the gateway (Wharf), 127.0.0.11 (dockerd).
		embedded := insp[0]["IPAM"].(map[string]any)["Config"].([]any)[0].(map[string]any)["Gateway"].(string)
		if needDaemon(t).real {
			embedded = "127.0.0.11"
		}
		if out := c.ok(t, "exec", a2, "cat", "/etc/resolv.conf"); !hasLine(out, "nameserver "+embedded) || strings.Count(out, "nameserver") != 1 {
			t.Errorf("resolv.conf: %s", out)
		}
		// Isolation: b1 cannot reach a1, by IP (busybox wget -T crashes: timeout(1) bounds it instead; exit 143).
		a1IP := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+netA+"\").IPAddress}}", a1))
		if a1IP == "" {
			t.Fatalf("no address for a1")
		}
		if r := c.run(t, "", "exec", b1, "timeout", "2", "wget", "-qO-", "http://"+a1IP+"/hostname"); r.Code == 0 {
			t.Errorf("b1 reached a1 across networks: %s", r)
		}
		// inspect lists the containers; rm of a network in use fails with Docker's text.
		json.Unmarshal([]byte(c.ok(t, "network", "inspect", netA)), &insp)
		if n := len(insp[0]["Containers"].(map[string]any)); n != 2 {
			t.Errorf("network inspect: %d containers", n)
		}
		// dockerd 20.10 adds " id <ID>" after the name.
		if r := c.run(t, "", "network", "rm", netA); r.Code == 0 || !strings.Contains(r.Stderr, "error while removing network: network "+netA) || !strings.Contains(r.Stderr, "has active endpoints") {
			t.Errorf("rm in use: %s", r)
		}
		// connect / disconnect.
		c.ok(t, "network", "connect", "--alias", "bee", netA, b1)
		if out := c.ok(t, "exec", b1, "timeout", "3", "wget", "-qO-", "http://"+a1+"/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("b1 → a1 after connect")
		}
		if out := c.ok(t, "exec", a1, "ping", "-c1", "-W2", "bee"); !strings.Contains(out, "1 packets received") {
			t.Errorf("a1 → bee after connect: %s", out)
		}
		if out := c.ok(t, "exec", b1, "ip", "-o", "link"); !strings.Contains(out, "eth1") {
			t.Errorf("no eth1 after connect: %s", out)
		}
		c.ok(t, "network", "disconnect", netA, b1)
		if out := c.ok(t, "exec", b1, "ip", "-o", "link"); strings.Contains(out, "eth1") {
			t.Errorf("eth1 after disconnect: %s", out)
		}
		if r := c.run(t, "", "exec", b1, "timeout", "2", "wget", "-qO-", "http://"+a1IP+"/hostname"); r.Code == 0 {
			t.Errorf("b1 reached a1 after disconnect: %s", r)
		}
		// --network none: only lo.
		out := c.ok(t, "run", "--rm", "--name", base+"-none", "--network", "none", "busybox", "ip", "-o", "link")
		if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
			t.Errorf("--network none: %s", out)
		}
		if r := c.run(t, "", "run", "--rm", "--network", base+"-nosuch", "busybox", "true"); r.Code == 0 || !strings.Contains(r.Stderr, "network "+base+"-nosuch not found") {
			t.Errorf("unknown network: %s", r)
		}
		c.ok(t, "rm", "-f", a1, a2, b1)
		c.ok(t, "network", "rm", netA, netB)
		if r := c.run(t, "", "network", "inspect", netA); r.Code == 0 {
			t.Errorf("network still there after rm: %s", r)
		}
	})
}

// TestRunIPOnUserNetwork: `run --network N --ip A` gives the container that address (and Docker's errors for a
// builtin network or an address outside the subnet).
func TestRunIPOnUserNetwork(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		net := uniqueName(t, c)
		c.ok(t, "network", "create", "--subnet", "10.123.45.0/24", net)
		defer c.run(t, "", "network", "rm", net)
		name := net + "-c"
		defer c.run(t, "", "rm", "-f", name)
		c.ok(t, "run", "-d", "--name", name, "--network", net, "--ip", "10.123.45.77", "busybox", "sleep", "300")
		if out := c.ok(t, "exec", name, "ip", "-o", "-4", "addr"); !strings.Contains(out, "inet 10.123.45.77/24") {
			t.Errorf("ip addr: %s", out)
		}
		ep := "(index .NetworkSettings.Networks \"" + net + "\")"
		if got := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{"+ep+".IPAddress}} {{"+ep+".IPAMConfig.IPv4Address}}", name)); got != "10.123.45.77 10.123.45.77" {
			t.Errorf("inspect IPAddress, IPAMConfig.IPv4Address: %q", got)
		}
		c.ok(t, "rm", "-f", name)
		// The address is free again once the container is gone.
		out := c.ok(t, "run", "--rm", "--network", net, "--ip", "10.123.45.77", "busybox", "ip", "-o", "-4", "addr")
		if !strings.Contains(out, "inet 10.123.45.77/24") {
			t.Errorf("ip addr after rm: %s", out)
		}
		if r := c.run(t, "", "run", "--rm", "--ip", "10.123.45.78", "busybox", "true"); r.Code == 0 ||
			!strings.Contains(r.Stderr, "user specified IP address is supported on user defined networks only") {
			t.Errorf("--ip on the default bridge: %s", r)
		}
	})
}

// netState is what a daemon has on the host for the given bridges: the rules of its nftables table, the lines of
// the whole ruleset that name a bridge (iptables' DOCKER-USER/FORWARD accepts), links and bridge addresses.
type netState struct{ tableRules, rulesetLines, links, addrs int }

func snapNet(t *testing.T, table string, bridges []string) netState {
	t.Helper()
	var s netState
	tbl, err := exec.Command("nft", "-a", "list", "table", "ip", table).Output()
	if err != nil {
		t.Fatalf("nft list table %s: %v", table, err)
	}
	for _, l := range strings.Split(string(tbl), "\n") {
		f := strings.Fields(l)
		if strings.Contains(l, "# handle") && len(f) > 0 && f[0] != "table" && f[0] != "chain" && f[0] != "set" && f[0] != "map" {
			s.tableRules++
		}
	}
	rs, _ := exec.Command("nft", "list", "ruleset").Output()
	links, _ := exec.Command("ip", "-o", "link").Output()
	for _, b := range bridges {
		for _, l := range strings.Split(string(rs), "\n") {
			if strings.Contains(l, `"`+b+`"`) {
				s.rulesetLines++
			}
		}
		for _, l := range strings.Split(string(links), "\n") {
			if strings.Contains(l, " "+b+":") || strings.Contains(l, "master "+b+" ") {
				s.links++
			}
		}
		a, _ := exec.Command("ip", "-o", "addr", "show", "dev", b).Output()
		s.addrs += strings.Count(strings.TrimSpace(string(a)), "\n") + 1
	}
	return s
}

// TestUserNetworkKill9Cycles: two containers on a user network outlive kill -9 of the daemon; after each restart
// they still resolve and reach each other by name, and the daemon adds no duplicate rules, links or addresses.
func TestUserNetworkKill9Cycles(t *testing.T) {
	needWharf(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed")
	}
	d, c := ownDaemon(t, "4")
	c.ok(t, "network", "create", "k9net")
	defer c.run(t, "", "network", "rm", "k9net")
	c.ok(t, "network", "create", "k9first")
	defer c.run(t, "", "network", "rm", "k9first")
	bridges := []string{d.bridge, bridgeOf(t, c, "k9net"), bridgeOf(t, c, "k9first")}
	c.ok(t, "run", "-d", "--name", "k9a", "--network", "k9net", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	c.ok(t, "run", "-d", "--name", "k9b", "--network", "k9net", "--network-alias", "bee", "busybox", "sleep", "600")
	c.ok(t, "run", "-d", "--name", "k9p", "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	// k9c left the network it was started on (its eth1 on k9net is now its first interface).
	c.ok(t, "run", "-d", "--name", "k9c", "--network", "k9first", "busybox", "sleep", "600")
	c.ok(t, "network", "connect", "k9net", "k9c")
	c.ok(t, "network", "disconnect", "k9first", "k9c")
	var ids []string
	for _, n := range []string{"k9a", "k9b", "k9p", "k9c"} {
		ids = append(ids, strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.Id}}", n)))
	}
	veths := func() int {
		links, _ := exec.Command("ip", "-o", "link").Output()
		n := 0
		for _, id := range ids {
			n += strings.Count(string(links), " wh"+id[:10])
		}
		return n
	}
	reach := func(cycle int) {
		t.Helper()
		// The embedded DNS comes back with the daemon: allow it a moment, then require both directions.
		waitFor(t, func() bool { return c.run(t, "", "exec", "k9a", "ping", "-c1", "-W1", "k9b").Code == 0 })
		if out := c.ok(t, "exec", "k9a", "ping", "-c1", "-W2", "bee"); !strings.Contains(out, "1 packets received") {
			t.Errorf("cycle %d: k9a → bee: %s", cycle, out)
		}
		if out := c.ok(t, "exec", "k9b", "wget", "-qO-", "http://k9a/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("cycle %d: k9b → k9a by name: empty answer", cycle)
		}
		if out := c.ok(t, "exec", "k9c", "wget", "-qO-", "http://k9a/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("cycle %d: k9c (left its first network) → k9a by name: empty answer", cycle)
		}
		if out := c.ok(t, "exec", "k9c", "ip", "-o", "link"); strings.Count(strings.TrimSpace(out), "\n") != 1 || !strings.Contains(out, "eth1") {
			t.Errorf("cycle %d: k9c links: %q", cycle, out)
		}
		port := strings.TrimSpace(c.ok(t, "inspect", "-f", `{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}`, "k9p"))
		if out := httpGet(t, fmt.Sprintf("http://127.0.0.1:%s/hostname", port)); strings.TrimSpace(out) == "" {
			t.Errorf("cycle %d: published port: empty answer", cycle)
		}
	}
	table := "wharf_" + d.bridge
	reach(0)
	before, beforeVeths := snapNet(t, table, bridges), veths()
	if before.tableRules == 0 || before.links < 5 || beforeVeths != 4 {
		t.Fatalf("unexpected start state %+v, veths %d", before, beforeVeths)
	}
	for cycle := 1; cycle <= 2; cycle++ {
		d.kill9()
		time.Sleep(200 * time.Millisecond)
		if err := d.start(); err != nil {
			t.Fatal(err)
		}
		if ps := c.ok(t, "ps", "--format", "{{.Names}} {{.State}}"); strings.Count(ps, "running") != 4 {
			t.Fatalf("cycle %d: ps after restart: %q", cycle, ps)
		}
		reach(cycle)
		if after, v := snapNet(t, table, bridges), veths(); after != before || v != beforeVeths {
			t.Errorf("cycle %d: host state %+v veths %d, before %+v veths %d", cycle, after, v, before, beforeVeths)
		}
	}
	c.ok(t, "rm", "-f", "k9a", "k9b", "k9p", "k9c")
	c.ok(t, "network", "rm", "k9net", "k9first")
	if left := leftovers(t, bridges[1:], ids); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// fakeDNS serves A records for one name (NOERROR without data for its other types, NXDOMAIN for other
// names) on addr over UDP and TCP, in the host's namespace, where both daemons' embedded servers forward
// from. It skips the test when addr is taken.
func fakeDNS(t *testing.T, addr, name, ip string) {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case !strings.EqualFold(q.Name, dns.Fqdn(name)):
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip).To4()})
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Skipf("test DNS server on %s: %v", addr, err)
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		t.Skipf("test DNS server on %s: %v", addr, err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		srv := srv
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
}

// bridgeGateway is the default bridge's gateway, what --add-host NAME:host-gateway stands for (dockerd 20.10
// leaves it out of the default bridge's IPAM config: then a container's default route tells).
func bridgeGateway(t *testing.T, c cli) string {
	if gw := strings.TrimSpace(c.ok(t, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "bridge")); gw != "" {
		return gw
	}
	f := strings.Fields(c.ok(t, "run", "--rm", "busybox", "ip", "route", "show", "default"))
	if len(f) < 3 || f[1] != "via" {
		t.Fatalf("default route on the default bridge: %v", f)
	}
	return f[2]
}

// realDockerdBefore tells whether the daemon is a real dockerd older than major version v.
func realDockerdBefore(t *testing.T, c cli, v int) bool {
	if !needDaemon(t).real {
		return false
	}
	var major int
	fmt.Sscanf(c.ok(t, "version", "-f", "{{.Server.Version}}"), "%d", &major)
	return major < v
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func hasLine(s, want string) bool {
	for _, l := range lines(s) {
		if strings.Join(strings.Fields(l), " ") == want {
			return true
		}
	}
	return false
}

// TestNetworkDNSOptions: --dns on a user network keeps the embedded server as the only nameserver, which
// forwards other names to the --dns server (a test server on 127.0.0.2:53); on the default bridge the --dns
// servers are the nameservers. --dns-search, --dns-option and --add-host (host-gateway too) as dockerd.
func TestNetworkDNSOptions(t *testing.T) {
	needDaemon(t)
	probe := fmt.Sprintf("probe-%d.wharf.test", time.Now().UnixNano()%1000000)
	fakeDNS(t, "127.0.0.2:53", probe, "198.51.100.7")
	forEachClient(t, func(t *testing.T, c cli) {
		netName := uniqueName(t, c)
		c.ok(t, "network", "create", netName)
		defer c.run(t, "", "network", "rm", netName)
		gw := bridgeGateway(t, c)
		peer := netName + "-peer"
		c.ok(t, "run", "-d", "--name", peer, "--network", netName, "busybox", "sleep", "300")
		defer c.run(t, "", "rm", "-f", peer)
		script := "cat /etc/resolv.conf; echo @@@; cat /etc/hosts; echo @@@; nslookup " + probe + ". ; echo @@@; ping -c1 -W2 " + peer
		out := c.ok(t, "run", "--rm", "--network", netName, "--dns", "127.0.0.2", "--dns-search", "x.example",
			"--dns-option", "ndots:2", "--add-host", "foo:192.0.2.77", "--add-host", "gw:host-gateway", "busybox", "sh", "-c", script)
		parts := strings.Split(out, "@@@\n")
		if len(parts) != 4 {
			t.Fatalf("output: %q", out)
		}
		resolv, hosts, lookup, ping := parts[0], parts[1], parts[2], parts[3]
		if n := strings.Count(resolv, "nameserver "); n != 1 || strings.Contains(resolv, "nameserver 127.0.0.2") {
			t.Errorf("user network resolv.conf: want only the embedded server: %q", resolv)
		}
		if !hasLine(resolv, "search x.example") || !hasLine(resolv, "options ndots:2") {
			t.Errorf("user network resolv.conf: search/options: %q", resolv)
		}
		if !hasLine(hosts, "192.0.2.77 foo") || !hasLine(hosts, gw+" gw") {
			t.Errorf("--add-host (host-gateway = %s): %q", gw, hosts)
		}
		if !strings.Contains(lookup, "198.51.100.7") {
			if realDockerdBefore(t, c, 23) {
				// Before 23.0 dockerd's embedded server asks the --dns servers from the container's namespace,
				// where 127.0.0.2 is the container's own loopback.
				t.Logf("dockerd < 23 does not forward to a loopback --dns from the host: %q", lookup)
			} else {
				t.Errorf("name forwarded to --dns 127.0.0.2: %q", lookup)
			}
		}
		if !strings.Contains(ping, "1 packets received") {
			t.Errorf("container name with --dns: %q", ping)
		}
		// Another container on the network without --dns is not sent to 127.0.0.2.
		if r := c.run(t, "", "run", "--rm", "--network", netName, "busybox", "nslookup", probe+"."); strings.Contains(r.Stdout, "198.51.100.7") {
			t.Errorf("a container without --dns used another's --dns server: %s", r)
		}

		// Default bridge: the --dns servers themselves.
		out = c.ok(t, "run", "--rm", "--dns", "127.0.0.2", "--dns-search", "x.example", "--dns-option", "ndots:2",
			"--add-host", "gw:host-gateway", "busybox", "sh", "-c", "cat /etc/resolv.conf; echo @@@; cat /etc/hosts")
		parts = strings.Split(out, "@@@\n")
		if len(parts) != 2 || !hasLine(parts[0], "nameserver 127.0.0.2") || strings.Count(parts[0], "nameserver ") != 1 ||
			!hasLine(parts[0], "search x.example") || !hasLine(parts[0], "options ndots:2") || !hasLine(parts[1], gw+" gw") {
			t.Errorf("default bridge with --dns: %q", out)
		}
		// --network none: host-gateway still maps to the default bridge's gateway.
		if out := c.ok(t, "run", "--rm", "--network", "none", "--add-host", "gw:host-gateway", "busybox", "cat", "/etc/hosts"); !hasLine(out, gw+" gw") {
			t.Errorf("--network none, host-gateway: %q", out)
		}
		// Bad values: the CLI's errors, nothing sent.
		for _, tc := range [][]string{
			{"--dns", "bogus", "IP address is not correctly formatted: bogus"},
			{"--add-host", "foo", `bad format for add-host: "foo"`},
			{"--add-host", "foo:300.1.1.1", `invalid IP address in add-host: "300.1.1.1"`},
		} {
			if r := c.run(t, "", "run", "--rm", tc[0], tc[1], "busybox", "true"); r.Code != 125 || !strings.Contains(r.Stderr, tc[2]) {
				t.Errorf("%s %s: %s", tc[0], tc[1], r)
			}
		}
	})
}

// inSubnet reports whether `ip -o -4 addr` output has an address in subnet.
func inSubnet(t *testing.T, ipAddr, subnet string) bool {
	p := netip.MustParsePrefix(subnet)
	for _, f := range strings.Fields(ipAddr) {
		if a, err := netip.ParsePrefix(f); err == nil && p.Contains(a.Addr()) {
			return true
		}
	}
	return false
}

func subnetOf(t *testing.T, c cli, netName string) string {
	return strings.TrimSpace(c.ok(t, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", netName))
}

// TestNetworkDisconnectFirstNetwork: a running container leaves the network it was started on and keeps its
// other one (addresses, names both ways, its published port), also across a restart; a container started
// with --network none leaves it and joins a network; leaving the last network leaves only lo.
func TestNetworkDisconnectFirstNetwork(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		base := uniqueName(t, c)
		netA, netB := base+"-a", base+"-b"
		c1, pa, pb, n1 := base+"-c1", base+"-pa", base+"-pb", base+"-n1"
		c.ok(t, "network", "create", netA)
		c.ok(t, "network", "create", netB)
		defer func() {
			c.run(t, "", "rm", "-f", c1, pa, pb, n1)
			c.run(t, "", "network", "rm", netA, netB)
		}()
		subA, subB := subnetOf(t, c, netA), subnetOf(t, c, netB)
		c.ok(t, "run", "-d", "--name", c1, "--network", netA, "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
		c.ok(t, "run", "-d", "--name", pa, "--network", netA, "busybox", "sleep", "300")
		c.ok(t, "run", "-d", "--name", pb, "--network", netB, "busybox", "sleep", "300")
		c.ok(t, "network", "connect", netB, c1)
		c.ok(t, "network", "disconnect", netA, c1)
		check := func(when string) {
			t.Helper()
			addrs := c.ok(t, "exec", c1, "ip", "-o", "-4", "addr")
			if inSubnet(t, addrs, subA) || !inSubnet(t, addrs, subB) {
				t.Errorf("%s: addresses %q (left %s, kept %s)", when, addrs, subA, subB)
			}
			if out := c.ok(t, "exec", pb, "wget", "-qO-", "http://"+c1+"/hostname"); strings.TrimSpace(out) == "" {
				t.Errorf("%s: pb → c1 by name: empty", when)
			}
			if out := c.ok(t, "exec", c1, "ping", "-c1", "-W2", pb); !strings.Contains(out, "1 packets received") {
				t.Errorf("%s: c1 → pb by name: %q", when, out)
			}
			if r := c.run(t, "", "exec", c1, "ping", "-c1", "-W1", pa); r.Code == 0 {
				t.Errorf("%s: c1 still reaches pa on the network it left: %s", when, r)
			}
			var insp []map[string]any
			json.Unmarshal([]byte(c.ok(t, "inspect", c1)), &insp)
			nets := insp[0]["NetworkSettings"].(map[string]any)["Networks"].(map[string]any)
			if _, ok := nets[netA]; ok || nets[netB] == nil {
				t.Errorf("%s: inspect networks %v", when, nets)
			}
			json.Unmarshal([]byte(c.ok(t, "network", "inspect", netA)), &insp)
			if n := len(insp[0]["Containers"].(map[string]any)); n != 1 {
				t.Errorf("%s: %s lists %d containers, want 1 (pa)", when, netA, n)
			}
		}
		check("after disconnect")
		// The published port moved with the container's external connectivity to the other network (dockerd
		// picks a new ephemeral host port then; Wharf keeps it).
		port := strings.TrimSpace(c.ok(t, "inspect", "-f", `{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}`, c1))
		if out := httpGet(t, "http://127.0.0.1:"+port+"/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("published port after disconnect: empty")
		}
		c.ok(t, "restart", "-t", "1", c1)
		check("after restart")
		if r := c.run(t, "", "network", "disconnect", netA, c1); r.Code == 0 || !strings.Contains(r.Stderr, "is not connected to network "+netA) {
			t.Errorf("second disconnect: %s", r)
		}
		// Stopped, it leaves its last network: it starts with lo only.
		c.ok(t, "stop", "-t", "1", c1)
		c.ok(t, "network", "disconnect", netB, c1)
		c.ok(t, "start", c1)
		if out := c.ok(t, "exec", c1, "ip", "-o", "link"); strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
			t.Errorf("started after leaving its last network: %q", out)
		}

		// --network none → disconnect none → connect netA.
		c.ok(t, "run", "-d", "--name", n1, "--network", "none", "busybox", "sleep", "300")
		if r := c.run(t, "", "network", "connect", netA, n1); r.Code == 0 || !strings.Contains(r.Stderr, "private (none) mode") {
			t.Errorf("connect while on none: %s", r)
		}
		c.ok(t, "network", "disconnect", "none", n1)
		c.ok(t, "network", "connect", netA, n1)
		if addrs := c.ok(t, "exec", n1, "ip", "-o", "-4", "addr"); !inSubnet(t, addrs, subA) {
			t.Errorf("none → %s: %q", netA, addrs)
		}
		if out := c.ok(t, "exec", pa, "ping", "-c1", "-W2", n1); !strings.Contains(out, "1 packets received") {
			t.Errorf("pa → n1 by name: %q", out)
		}
		// Leaving its only network: lo only.
		c.ok(t, "network", "disconnect", netA, n1)
		if out := c.ok(t, "exec", n1, "ip", "-o", "link"); strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
			t.Errorf("after leaving its only network: %q", out)
		}
	})
}

// TestPublishE2E: -P publishes every exposed port on an ephemeral host port; a UDP port; a port reachable on
// the host's own non-loopback address; --gateway; bad -p values give the CLI's errors and create nothing.
func TestPublishE2E(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		base := uniqueName(t, c)
		web, udp, gwc, gnet := base+"-web", base+"-udp", base+"-gw", base+"-gwnet"
		defer func() {
			c.run(t, "", "rm", "-f", web, udp, gwc)
			c.run(t, "", "network", "rm", gnet)
		}()

		// -P: the exposed ports (here --expose 80 and 8081) on ephemeral host ports, on all addresses.
		c.ok(t, "run", "-d", "--name", web, "--expose", "80", "--expose", "8081", "-P", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
		portOut := c.ok(t, "port", web)
		hostPort := map[string]string{}
		for _, l := range lines(portOut) {
			// 80/tcp -> 0.0.0.0:49153
			f := strings.Fields(l)
			if len(f) == 3 && strings.HasPrefix(f[2], "0.0.0.0:") {
				hostPort[f[0]] = strings.TrimPrefix(f[2], "0.0.0.0:")
			}
		}
		if hostPort["80/tcp"] == "" || hostPort["8081/tcp"] == "" || hostPort["80/tcp"] == hostPort["8081/tcp"] {
			t.Fatalf("-P: docker port: %q", portOut)
		}
		if out := httpGet(t, "http://127.0.0.1:"+hostPort["80/tcp"]+"/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("-P on 127.0.0.1: empty")
		}
		// The host's own non-loopback address (the source address of its default route).
		if hostIP := outboundIP(t); hostIP != "" {
			if out := httpGet(t, "http://"+net.JoinHostPort(hostIP, hostPort["80/tcp"])+"/hostname"); strings.TrimSpace(out) == "" {
				t.Errorf("-P on %s: empty", hostIP)
			}
		}

		// UDP: a datagram to the published port reaches the container and its answer comes back (busybox
		// has no UDP server: a small static echo server is mounted in).
		echoDir := udpEchoBinary(t)
		c.ok(t, "run", "-d", "--name", udp, "-v", echoDir+":/x:ro", "-p", "127.0.0.1::9999/udp", "busybox", "/x/udpecho", ":9999")
		up := strings.TrimSpace(c.ok(t, "inspect", "-f", `{{(index (index .NetworkSettings.Ports "9999/udp") 0).HostPort}}`, udp))
		conn, err := net.Dial("udp4", "127.0.0.1:"+up)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		waitFor(t, func() bool {
			conn.Write([]byte("hello-udp"))
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			b := make([]byte, 100)
			n, _ := conn.Read(b)
			return string(b[:n]) == "echo:hello-udp"
		})

		// --gateway: the bridge's address and the containers' default route.
		if r := c.run(t, "", "network", "create", "--subnet", "10.123.46.0/24", "--gateway", "10.123.47.1", gnet); r.Code == 0 || !strings.Contains(r.Stderr, "no matching subnet for gateway 10.123.47.1") {
			t.Errorf("gateway outside the subnet: %s", r)
			c.run(t, "", "network", "rm", gnet)
		}
		if r := c.run(t, "", "network", "create", "--gateway", "10.123.46.254", gnet); r.Code == 0 || !strings.Contains(r.Stderr, "every ip-range or gateway must have a corresponding subnet") {
			t.Errorf("gateway without subnet: %s", r)
			c.run(t, "", "network", "rm", gnet)
		}
		c.ok(t, "network", "create", "--subnet", "10.123.46.0/24", "--gateway", "10.123.46.254", gnet)
		if got := strings.TrimSpace(c.ok(t, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", gnet)); got != "10.123.46.254" {
			t.Errorf("inspect gateway: %q", got)
		}
		c.ok(t, "run", "-d", "--name", gwc, "--network", gnet, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
		if out := c.ok(t, "exec", gwc, "ip", "route"); !strings.Contains(out, "default via 10.123.46.254") {
			t.Errorf("default route: %q", out)
		}
		gwIP := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+gnet+"\").IPAddress}}", gwc))
		if gwIP == "10.123.46.254" || !strings.HasPrefix(gwIP, "10.123.46.") {
			t.Errorf("container address %q", gwIP)
		}
		if out := httpGet(t, "http://"+gwIP+"/hostname"); strings.TrimSpace(out) == "" { // host → container via the gateway
			t.Errorf("host → %s: empty", gwIP)
		}

		// Bad -p: the CLI's errors; no container made.
		for _, tc := range [][2]string{{"99999:80", "invalid hostPort: 99999"}, {"abc", "invalid containerPort: abc"}, {"80:abc", "invalid containerPort: abc"}} {
			name := base + "-bad"
			r := c.run(t, "", "run", "-d", "--name", name, "-p", tc[0], "busybox", "true")
			if r.Code != 125 || !strings.Contains(r.Stderr, tc[1]) {
				t.Errorf("-p %s: %s", tc[0], r)
			}
			if r := c.run(t, "", "inspect", name); r.Code == 0 {
				t.Errorf("-p %s: a container was created", tc[0])
				c.run(t, "", "rm", "-f", name)
			}
		}
		// Unknown network: the daemon's error, no container made.
		name := base + "-nonet"
		if r := c.run(t, "", "run", "-d", "--name", name, "--network", base+"-nosuch", "busybox", "true"); r.Code != 125 || !strings.Contains(r.Stderr, "network "+base+"-nosuch not found") {
			t.Errorf("unknown network: %s", r)
		}
		if r := c.run(t, "", "inspect", name); r.Code == 0 {
			if realDockerdBefore(t, c, 23) {
				t.Logf("dockerd < 23 checks the network at start: it leaves the created container")
			} else {
				t.Errorf("unknown network: a container was created")
			}
			c.run(t, "", "rm", "-f", name)
		}
	})
}

// outboundIP is the host's own address on the interface of its default route ("" if none).
func outboundIP(t *testing.T) string {
	out, err := exec.Command("ip", "-4", "-o", "route", "get", "192.0.2.200").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "src" && !strings.HasPrefix(f[i+1], "127.") {
			return f[i+1]
		}
	}
	return ""
}

const udpEchoSource = `package main

import (
	"net"
	"os"
)

func main() {
	pc, err := net.ListenPacket("udp4", os.Args[1])
	if err != nil {
		panic(err)
	}
	b := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(b)
		if err != nil {
			panic(err)
		}
		pc.WriteTo(append([]byte("echo:"), b[:n]...), from)
	}
}
`

// udpEchoBinary builds a static UDP echo server (udpecho ADDR) into a temporary folder and returns it.
func udpEchoBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(udpEchoSource), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "udpecho"), "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build udpecho: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(dir, "main.go"))
	return dir
}

// TestNetworkModesE2E: --network host and container:<name>, an --internal network (names inside, no default
// route), connect --ip, network ls filters, and network prune limited by a label of this test's own (prune
// without a filter would also remove other users' unused networks on a real dockerd).
func TestNetworkModesE2E(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		base := uniqueName(t, c)
		web, side, in1, in2 := base+"-web", base+"-side", base+"-in1", base+"-in2"
		netU, netI, netP, netPx := base+"-u", base+"-i", base+"-p", base+"-px"
		label := "wharf.test.prune=" + base
		defer func() {
			c.run(t, "", "rm", "-f", web, side, in1, in2)
			c.run(t, "", "network", "rm", netU, netI, netP, netPx)
		}()
		// host: the host's own interfaces and addresses.
		if hostIP := outboundIP(t); hostIP != "" {
			if out := c.ok(t, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "-4", "addr"); !strings.Contains(out, "inet "+hostIP+"/") {
				t.Errorf("--network host: %q lacks %s", out, hostIP)
			}
		}
		// container:<name>: the same namespace (its address, its loopback services).
		c.ok(t, "network", "create", netU)
		c.ok(t, "run", "-d", "--name", web, "--network", netU, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
		webIP := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+netU+"\").IPAddress}}", web))
		webHost := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.Config.Hostname}}", web))
		out := c.ok(t, "run", "--rm", "--network", "container:"+web, "busybox", "sh", "-c", "ip -o -4 addr; wget -qO- http://127.0.0.1/hostname")
		if !strings.Contains(out, "inet "+webIP+"/") || !strings.Contains(out, webHost) {
			t.Errorf("--network container:%s: %q", web, out)
		}
		for _, tc := range [][]string{
			{"-p", "8080:80", "conflicting options: port publishing and the container type network mode"},
			{"-P", "", "conflicting options: port publishing and the container type network mode"},
			{"--dns", "192.0.2.53", "conflicting options: dns and the network mode"},
			{"--add-host", "a:192.0.2.1", "conflicting options: custom host-to-IP mapping and the network mode"},
		} {
			args := append([]string{"run", "--rm", "--network", "container:" + web}, tc[0])
			if tc[1] != "" {
				args = append(args, tc[1])
			}
			if r := c.run(t, "", append(args, "busybox", "true")...); r.Code != 125 || !strings.Contains(r.Stderr, tc[2]) {
				t.Errorf("container: network with %s: %s", tc[0], r)
			}
		}
		// --internal: names resolve and peers answer inside; no default route out.
		c.ok(t, "network", "create", "--internal", "--subnet", "10.123.48.0/24", netI)
		c.ok(t, "run", "-d", "--name", in1, "--network", netI, "busybox", "sleep", "300")
		c.ok(t, "run", "-d", "--name", in2, "--network", netI, "busybox", "sleep", "300")
		if out := c.ok(t, "exec", in1, "ping", "-c1", "-W2", in2); !strings.Contains(out, "1 packets received") {
			t.Errorf("internal network, by name: %q", out)
		}
		// Nothing outside the network: here, a container of another network (Wharf gives an internal network
		// no default route; dockerd 20.10 gives one and drops the traffic in iptables).
		if r := c.run(t, "", "exec", in1, "timeout", "2", "wget", "-qO-", "http://"+webIP+"/hostname"); r.Code == 0 {
			t.Errorf("internal network reached %s: %s", webIP, r)
		}
		if got := strings.TrimSpace(c.ok(t, "network", "inspect", "-f", "{{.Internal}}", netI)); got != "true" {
			t.Errorf("inspect .Internal: %q", got)
		}
		// connect --ip.
		c.ok(t, "network", "connect", "--ip", "10.123.48.9", netI, web)
		if out := c.ok(t, "exec", web, "ip", "-o", "-4", "addr"); !strings.Contains(out, "inet 10.123.48.9/24") {
			t.Errorf("connect --ip: %q", out)
		}
		if out := c.ok(t, "exec", in2, "wget", "-qO-", "http://"+web+"/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("in2 → web over the connected interface: empty")
		}
		// ls filters; prune (label-limited) removes only unused networks.
		c.ok(t, "network", "create", "--label", label, netP)
		c.ok(t, "network", "create", "--label", label, netPx)
		c.ok(t, "run", "-d", "--name", side, "--network", netPx, "busybox", "sleep", "300")
		ls := func() string {
			return strings.Join(strings.Fields(c.ok(t, "network", "ls", "--filter", "label="+label, "--format", "{{.Name}}")), " ")
		}
		if got := ls(); got != netP+" "+netPx {
			t.Errorf("network ls --filter label: %q", got)
		}
		if got := strings.TrimSpace(c.ok(t, "network", "ls", "-q", "--filter", "name="+netPx)); len(got) < 12 {
			t.Errorf("network ls -q --filter name: %q", got)
		}
		out = c.ok(t, "network", "prune", "-f", "--filter", "label="+label)
		if !strings.Contains(out, netP+"\n") || strings.Contains(out, netPx) {
			t.Errorf("network prune: %q", out)
		}
		if got := ls(); got != netPx {
			t.Errorf("after prune: %q", got)
		}
	})
}

// TestStartAbortedByNetwork pins the gated start (engine.startLocked): the container is set up while its
// network is, and a network failure after its namespace exists aborts the start. Here the second network's
// fixed address is taken, so connecting it fails once the first one is attached. The start fails with
// the address error and leaves nothing: no process, no endpoint, no netns, no runtime state; and once the
// cause is gone the same container starts.
func TestStartAbortedByNetwork(t *testing.T) {
	d := needWharf(t)
	c := cli{name: "wharf", path: d.bin, host: d.host()}
	n1, n2 := uniqueName(t, c)+"-a", uniqueName(t, c)+"-b"
	c.ok(t, "network", "create", n1)
	defer c.run(t, "", "network", "rm", n1)
	c.ok(t, "network", "create", "--subnet", "10.123.49.0/24", n2)
	defer c.run(t, "", "network", "rm", n2)
	holder, victim := n2+"-holder", n2+"-victim"
	defer c.run(t, "", "rm", "-f", holder, victim)
	c.ok(t, "run", "-d", "--name", holder, "--network", n2, "--ip", "10.123.49.5", "busybox", "sleep", "300")
	id := strings.TrimSpace(c.ok(t, "create", "--name", victim, "--network", n1, "busybox", "sleep", "300"))
	c.ok(t, "network", "connect", "--ip", "10.123.49.5", n2, victim)
	r := c.run(t, "", "start", victim)
	if r.Code == 0 || !strings.Contains(r.Stderr, "Address already in use") {
		t.Fatalf("start with a taken address: %s", r)
	}
	if st := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Running}}", victim)); st != "false" {
		t.Errorf("running after a failed start: %q", st)
	}
	for _, p := range []string{filepath.Join(d.execRoot, "runtime", id), filepath.Join(d.execRoot, "netns", id)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after the failed start (%v)", p, err)
		}
	}
	if out, _ := exec.Command("ip", "-o", "link").Output(); strings.Contains(string(out), id[:12]) {
		t.Errorf("a veth of %s is left: %s", id[:12], out)
	}
	c.ok(t, "network", "disconnect", n2, victim)
	c.ok(t, "start", victim)
	if out := c.ok(t, "exec", victim, "cat", "/etc/hosts"); !strings.Contains(out, victim) && !strings.Contains(out, id[:12]) {
		t.Errorf("/etc/hosts after the start: %q", out)
	}
}
