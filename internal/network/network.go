// Package network owns container networking on the host: the default bridge
// ("bridge", wharf0), IPAM that avoids subnets already routed on the host, a
// network namespace and veth pair per container, outbound NAT and published
// ports in nftables (table "wharf", everything tagged as Wharf's), and
// reconciliation after a crash.
package network

import (
	"net"
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
	Network     string // "bridge" (also "default", ""), "host", "none", "container:<full id>"
	Ports       []PortBinding
	IP          net.IP // requested address or nil
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
}

// Info describes a network (for /networks).
type Info struct {
	ID, Name, Driver string
	Subnet, Gateway  string
}

// API is what the engine needs. *Manager implements it.
type API interface {
	Attach(req AttachRequest) (*Attachment, error)
	// Detach removes everything Attach made for the container (netns, veth, port rules, address lease).
	Detach(containerID string) error
	// Reconcile keeps the attachments of the listed containers (re-adding missing rules) and removes the rest.
	Reconcile(keep map[string]bool) error
	Networks() []Info
}
