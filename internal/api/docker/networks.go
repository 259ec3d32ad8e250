package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"

	"github.com/wharfhq/wharf/internal/engine"
	wnet "github.com/wharfhq/wharf/internal/network"
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

func (s *Server) networkJSON(n wnet.Info) map[string]any {
	ipam := map[string]any{"Driver": "default", "Options": map[string]string{}, "Config": []any{}}
	if n.Subnet != "" {
		ipam["Config"] = []any{map[string]string{"Subnet": n.Subnet, "Gateway": n.Gateway}}
	}
	containers := map[string]any{}
	for c, st := range s.e.NetworkContainers(n.Name) {
		snap := c.Snapshot()
		ip := ""
		if st.IP != "" {
			ip = st.IP + "/" + itoa(st.PrefixLen)
		}
		containers[snap.ID] = map[string]string{"Name": strings.TrimPrefix(snap.Name, "/"), "EndpointID": endpointID(snap.ID, n.ID), "MacAddress": st.MAC, "IPv4Address": ip, "IPv6Address": ""}
	}
	opts := n.Options
	if opts == nil {
		opts = map[string]string{}
	}
	if n.Bridge != "" && opts["com.docker.network.bridge.name"] == "" {
		opts = copyStrings(opts)
		opts["com.docker.network.bridge.name"] = n.Bridge
	}
	labels := n.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	created := "0001-01-01T00:00:00Z"
	if !n.Created.IsZero() {
		created = fmtTime(n.Created)
	}
	return map[string]any{"Name": n.Name, "Id": n.ID, "Created": created, "Scope": "local", "Driver": n.Driver,
		"EnableIPv4": true, "EnableIPv6": false, "IPAM": ipam, "Internal": n.Internal, "Attachable": false, "Ingress": false,
		"ConfigFrom": map[string]string{"Network": ""}, "ConfigOnly": false, "Containers": containers,
		"Options": opts, "Labels": labels}
}

