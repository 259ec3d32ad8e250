package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *cli) newNetworkCommand() *cobra.Command {
	return c.groupCommand("network", "Manage networks", c.newNetworkConnectCommand(), c.newNetworkCreateCommand(),
		c.newNetworkDisconnectCommand(), c.newNetworkInspectCommand(), c.newNetworkLsCommand(), c.newNetworkPruneCommand(),
		c.newNetworkRmCommand())
}

type networkCreateOptions struct {
	driver, ipamDriver        string
	subnets, gateways, ranges []string
	internal, attachable      bool
	ipv6                      bool
	labels, opts              []string
}

func (c *cli) newNetworkCreateCommand() *cobra.Command {
	var o networkCreateOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(o.subnets) > 1 || len(o.gateways) > 1 {
				return errors.New("only one IPv4 subnet per network is supported")
			}
			if len(o.gateways) > 0 && len(o.subnets) == 0 {
				return errors.New("every ip-range or gateway must have a corresponding subnet")
			}
			if len(o.ranges) > 0 {
				return errors.New("--ip-range is not supported")
			}
			var cfg []network.IPAMConfig
			if len(o.subnets) > 0 {
				p, err := netip.ParsePrefix(o.subnets[0])
				if err != nil {
					return fmt.Errorf("invalid subnet %s: %w", o.subnets[0], err)
				}
				ic := network.IPAMConfig{Subnet: p}
				if len(o.gateways) > 0 {
					gw, err := netip.ParseAddr(o.gateways[0])
					if err != nil {
						return fmt.Errorf("invalid gateway %s: %w", o.gateways[0], err)
					}
					ic.Gateway = gw
				}
				cfg = append(cfg, ic)
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			opts := client.NetworkCreateOptions{Driver: o.driver, Internal: o.internal, Attachable: o.attachable,
				IPAM: &network.IPAM{Driver: o.ipamDriver, Config: cfg}, Labels: kvStringsToMap(o.labels), Options: kvStringsToMap(o.opts)}
			if o.ipv6 {
				opts.EnableIPv6 = &o.ipv6
			}
			res, err := api.NetworkCreate(context.Background(), args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, res.ID)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.driver, "driver", "d", "bridge", "Driver to manage the Network")
	flags.StringVar(&o.ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	listVarP(flags, &o.subnets, "subnet", "", "Subnet in CIDR format that represents a network segment")
	listVarP(flags, &o.gateways, "gateway", "", "IPv4 or IPv6 Gateway for the master subnet")
	listVarP(flags, &o.ranges, "ip-range", "", "Allocate container ip from a sub-range")
	flags.BoolVar(&o.internal, "internal", false, "Restrict external access to the network")
	flags.BoolVar(&o.attachable, "attachable", false, "Enable manual container attachment")
	flags.BoolVar(&o.ipv6, "ipv6", false, "Enable or disable IPv6 networking")
	listVarP(flags, &o.labels, "label", "", "Set metadata on a network")
	listVarP(flags, &o.opts, "opt", "o", "Set driver specific options")
	return cmd
}

func (c *cli) newNetworkRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, name string) error {
				_, err := api.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
				if err != nil && force && strings.Contains(err.Error(), "not found") {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

func (c *cli) newNetworkPruneCommand() *cobra.Command {
	var force bool
	var filter filterOpt
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := c.signalContext()
			defer cancel()
			if !force {
				ok, err := confirm(ctx, c.in, c.out, "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?")
				if err != nil || !ok {
					return nil
				}
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			res, err := api.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: filter.Value()})
			if err != nil {
				return err
			}
			if len(res.Report.NetworksDeleted) > 0 {
				fmt.Fprintln(c.out, "Deleted Networks:\n"+strings.Join(res.Report.NetworksDeleted, "\n"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&filter, "filter", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

func (c *cli) newNetworkConnectCommand() *cobra.Command {
	var ip, ip6 string
	var aliases, links, linkLocal, driverOpts []string
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			es := &network.EndpointSettings{Aliases: aliases}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("invalid IPv4 address: %s", ip)
				}
				es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
			}
			if len(links) > 0 || ip6 != "" || len(linkLocal) > 0 {
				return errors.New("--link, --ip6 and --link-local-ip are not supported")
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			_, err = api.NetworkConnect(context.Background(), args[0], client.NetworkConnectOptions{Container: args[1], EndpointConfig: es})
			return err
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&ip, "ip", "", "IPv4 address (e.g., \"172.30.100.104\")")
	flags.StringVar(&ip6, "ip6", "", "IPv6 address (e.g., \"2001:db8::33\")")
	listVarP(flags, &aliases, "alias", "", "Add network-scoped alias for the container")
	listVarP(flags, &links, "link", "", "Add link to another container")
	listVarP(flags, &linkLocal, "link-local-ip", "", "Add a link-local address for the container")
	listVarP(flags, &driverOpts, "driver-opt", "", "driver options for the network")
	return cmd
}

func (c *cli) newNetworkDisconnectCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			_, err = api.NetworkDisconnect(context.Background(), args[0], client.NetworkDisconnectOptions{Container: args[1], Force: force})
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}

type networkLsOptions struct {
	quiet   bool
	noTrunc bool
	format  string
	filter  filterOpt
}

func (c *cli) newNetworkLsCommand() *cobra.Command {
	var o networkLsOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			res, err := api.NetworkList(context.Background(), client.NetworkListOptions{Filters: o.filter.Value()})
			if err != nil {
				return err
			}
			return writeNetworks(c.out, networkFormat(o.format, o.quiet), !o.noTrunc, res.Items)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only display network IDs")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate the output")
	flags.StringVar(&o.format, "format", "", formatHelp)
	flags.VarP(&o.filter, "filter", "f", `Provide filter values (e.g. "driver=bridge")`)
	return cmd
}

func networkFormat(source string, quiet bool) string {
	switch source {
	case "", tableFormatKey:
		if quiet {
			return quietFormat
		}
		return "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
	case "raw":
		if quiet {
			return `network_id: {{.ID}}`
		}
		return "network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n"
	}
	return source
}

var networkHeader = map[string]string{
	"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4", "IPv6": "IPV6",
	"Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
}

func writeNetworks(out interface{ Write([]byte) (int, error) }, format string, trunc bool, nets []network.Summary) error {
	sort.Slice(nets, func(i, j int) bool { return naturalLess(nets[i].Name, nets[j].Name) })
	items := make([]any, 0, len(nets))
	for _, n := range nets {
		items = append(items, &networkContext{trunc: trunc, n: n})
	}
	return writeFormatted(out, format, networkHeader, items)
}

type networkContext struct {
	trunc bool
	n     network.Summary
}

func (c *networkContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }
func (c *networkContext) ID() string {
	if c.trunc {
		return truncateID(c.n.ID)
	}
	return c.n.ID
}
func (c *networkContext) Name() string     { return c.n.Name }
func (c *networkContext) Driver() string   { return c.n.Driver }
func (c *networkContext) Scope() string    { return c.n.Scope }
func (c *networkContext) IPv4() string     { return strconv.FormatBool(c.n.EnableIPv4) }
func (c *networkContext) IPv6() string     { return strconv.FormatBool(c.n.EnableIPv6) }
func (c *networkContext) Internal() string { return strconv.FormatBool(c.n.Internal) }
func (c *networkContext) Labels() string {
	var l []string
	for k, v := range c.n.Labels {
		l = append(l, k+"="+v)
	}
	sort.Strings(l)
	return strings.Join(l, ",")
}
func (c *networkContext) Label(name string) string { return c.n.Labels[name] }
func (c *networkContext) CreatedAt() string        { return c.n.Created.String() }

func (c *cli) newNetworkInspectCommand() *cobra.Command {
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			return runInspect(c.out, args, format, func(ctx context.Context, ref string) (any, []byte, error) {
				res, err := api.NetworkInspect(ctx, ref, client.NetworkInspectOptions{Verbose: verbose})
				return res.Network, res.Raw, err
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics")
	return cmd
}
