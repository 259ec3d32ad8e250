package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *cli) newPortCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  requiresRangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			port := ""
			if len(args) > 1 {
				port = args[1]
			}
			return c.runPort(args[0], port)
		},
	}
}

func (c *cli) runPort(ctr, port string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	res, err := api.ContainerInspect(context.Background(), ctr, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	var ports network.PortMap
	if res.Container.NetworkSettings != nil {
		ports = res.Container.NetworkSettings.Ports
	}
	lines, err := formatPorts(ports, port, ctr)
	if err != nil {
		return err
	}
	if len(lines) > 0 {
		fmt.Fprintln(c.out, strings.Join(lines, "\n"))
	}
	return nil
}

// formatPorts renders `wharf port` output: all mappings as "80/tcp -> 0.0.0.0:8080", or for one port just the
// host addresses; sorted naturally.
func formatPorts(ports network.PortMap, port, ctr string) ([]string, error) {
	var out []string
	if port != "" {
		num, proto, _ := strings.Cut(port, "/")
		if proto == "" {
			proto = "tcp"
		}
		if _, err := strconv.ParseUint(num, 10, 16); err != nil {
			return nil, fmt.Errorf("Error: invalid port (%s): %w", num, err)
		}
		p, err := network.ParsePort(num + "/" + proto)
		if err != nil {
			return nil, err
		}
		frontends, ok := ports[p]
		if !ok || len(frontends) == 0 {
			return nil, fmt.Errorf("Error: No public port '%s' published for %s", port, ctr)
		}
		for _, f := range frontends {
			out = append(out, net.JoinHostPort(hostIPString(f), f.HostPort))
		}
	} else {
		for from, frontends := range ports {
			for _, f := range frontends {
				out = append(out, fmt.Sprintf("%s -> %s", from, net.JoinHostPort(hostIPString(f), f.HostPort)))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return naturalLess(out[i], out[j]) })
	return out, nil
}

func hostIPString(b network.PortBinding) string {
	if !b.HostIP.IsValid() {
		return ""
	}
	return b.HostIP.String()
}

// naturalLess compares strings with digit runs compared as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		ad, bd := isDigit(a[0]), isDigit(b[0])
		switch {
		case ad && bd:
			ia, ib := 0, 0
			for ia < len(a) && isDigit(a[ia]) {
				ia++
			}
			for ib < len(b) && isDigit(b[ib]) {
				ib++
			}
			na, _ := strconv.ParseUint(a[:ia], 10, 64)
			nb, _ := strconv.ParseUint(b[:ib], 10, 64)
			if na != nb {
				return na < nb
			}
			a, b = a[ia:], b[ib:]
		default:
			if a[0] != b[0] {
				return a[0] < b[0]
			}
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
