// Package network owns container networking on the host: the default bridge
// ("bridge", wharf0), IPAM that avoids subnets already routed on the host, a
// network namespace and veth pair per container, outbound NAT and published
// ports in nftables (table "wharf", everything tagged as Wharf's), and
// reconciliation after a crash.
package network

import (
	"net"
	"time"
)

// PortBinding publishes ContainerPort/Proto on HostIP:HostPort. HostPort 0 = pick a free ephemeral port.
type PortBinding struct {
	HostIP        string // "" = all addresses
	HostPort      uint16
	ContainerPort uint16
	Proto         string // "tcp" or "udp"
}

// AttachRequest asks for a container's network.
type AttachRequest struct {
	ContainerID string
	Network     string // "bridge" (also "default", ""), "host", "none", "container:<full id>", a user network name or ID
	Ports       []PortBinding
	IP          net.IP   // requested address or nil
	Name        string   // container name (without "/"), resolvable by the embedded DNS of user networks
	Aliases     []string // extra DNS names on this network (user networks only)
	// DNS are the container's own resolvers (--dns: "ip" or "ip:port"). On a user network the embedded DNS
	// server forwards the names it does not know to these instead of the host's resolvers (as dockerd).
	DNS []string
	// NetNSReady, if set, is called (holding no lock of the caller's) as soon as the container's own
	// network namespace exists, before its interfaces are made: a runtime may start joining it meanwhile,
	// as long as the container's process does not run before Attach returns. Not called for host, none
	// and container: modes, whose Attach makes nothing slow.
	NetNSReady func(path string)
}

// ConnectRequest connects a container whose network is set up (Attach) to one more network.
type ConnectRequest struct {
	ContainerID string
	Network     string // user network name or ID, or "bridge"
	IP          net.IP
	Aliases     []string
}

// Attachment is a container's network as set up.
type Attachment struct {
	Network   string
	NetNSPath string // bind-mounted netns the runtime joins by path; "host" → the host's (for "none": a netns with only lo)
	IP        net.IP
	PrefixLen int
	Gateway   net.IP
	MAC       string
	Ports     []PortBinding // with host ports resolved
	BridgeIP  net.IP
	NetworkID string   // ID of a bridged network ("bridge" or user-defined)
	IfName    string   // interface in the container ("eth0", "eth1", ...)
	Aliases   []string // DNS aliases on this network
	DNS       net.IP   // embedded DNS server for the container's resolv.conf (user networks), else nil
	// HostGateway is what --add-host NAME:host-gateway maps to: the default bridge's gateway, whatever the
	// container's network (dockerd: docker0's address).
	HostGateway net.IP
}

// Info describes a network (for /networks).
type Info struct {
	ID, Name, Driver string
	Subnet, Gateway  string
	Bridge           string // link name ("" for host and none)
	BuiltIn          bool   // bridge, host, none
	Internal         bool
	Labels, Options  map[string]string
	Created          time.Time
}

// NetworkConfig is a user-defined network to create (driver bridge).
type NetworkConfig struct {
	Name            string
	Subnet, Gateway string // optional; Subnet empty = picked by IPAM
	Internal        bool
	Labels, Options map[string]string
}

// API is what the engine needs. *Manager implements it.
type API interface {
	Attach(req AttachRequest) (*Attachment, error)
	// Detach removes everything Attach made for the container (netns, veth, port rules, address lease).
	Detach(containerID string) error
	// Reconcile keeps the attachments of the listed containers (re-adding missing rules) and removes the rest.
	Reconcile(keep map[string]bool) error
	Networks() []Info

	// CreateNetwork makes a user-defined bridge network (bridge, subnet, firewall rules, DNS server).
	CreateNetwork(cfg NetworkConfig) (Info, error)
	// RemoveNetwork removes a user-defined network that has no endpoints.
	RemoveNetwork(ref string) error
	// Network finds a network by name, ID or unique ID prefix.
	Network(ref string) (Info, error)
	// Connect adds an interface on another network to a container's namespace; Disconnect removes it (also
	// the container's first network, or "none": the namespace stays, with the other interfaces or only lo).
	Connect(req ConnectRequest) (*Attachment, error)
	Disconnect(containerID, network string) error
	// Attachments lists a container's interfaces on bridged networks (primary first).
	Attachments(containerID string) []*Attachment
}
