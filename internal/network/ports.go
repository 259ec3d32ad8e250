package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrPortAllocated: the host port is already published by another Wharf container.
	ErrPortAllocated = errors.New("port is already allocated")
	// ErrAddressInUse: another process on the host holds the port.
	ErrAddressInUse = errors.New("address already in use")
)

// portError carries Docker's exact wording and unwraps to ErrPortAllocated or ErrAddressInUse.
type portError struct {
	msg  string
	kind error
}

func (e *portError) Error() string { return e.msg }
func (e *portError) Unwrap() error { return e.kind }

func endpointName(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// driverFailed wraps an error the way Docker's bridge driver reports it.
func driverFailed(containerID string, kind error, format string, args ...any) error {
	return &portError{
		msg:  fmt.Sprintf("driver failed programming external connectivity on endpoint %s (%s): ", endpointName(containerID), containerID) + fmt.Sprintf(format, args...),
		kind: kind,
	}
}

var anyV4 = netip.IPv4Unspecified()

// portKey identifies a published host port.
type portKey struct {
	proto string
	ip    netip.Addr // 0.0.0.0 = all addresses
	port  uint16
}

func (k portKey) String() string {
	return net.JoinHostPort(k.ip.String(), strconv.Itoa(int(k.port)))
}

func (k portKey) conflicts(o portKey) bool {
	return k.proto == o.proto && k.port == o.port && (k.ip == o.ip || k.ip == anyV4 || o.ip == anyV4)
}

// normalizePorts validates bindings and fills defaults (proto "tcp", HostIP "0.0.0.0" when empty).
func normalizePorts(in []PortBinding) ([]PortBinding, error) {
	out := make([]PortBinding, 0, len(in))
	for _, p := range in {
		p.Proto = strings.ToLower(p.Proto)
		if p.Proto == "" {
			p.Proto = "tcp"
		}
		if p.Proto != "tcp" && p.Proto != "udp" {
			return nil, fmt.Errorf("invalid proto '%s'", p.Proto)
		}
		if p.ContainerPort == 0 {
			return nil, fmt.Errorf("invalid containerPort: 0")
		}
		if p.HostIP == "" {
			p.HostIP = "0.0.0.0"
		}
		a, err := netip.ParseAddr(p.HostIP)
		if err != nil {
			return nil, fmt.Errorf("invalid IP address: %s", p.HostIP)
		}
		if !a.Unmap().Is4() {
			return nil, fmt.Errorf("invalid host IP %s: IPv6 port publishing is not supported", p.HostIP)
		}
		p.HostIP = a.Unmap().String()
		out = append(out, p)
	}
	return out, nil
}

// holdPort binds the host port so that no other process can take it while it is published (Docker does the
// same with its proxy/dummy listener). port 0 lets the kernel pick a free ephemeral port. The TCP socket
// listens (so that it also conflicts with SO_REUSEADDR binders) but is never accepted on: the DNAT rules
// divert IPv4 traffic before it could reach it.
func holdPort(proto string, ip netip.Addr, port uint16) (io.Closer, uint16, error) {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
	switch proto {
	case "tcp":
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return nil, 0, err
		}
		return l, uint16(l.Addr().(*net.TCPAddr).Port), nil
	case "udp":
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, 0, err
		}
		return c, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	return nil, 0, fmt.Errorf("invalid proto '%s'", proto)
}

// portHold is a published port held by the Manager.
type portHold struct {
	key   portKey
	owner string
	c     io.Closer
}

// reservePorts checks and holds every binding of a request. On error nothing stays held.
// Caller holds m.mu.
func (m *Manager) reservePorts(id string, ports []PortBinding) (resolved []PortBinding, holds []*portHold, err error) {
	defer func() {
		if err != nil {
			for _, h := range holds {
				h.c.Close()
			}
			holds = nil
		}
	}()
	resolved = make([]PortBinding, len(ports))
	for i, p := range ports {
		ip := netip.MustParseAddr(p.HostIP)
		k := portKey{proto: p.Proto, ip: ip, port: p.HostPort}
		if p.HostPort != 0 {
			if m.portAllocated(k) || conflictsWithin(k, holds) {
				return nil, nil, driverFailed(id, ErrPortAllocated, "Bind for %s failed: port is already allocated", k)
			}
		}
		var (
			c    io.Closer
			port uint16
		)
		// An ephemeral pick may land on a port another Wharf container holds on a different address
		// (e.g. 127.0.0.1:P vs 0.0.0.0:P both free at the socket level for UDP): retry a few times.
		for try := 0; ; try++ {
			c, port, err = holdPort(p.Proto, ip, p.HostPort)
			if err != nil {
				if errors.Is(err, unix.EADDRINUSE) {
					return nil, nil, driverFailed(id, ErrAddressInUse, "Error starting userland proxy: %v", err)
				}
				return nil, nil, driverFailed(id, err, "Error starting userland proxy: %v", err)
			}
			k.port = port
			if p.HostPort != 0 || (!m.portAllocated(k) && !conflictsWithin(k, holds)) {
				break
			}
			c.Close()
			if try == 8 {
				return nil, nil, driverFailed(id, ErrPortAllocated, "Bind for %s failed: port is already allocated", k)
			}
		}
		holds = append(holds, &portHold{key: k, owner: id, c: c})
		p.HostPort = port
		resolved[i] = p
	}
	return resolved, holds, nil
}

func (m *Manager) portAllocated(k portKey) bool {
	for _, hs := range m.holds {
		if conflictsWithin(k, hs) {
			return true
		}
	}
	return false
}

func conflictsWithin(k portKey, holds []*portHold) bool {
	for _, h := range holds {
		if h.key.conflicts(k) {
			return true
		}
	}
	return false
}

func closeHolds(hs []*portHold) {
	for _, h := range hs {
		if h.c != nil {
			h.c.Close()
		}
	}
}
