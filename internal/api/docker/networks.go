package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"

	"github.com/wharfhq/wharf/internal/engine"
)

// networkID is a stable ID for the built-in networks, derived from their names.
func networkID(name string) string {
	sum := sha256.Sum256([]byte("wharf-network:" + name))
	return hex.EncodeToString(sum[:])
}

func parseMAC(s string) (network.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	return network.HardwareAddr(hw), err
}

func (s *Server) networkJSON(n engineNetwork) map[string]any {
	ipam := map[string]any{"Driver": "default", "Options": nil, "Config": []any{}}
	if n.Subnet != "" {
		ipam["Config"] = []any{map[string]string{"Subnet": n.Subnet, "Gateway": n.Gateway}}
	}
	containers := map[string]any{}
	for _, c := range s.e.Containers() {
		snap := c.Snapshot()
		if string(snap.HostConfig.NetworkMode) != n.Name || snap.Net == nil {
			continue
		}
		ip := ""
		if snap.Net.IP != "" {
			ip = snap.Net.IP + "/" + itoa(snap.Net.PrefixLen)
		}
		containers[snap.ID] = map[string]string{"Name": strings.TrimPrefix(snap.Name, "/"), "EndpointID": snap.ID, "MacAddress": snap.Net.MAC, "IPv4Address": ip, "IPv6Address": ""}
	}
	return map[string]any{"Name": n.Name, "Id": n.ID, "Created": "0001-01-01T00:00:00Z", "Scope": "local", "Driver": n.Driver,
		"EnableIPv4": true, "EnableIPv6": false, "IPAM": ipam, "Internal": false, "Attachable": false, "Ingress": false,
		"ConfigFrom": map[string]string{"Network": ""}, "ConfigOnly": false, "Containers": containers,
		"Options": map[string]string{}, "Labels": map[string]string{}}
}

type engineNetwork struct{ ID, Name, Driver, Subnet, Gateway string }

func (s *Server) networks() []engineNetwork {
	var out []engineNetwork
	for _, n := range s.e.Networks() {
		id := n.ID
		if id == "" {
			id = networkID(n.Name)
		}
		out = append(out, engineNetwork{ID: id, Name: n.Name, Driver: n.Driver, Subnet: n.Subnet, Gateway: n.Gateway})
	}
	return out
}

func (s *Server) routeNetworks(r *request, seg []string) error {
	switch {
	case len(seg) == 0 && r.Method == http.MethodGet:
		out := []any{}
		for _, n := range s.networks() {
			out = append(out, s.networkJSON(n))
		}
		return writeJSON(r.w, http.StatusOK, out)
	case len(seg) == 1 && r.Method == http.MethodGet:
		for _, n := range s.networks() {
			if n.Name == seg[0] || n.ID == seg[0] || len(seg[0]) >= 3 && strings.HasPrefix(n.ID, seg[0]) {
				return writeJSON(r.w, http.StatusOK, s.networkJSON(n))
			}
		}
		return engine.NotFound("network %s not found", seg[0])
	case len(seg) == 1 && seg[0] == "create":
		return engine.Invalid("user-defined networks are not supported yet")
	case len(seg) == 1 && seg[0] == "prune":
		return writeJSON(r.w, http.StatusOK, map[string]any{"NetworksDeleted": []string{}})
	}
	return engine.NotFound("page not found")
}

func itoa(n int) string { return strconv.Itoa(n) }
