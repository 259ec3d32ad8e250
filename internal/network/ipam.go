package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// defaultSubnetCandidates are tried in order when no subnet is configured or persisted.
var defaultSubnetCandidates = []string{
	"10.89.0.0/16", "10.90.0.0/16", "10.91.0.0/16", "10.92.0.0/16",
	"172.30.0.0/16", "172.31.0.0/16", "172.29.0.0/16", "172.28.0.0/16",
	"192.168.215.0/24", "192.168.216.0/24", "192.168.217.0/24", "192.168.218.0/24",
}

// neverPick are prefixes that are never chosen automatically even when nothing is routed there right now:
// Docker's default bridge (it may be down) and podman/CNI's default network.
var neverPick = []netip.Prefix{
	netip.MustParsePrefix("172.17.0.0/16"),
	netip.MustParsePrefix("10.88.0.0/16"),
}

// hostPrefixes lists the IPv4 prefixes routed or assigned on the host (all routing tables), except those of
// the link with index ignoreLink (our own bridge) and default routes.
func hostPrefixes(ignoreLink int) ([]netip.Prefix, error) {
	var out []netip.Prefix
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil && !isDumpInterrupted(err) {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || (ignoreLink != 0 && r.LinkIndex == ignoreLink) {
			continue
		}
		p, ok := ipnetToPrefix(r.Dst)
		if !ok || p.Bits() == 0 {
			continue
		}
		out = append(out, p)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !isDumpInterrupted(err) {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet == nil || (ignoreLink != 0 && a.LinkIndex == ignoreLink) {
			continue
		}
		if p, ok := ipnetToPrefix(a.IPNet); ok {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

func isDumpInterrupted(err error) bool {
	return errors.Is(err, netlink.ErrDumpInterrupted)
}

func ipnetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func overlapsAny(p netip.Prefix, list []netip.Prefix) (netip.Prefix, bool) {
	for _, q := range list {
		if p.Overlaps(q) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// resolverPrefixes lists the host's IPv4 resolvers (nameserver lines of the resolv.conf at path, loopback
// ones aside) as /32 prefixes: a subnet picked automatically must not hide one (it may be reached through the
// default route only, so the routing table does not show it).
func resolverPrefixes(path string) []netip.Prefix {
	data, _ := os.ReadFile(path)
	var out []netip.Prefix
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() && !a.IsLoopback() {
			out = append(out, netip.PrefixFrom(a, 32))
		}
	}
	return out
}

// pickSubnet returns the first candidate that overlaps nothing on the host.
func pickSubnet(ignoreLink int) (netip.Prefix, error) {
	used, err := hostPrefixes(ignoreLink)
	if err != nil {
		return netip.Prefix{}, err
	}
	used = append(used, resolverPrefixes("/etc/resolv.conf")...)
	for _, c := range defaultSubnetCandidates {
		p := netip.MustParsePrefix(c)
		if _, bad := overlapsAny(p, neverPick); bad {
			continue
		}
		if _, bad := overlapsAny(p, used); bad {
			continue
		}
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
}

// checkSubnet validates an explicitly configured subnet.
func checkSubnet(s string, ignoreLink int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: must be an IPv4 CIDR", s)
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: prefix must be /30 or shorter", s)
	}
	p = p.Masked()
	used, err := hostPrefixes(ignoreLink)
	if err != nil {
		return netip.Prefix{}, err
	}
	if _, bad := overlapsAny(p, used); bad {
		return netip.Prefix{}, fmt.Errorf("Pool overlaps with other one on this address space")
	}
	return p, nil
}

func addrToU32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func u32ToAddr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// ipam hands out addresses of one subnet. Not safe for concurrent use (the Manager's lock covers it).
type ipam struct {
	subnet  netip.Prefix
	gateway netip.Addr
	used    map[netip.Addr]string // address → container ID
	last    uint32                // last host offset handed out (sequential allocation, like Docker)
}

func newIPAM(subnet netip.Prefix) *ipam {
	return &ipam{subnet: subnet, gateway: u32ToAddr(addrToU32(subnet.Addr()) + 1), used: map[netip.Addr]string{}, last: 1}
}

func (p *ipam) size() uint32 { return uint32(1) << (32 - p.subnet.Bits()) }

// valid reports whether a is a usable host address (not network, gateway or broadcast).
func (p *ipam) valid(a netip.Addr) bool {
	if !p.subnet.Contains(a) || a == p.gateway {
		return false
	}
	off := addrToU32(a) - addrToU32(p.subnet.Addr())
	return off != 0 && off != p.size()-1
}

func (p *ipam) reserve(a netip.Addr, id string) error {
	if !p.valid(a) {
		return fmt.Errorf("Invalid address %s: It does not belong to any of this network's subnets", a)
	}
	if owner, ok := p.used[a]; ok && owner != id {
		return fmt.Errorf("Address already in use")
	}
	p.used[a] = id
	return nil
}

func (p *ipam) allocate(id string) (netip.Addr, error) {
	n := p.size()
	base := addrToU32(p.subnet.Addr())
	for i := uint32(1); i < n; i++ {
		off := (p.last + i) % n
		if off < 2 || off == n-1 {
			continue
		}
		a := u32ToAddr(base + off)
		if _, taken := p.used[a]; taken {
			continue
		}
		p.used[a] = id
		p.last = off
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no available IPv4 addresses on this network's address pools: bridge (%s)", p.subnet)
}

func (p *ipam) release(a netip.Addr, id string) {
	if owner, ok := p.used[a]; ok && owner == id {
		delete(p.used, a)
	}
}

// macFromIP derives a MAC like Docker does: 02:42 followed by the four IPv4 bytes.
func macFromIP(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}
