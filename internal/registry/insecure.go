package registry

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// DefaultInsecureCIDRs are the networks dockerd always treats as insecure registries (loopback).
var DefaultInsecureCIDRs = []string{"::1/128", "127.0.0.0/8"}

// NormalizeInsecureRegistries validates --insecure-registry values as dockerd does: each is a CIDR
// ("10.0.0.0/8") or a registry "host[:port]"; an "http://" or "https://" prefix is dropped, any
// other scheme is an error. It returns the values as they are matched.
func NormalizeInsecureRegistries(entries []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, r := range entries {
		r = strings.TrimSpace(r)
		lower := strings.ToLower(r)
		switch {
		case strings.HasPrefix(lower, "http://"):
			r = r[len("http://"):]
		case strings.HasPrefix(lower, "https://"):
			r = r[len("https://"):]
		case strings.Contains(r, "://"):
			return nil, fmt.Errorf("insecure registry %s should not contain '://'", r)
		}
		r = strings.TrimSuffix(r, "/")
		if _, n, err := net.ParseCIDR(r); err == nil {
			r = n.String()
		} else if err := validateHostPort(r); err != nil {
			return nil, fmt.Errorf("insecure registry %s is not valid: %v", r, err)
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// validateHostPort accepts "host", "host:port", "[v6]:port" and "v6" (no path, no empty parts).
func validateHostPort(s string) error {
	if s == "" || strings.ContainsAny(s, "/ \t") {
		return fmt.Errorf("invalid host %q", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a host name or a bare IP (v6 included).
		if net.ParseIP(strings.Trim(s, "[]")) != nil {
			return nil
		}
		host = s
	} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("invalid host %q", host)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("invalid host %q", host)
			}
		}
	}
	return nil
}

// IndexInfo and ServiceConfig are the "RegistryConfig" of GET /info, as dockerd reports them.
type IndexInfo struct {
	Name     string   `json:"Name"`
	Mirrors  []string `json:"Mirrors"`
	Secure   bool     `json:"Secure"`
	Official bool     `json:"Official"`
}

type ServiceConfig struct {
	AllowNondistributableArtifactsCIDRs     []string              `json:"AllowNondistributableArtifactsCIDRs"`
	AllowNondistributableArtifactsHostnames []string              `json:"AllowNondistributableArtifactsHostnames"`
	InsecureRegistryCIDRs                   []string              `json:"InsecureRegistryCIDRs"`
	IndexConfigs                            map[string]*IndexInfo `json:"IndexConfigs"`
	Mirrors                                 []string              `json:"Mirrors"`
}

// ServiceConfig is the registry configuration as /info shows it: the loopback CIDRs and the CIDRs
// given as insecure, one index entry per insecure "host[:port]" (Secure false) and docker.io.
func (c *Client) ServiceConfig() ServiceConfig {
	sc := ServiceConfig{
		AllowNondistributableArtifactsCIDRs:     []string{},
		AllowNondistributableArtifactsHostnames: []string{},
		InsecureRegistryCIDRs:                   append([]string{}, DefaultInsecureCIDRs...),
		IndexConfigs:                            map[string]*IndexInfo{"docker.io": {Name: "docker.io", Mirrors: []string{}, Secure: true, Official: true}},
		Mirrors:                                 []string{},
	}
	if c == nil {
		return sc
	}
	var hosts []string
	for _, s := range c.Insecure {
		if _, n, err := net.ParseCIDR(s); err == nil {
			if !contains(sc.InsecureRegistryCIDRs, n.String()) {
				sc.InsecureRegistryCIDRs = append(sc.InsecureRegistryCIDRs, n.String())
			}
			continue
		}
		hosts = append(hosts, s)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		sc.IndexConfigs[h] = &IndexInfo{Name: h, Mirrors: []string{}, Secure: false, Official: false}
	}
	return sc
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// insecureHost says whether host ("host[:port]") is listed by --insecure-registry: by name (with
// or without its port) or, as dockerd does, by one of its addresses being in a listed CIDR.
func (c *Client) insecureHost(host string) bool {
	if c == nil || len(c.Insecure) == 0 {
		return false
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	var nets []*net.IPNet
	for _, s := range c.Insecure {
		if s == host || s == h {
			return true
		}
		if _, n, err := net.ParseCIDR(s); err == nil {
			nets = append(nets, n)
		}
	}
	if len(nets) == 0 {
		return false
	}
	ip := net.ParseIP(h)
	if ip == nil {
		if v, ok := c.resolved.Load(h); ok {
			return v.(bool)
		}
	}
	ips := []net.IP{ip}
	if ip == nil {
		ips, _ = net.LookupIP(h)
	}
	match := false
	for _, ip := range ips {
		for _, n := range nets {
			if n.Contains(ip) {
				match = true
			}
		}
	}
	if ip == nil {
		c.resolved.Store(h, match)
	}
	return match
}

// insecureTLS is the TLS-unverified twin of base used for HTTPS to insecure registries (dockerd
// skips certificate verification for them); nil when base is not an *http.Transport.
type insecureTLS struct {
	once sync.Once
	base http.RoundTripper
	rt   http.RoundTripper
}

func (i *insecureTLS) get() http.RoundTripper {
	i.once.Do(func() {
		t, ok := i.base.(*http.Transport)
		if !ok {
			return
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.InsecureSkipVerify = true
		i.rt = t
	})
	return i.rt
}
