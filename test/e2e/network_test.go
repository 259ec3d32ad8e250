package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
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
