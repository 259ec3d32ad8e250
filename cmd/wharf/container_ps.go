package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

const defaultContainerTableFormat = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

type psOptions struct {
	quiet       bool
	size        bool
	sizeChanged bool
	all         bool
	noTrunc     bool
	latest      bool
	last        int
	format      string
	filter      filterOpt
}

func (c *cli) newPsCommand() *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.sizeChanged = cmd.Flags().Changed("size")
			return c.runPs(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only display container IDs")
	flags.BoolVarP(&o.size, "size", "s", false, "Display total file sizes")
	flags.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	flags.BoolVarP(&o.latest, "latest", "l", false, "Show the latest created container (includes all states)")
	flags.IntVarP(&o.last, "last", "n", -1, "Show n last created containers (includes all states)")
	flags.StringVar(&o.format, "format", "", formatHelp)
	flags.VarP(&o.filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

const formatHelp = `Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template`

// listOptions converts the flags to the API request.
func (o *psOptions) listOptions() (client.ContainerListOptions, error) {
	opts := client.ContainerListOptions{All: o.all, Limit: o.last, Size: o.size, Filters: o.filter.Value()}
	if o.latest && o.last == -1 {
		opts.Limit = 1
	}
	if o.format != "" {
		if _, err := parseTemplate(finalFormat(o.format)); err != nil {
			return opts, fmt.Errorf("failed to parse template: %w", err)
		}
		if !o.quiet && !opts.Size && !o.sizeChanged && strings.Contains(o.format, ".Size") {
			opts.Size = true
		}
	}
	return opts, nil
}

// containerFormat picks the template for ps.
func containerFormat(source string, quiet, size bool) string {
	switch source {
	case tableFormatKey, "":
		if quiet {
			return quietFormat
		}
		f := defaultContainerTableFormat
		if size {
			f += `\t{{.Size}}`
		}
		return f
	case "raw":
		if quiet {
			return `container_id: {{.ID}}`
		}
		f := "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\n" +
			"state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n"
		if size {
			f += `size: {{.Size}}\n`
		}
		return f
	default:
		if quiet {
			return quietFormat
		}
		return source
	}
}

func (c *cli) runPs(o *psOptions) error {
	if o.format != "" && o.quiet {
		fmt.Fprintln(c.err, "WARNING: Ignoring custom format, because both --format and --quiet are set.")
	}
	opts, err := o.listOptions()
	if err != nil {
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	res, err := api.ContainerList(context.Background(), opts)
	if err != nil {
		return err
	}
	return writeContainers(c.out, containerFormat(o.format, o.quiet, opts.Size), !o.noTrunc, res.Items)
}

var containerHeader = map[string]string{
	"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
	"Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
	"Platform": "PLATFORM",
}

func writeContainers(out interface{ Write([]byte) (int, error) }, format string, trunc bool, list []container.Summary) error {
	items := make([]any, 0, len(list))
	for i := range list {
		items = append(items, &containerContext{trunc: trunc, c: list[i]})
	}
	return writeFormatted(out, format, containerHeader, items)
}

// containerContext exposes one container to --format templates (field names as docker's).
type containerContext struct {
	trunc bool
	c     container.Summary
}

func (c *containerContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }

func (c *containerContext) ID() string {
	if c.trunc {
		return truncateID(c.c.ID)
	}
	return c.c.ID
}

func (c *containerContext) Names() string {
	names := make([]string, 0, len(c.c.Names))
	for _, n := range c.c.Names {
		names = append(names, strings.TrimPrefix(n, "/"))
	}
	if c.trunc {
		for _, n := range names {
			if !strings.Contains(n, "/") {
				names = []string{n}
				break
			}
		}
	}
	return strings.Join(names, ",")
}

func (c *containerContext) Image() string {
	if c.c.Image == "" {
		return "<no image>"
	}
	if c.trunc {
		if t := truncateID(c.c.ImageID); t != "" && t == truncateID(c.c.Image) {
			return t
		}
		if ref, err := reference.ParseNormalizedNamed(c.c.Image); err == nil {
			if nt, ok := ref.(reference.NamedTagged); ok {
				if tagged, err := reference.WithTag(reference.TrimNamed(nt), nt.Tag()); err == nil {
					return reference.FamiliarString(tagged)
				}
			} else {
				return reference.FamiliarString(reference.TrimNamed(ref))
			}
		}
	}
	return c.c.Image
}

func (c *containerContext) Command() string {
	cmd := c.c.Command
	if c.trunc {
		cmd = ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}

func (c *containerContext) CreatedAt() string { return time.Unix(c.c.Created, 0).String() }

func (c *containerContext) RunningFor() string {
	return units.HumanDuration(time.Now().UTC().Sub(time.Unix(c.c.Created, 0))) + " ago"
}

func (c *containerContext) Ports() string { return displayablePorts(c.c.Ports) }

func (c *containerContext) State() string { return string(c.c.State) }

func (c *containerContext) Status() string { return c.c.Status }

func (c *containerContext) Size() string {
	srw := units.HumanSizeWithPrecision(float64(c.c.SizeRw), 3)
	if c.c.SizeRootFs > 0 {
		return fmt.Sprintf("%s (virtual %s)", srw, units.HumanSizeWithPrecision(float64(c.c.SizeRootFs), 3))
	}
	return srw
}

func (c *containerContext) Labels() string {
	if c.c.Labels == nil {
		return ""
	}
	l := make([]string, 0, len(c.c.Labels))
	for k, v := range c.c.Labels {
		l = append(l, k+"="+v)
	}
	sort.Strings(l)
	return strings.Join(l, ",")
}

func (c *containerContext) Label(name string) string {
	if c.c.Labels == nil {
		return ""
	}
	return c.c.Labels[name]
}

func (c *containerContext) Mounts() string {
	var names []string
	for _, m := range c.c.Mounts {
		name := m.Name
		if name == "" {
			name = m.Source
		}
		if c.trunc {
			name = ellipsis(name, 15)
		}
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

func (c *containerContext) LocalVolumes() string {
	n := 0
	for _, m := range c.c.Mounts {
		if m.Driver == "local" {
			n++
		}
	}
	return strconv.Itoa(n)
}

func (c *containerContext) Networks() string {
	if c.c.NetworkSettings == nil {
		return ""
	}
	nets := make([]string, 0, len(c.c.NetworkSettings.Networks))
	for k := range c.c.NetworkSettings.Networks {
		nets = append(nets, k)
	}
	sort.Strings(nets)
	return strings.Join(nets, ",")
}

// displayablePorts renders ports like docker ps: consecutive ports grouped into ranges,
// "0.0.0.0:8080->80/tcp", unpublished as "80/tcp".
func displayablePorts(ports []container.PortSummary) string {
	type group struct{ first, last uint16 }
	groups := map[string]*group{}
	var result, hostMappings, keys []string
	ps := append([]container.PortSummary(nil), ports...)
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.PrivatePort != b.PrivatePort {
			return a.PrivatePort < b.PrivatePort
		}
		if a.IP != b.IP {
			return a.IP.String() < b.IP.String()
		}
		if a.PublicPort != b.PublicPort {
			return a.PublicPort < b.PublicPort
		}
		return a.Type < b.Type
	})
	for _, p := range ps {
		cur := p.PrivatePort
		key := p.Type
		if p.IP.IsValid() {
			ip := p.IP.String()
			if p.PublicPort != cur {
				hostMappings = append(hostMappings, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(ip, strconv.Itoa(int(p.PublicPort))), p.PrivatePort, p.Type))
				continue
			}
			key = ip + "/" + p.Type
		}
		g := groups[key]
		if g == nil {
			groups[key] = &group{first: cur, last: cur}
			keys = append(keys, key)
			continue
		}
		if cur == g.last+1 {
			g.last = cur
			continue
		}
		result = append(result, formGroup(key, g.first, g.last))
		groups[key] = &group{first: cur, last: cur}
	}
	for _, k := range keys {
		g := groups[k]
		result = append(result, formGroup(k, g.first, g.last))
	}
	result = append(result, hostMappings...)
	return strings.Join(result, ", ")
}

func formGroup(key string, start, last uint16) string {
	ip, typ := "", key
	if i := strings.LastIndex(key, "/"); i >= 0 && strings.Contains(key, "/") && key[:i] != "" {
		ip, typ = key[:i], key[i+1:]
	}
	g := strconv.Itoa(int(start))
	if start != last {
		g = fmt.Sprintf("%s-%d", g, last)
	}
	if ip != "" {
		g = fmt.Sprintf("%s->%s", net.JoinHostPort(ip, g), g)
	}
	return g + "/" + typ
}
