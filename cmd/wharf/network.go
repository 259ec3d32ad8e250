package main

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *cli) newNetworkCommand() *cobra.Command {
	return c.groupCommand("network", "Manage networks", c.newNetworkInspectCommand(), c.newNetworkLsCommand())
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
