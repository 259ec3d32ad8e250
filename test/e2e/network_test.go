package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
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
		if out := c.ok(t, "exec", a2, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver "+strings.TrimSuffix(insp[0]["IPAM"].(map[string]any)["Config"].([]any)[0].(map[string]any)["Gateway"].(string), "")) {
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
		if r := c.run(t, "", "network", "rm", netA); r.Code == 0 || !strings.Contains(r.Stderr, "error while removing network: network "+netA+" has active endpoints") {
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
	d, err := startDaemon(shared.bin, bridgeName("4"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop(true)
	if err := loadBaseImages(d, "busybox"); err != nil {
		t.Fatal(err)
	}
	c := cli{name: "wharf", path: d.bin, host: d.host()}
	c.ok(t, "network", "create", "k9net")
	defer c.run(t, "", "network", "rm", "k9net")
	bridges := []string{d.bridge, bridgeOf(t, c, "k9net")}
	c.ok(t, "run", "-d", "--name", "k9a", "--network", "k9net", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	c.ok(t, "run", "-d", "--name", "k9b", "--network", "k9net", "--network-alias", "bee", "busybox", "sleep", "600")
	c.ok(t, "run", "-d", "--name", "k9p", "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	var ids []string
	for _, n := range []string{"k9a", "k9b", "k9p"} {
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
		port := strings.TrimSpace(c.ok(t, "inspect", "-f", `{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}`, "k9p"))
		if out := httpGet(t, fmt.Sprintf("http://127.0.0.1:%s/hostname", port)); strings.TrimSpace(out) == "" {
			t.Errorf("cycle %d: published port: empty answer", cycle)
		}
	}
	table := "wharf_" + d.bridge
	reach(0)
	before, beforeVeths := snapNet(t, table, bridges), veths()
	if before.tableRules == 0 || before.links < 4 || beforeVeths != 3 {
		t.Fatalf("unexpected start state %+v, veths %d", before, beforeVeths)
	}
	for cycle := 1; cycle <= 2; cycle++ {
		d.kill9()
		time.Sleep(200 * time.Millisecond)
		if err := d.start(); err != nil {
			t.Fatal(err)
		}
		if ps := c.ok(t, "ps", "--format", "{{.Names}} {{.State}}"); strings.Count(ps, "running") != 3 {
			t.Fatalf("cycle %d: ps after restart: %q", cycle, ps)
		}
		reach(cycle)
		if after, v := snapNet(t, table, bridges), veths(); after != before || v != beforeVeths {
			t.Errorf("cycle %d: host state %+v veths %d, before %+v veths %d", cycle, after, v, before, beforeVeths)
		}
	}
	c.ok(t, "rm", "-f", "k9a", "k9b", "k9p")
	c.ok(t, "network", "rm", "k9net")
	if left := leftovers(t, bridges[1:], ids); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