func copyStrings(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// endpointID is a stable ID for a container's endpoint on a network.
func endpointID(containerID, networkID string) string {
	sum := sha256.Sum256([]byte("wharf-endpoint:" + containerID + ":" + networkID))
	return hex.EncodeToString(sum[:])
}

// endpointsOf describes a running container's networks from its recorded endpoint states.
func endpointsOf(c *engine.Container) map[string]*network.EndpointSettings {
	out := map[string]*network.EndpointSettings{}
	for name, st := range c.Net.Networks {
		ep := &network.EndpointSettings{NetworkID: st.NetworkID, EndpointID: endpointID(c.ID, st.NetworkID), IPPrefixLen: st.PrefixLen}
		ep.IPAddress, _ = netip.ParseAddr(st.IP)
		ep.Gateway, _ = netip.ParseAddr(st.Gateway)
		if mac, err := parseMAC(st.MAC); err == nil {
			ep.MacAddress = mac
		}
		if cfg := c.Endpoints[name]; cfg != nil {
			ep.Aliases = cfg.Aliases
			ep.IPAMConfig = cfg.IPAMConfig
		}
		if name != "bridge" {
			ep.DNSNames = append([]string{strings.TrimPrefix(c.Name, "/"), c.ID[:12]}, st.Aliases...)
		}
		out[name] = ep
	}
	return out
}

func matchNetwork(n wnet.Info, f map[string][]string) bool {
	for k, vs := range f {
		ok := false
		for _, v := range vs {
			switch k {
			case "name":
				ok = ok || strings.Contains(n.Name, v)
			case "id":
				ok = ok || strings.HasPrefix(n.ID, v)
			case "driver":
				ok = ok || n.Driver == v
			case "type":
				ok = ok || v == "custom" && !n.BuiltIn || v == "builtin" && n.BuiltIn
			case "label":
				kk, vv, hasV := strings.Cut(v, "=")
				lv, has := n.Labels[kk]
				ok = ok || has && (!hasV || lv == vv)
			case "scope":
				ok = ok || v == "local"
			default:
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// networkCreateRequest is network.CreateRequest decoded leniently (older clients send CheckDuplicate).
type networkCreateRequest struct {
	Name     string
	Driver   string
	Internal bool
	IPAM     *network.IPAM
	Options  map[string]string
	Labels   map[string]string
}

func (s *Server) networkCreate(r *request) error {
	var req networkCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return engine.Invalid("network name is required")
	}
	cfg := engine.NetworkConfig{Name: req.Name, Internal: req.Internal, Labels: req.Labels, Options: req.Options}
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return engine.NotFound("plugin %q not found", req.IPAM.Driver)
		}
		if len(req.IPAM.Config) > 1 {
			return engine.Invalid("only one IPv4 subnet per network is supported")
		}
		for _, c := range req.IPAM.Config {
			if c.Subnet.IsValid() {
				cfg.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				if !c.Subnet.IsValid() {
					return engine.Invalid("gateway %s requires a subnet", c.Gateway)
				}
				cfg.Gateway = c.Gateway.String()
			}
			if c.IPRange.IsValid() {
				return engine.Invalid("--ip-range is not supported yet")
			}
		}
	}
	info, err := s.e.CreateNetwork(req.Driver, cfg)
	if err != nil {
		return err
	}
	return writeJSON(r.w, http.StatusCreated, map[string]any{"Id": info.ID, "Warning": ""})
}

func (s *Server) networkList() []wnet.Info { return s.e.Networks() }

func (s *Server) routeNetworks(r *request, seg []string) error {
	m := r.Method
	switch {
	case len(seg) == 0 && m == http.MethodGet:
		f, err := parseFilters(r.query("filters"))
		if err != nil {
			return err
		}
		out := []any{}
		for _, n := range s.networkList() {
			if matchNetwork(n, f) {
				out = append(out, s.networkJSON(n))
			}
		}
		return writeJSON(r.w, http.StatusOK, out)
	case len(seg) == 1 && seg[0] == "create" && m == http.MethodPost:
		return s.networkCreate(r)
	case len(seg) == 1 && seg[0] == "prune" && m == http.MethodPost:
		f, err := parseFilters(r.query("filters"))
		if err != nil {
			return err
		}
		deleted := s.e.PruneNetworks(func(n wnet.Info) bool {
			for _, v := range f["label"] {
				kk, vv, hasV := strings.Cut(v, "=")
				lv, has := n.Labels[kk]
				if !has || hasV && lv != vv {
					return false
				}
			}
			for _, v := range f["label!"] {
				kk, vv, hasV := strings.Cut(v, "=")
				lv, has := n.Labels[kk]
				if has && (!hasV || lv == vv) {
					return false
				}
			}
			return true
		})
		if deleted == nil {
			deleted = []string{}
		}
		return writeJSON(r.w, http.StatusOK, map[string]any{"NetworksDeleted": deleted})
	case len(seg) == 1 && m == http.MethodGet:
		n, err := s.e.Network(seg[0])
		if err != nil {
			return err
		}
		return writeJSON(r.w, http.StatusOK, s.networkJSON(n))
	case len(seg) == 1 && m == http.MethodDelete:
		if err := s.e.RemoveNetwork(seg[0]); err != nil {
			return err
		}
		r.w.WriteHeader(http.StatusNoContent)
		return nil
	case len(seg) == 2 && seg[1] == "connect" && m == http.MethodPost:
		var req network.ConnectRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		if err := s.e.ConnectNetwork(seg[0], req.Container, req.EndpointConfig); err != nil {
			return err
		}
		r.w.WriteHeader(http.StatusOK)
		return nil
	case len(seg) == 2 && seg[1] == "disconnect" && m == http.MethodPost:
		var req network.DisconnectRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		if err := s.e.DisconnectNetwork(seg[0], req.Container, req.Force); err != nil {
			return err
		}
		r.w.WriteHeader(http.StatusOK)
		return nil
	}
	return engine.NotFound("page not found")
}

func itoa(n int) string { return strconv.Itoa(n) }
