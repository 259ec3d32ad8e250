package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *cli) newVolumeCommand() *cobra.Command {
	return c.groupCommand("volume", "Manage volumes",
		c.newVolumeCreateCommand(), c.newVolumeInspectCommand(), c.newVolumeLsCommand(),
		c.newVolumePruneCommand(), c.newVolumeRmCommand())
}

type volumeCreateOptions struct {
	name       string
	driver     string
	driverOpts []string
	labels     []string
}

func (c *cli) newVolumeCreateCommand() *cobra.Command {
	var o volumeCreateOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  requiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.name != "" {
					return errors.New("conflicting options: cannot specify a volume-name through both --name and as a positional arg")
				}
				o.name = args[0]
			}
			req, err := o.request()
			if err != nil {
				return err
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			res, err := api.VolumeCreate(context.Background(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, res.Volume.Name)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.driver, "driver", "d", "local", "Specify volume driver name")
	flags.StringVar(&o.name, "name", "", "Specify volume name")
	_ = flags.MarkHidden("name")
	listVarP(flags, &o.driverOpts, "opt", "o", "Set driver specific options")
	listVarP(flags, &o.labels, "label", "", "Set metadata for a volume")
	return cmd
}

func (o *volumeCreateOptions) request() (client.VolumeCreateOptions, error) {
	opts, err := parseKVMap(o.driverOpts, "opt")
	if err != nil {
		return client.VolumeCreateOptions{}, err
	}
	return client.VolumeCreateOptions{Name: o.name, Driver: o.driver, DriverOpts: opts, Labels: kvStringsToMap(o.labels)}, nil
}

func (c *cli) newVolumeInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			return runInspect(c.out, args, format, inspectVolumeFunc(api))
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

type volumeLsOptions struct {
	quiet  bool
	format string
	filter filterOpt
}

func (c *cli) newVolumeLsCommand() *cobra.Command {
	var o volumeLsOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			res, err := api.VolumeList(context.Background(), client.VolumeListOptions{Filters: o.filter.Value()})
			if err != nil {
				return err
			}
			if err := writeVolumes(c.out, volumeFormat(o.format, o.quiet), res.Items); err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(c.err, w)
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only display volume names")
	flags.StringVar(&o.format, "format", "", formatHelp)
	flags.VarP(&o.filter, "filter", "f", "Provide filter values (e.g. \"dangling=true\")")
	return cmd
}

func volumeFormat(source string, quiet bool) string {
	switch source {
	case "", tableFormatKey:
		if quiet {
			return "{{.Name}}"
		}
		return "table {{.Driver}}\t{{.Name}}"
	case "raw":
		if quiet {
			return `name: {{.Name}}`
		}
		return "name: {{.Name}}\ndriver: {{.Driver}}\n"
	}
	return source
}

var volumeHeader = map[string]string{
	"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
	"Links": "LINKS", "Size": "SIZE", "Status": "STATUS",
}

func writeVolumes(out interface{ Write([]byte) (int, error) }, format string, vols []volume.Volume) error {
	sort.Slice(vols, func(i, j int) bool { return naturalLess(vols[i].Name, vols[j].Name) })
	items := make([]any, 0, len(vols))
	for _, v := range vols {
		items = append(items, &volumeContext{v: v})
	}
	return writeFormatted(out, format, volumeHeader, items)
}

type volumeContext struct{ v volume.Volume }

func (c *volumeContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }
func (c *volumeContext) Name() string                 { return c.v.Name }
func (c *volumeContext) Driver() string               { return c.v.Driver }
func (c *volumeContext) Scope() string                { return c.v.Scope }
func (c *volumeContext) Mountpoint() string           { return c.v.Mountpoint }
func (c *volumeContext) Labels() string {
	var l []string
	for k, v := range c.v.Labels {
		l = append(l, k+"="+v)
	}
	sort.Strings(l)
	return strings.Join(l, ",")
}
func (c *volumeContext) Label(name string) string { return c.v.Labels[name] }
func (c *volumeContext) Links() string {
	if c.v.UsageData == nil {
		return "N/A"
	}
	return fmt.Sprintf("%d", c.v.UsageData.RefCount)
}
func (c *volumeContext) Size() string {
	if c.v.UsageData == nil {
		return "N/A"
	}
	return units.HumanSize(float64(c.v.UsageData.Size))
}
func (c *volumeContext) Status() string { return "" }

func (c *cli) newVolumeRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, name string) error {
				_, err := api.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: force})
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func (c *cli) newVolumePruneCommand() *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := c.signalContext()
			defer cancel()
			warning := "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"
			if o.all {
				warning = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?"
			}
			if !o.force {
				ok, err := confirm(ctx, c.in, c.out, warning)
				if err != nil || !ok {
					return nil
				}
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			res, err := api.VolumePrune(ctx, client.VolumePruneOptions{All: o.all, Filters: o.filter.Value()})
			if err != nil {
				return err
			}
			var reclaimed uint64
			if len(res.Report.VolumesDeleted) > 0 {
				fmt.Fprintln(c.out, "Deleted Volumes:\n"+strings.Join(res.Report.VolumesDeleted, "\n")+"\n")
				reclaimed = res.Report.SpaceReclaimed
			}
			fmt.Fprintln(c.out, "Total reclaimed space:", units.HumanSize(float64(reclaimed)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&o.force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&o.filter, "filter", `Provide filter values (e.g. "label=<label>")`)
	return cmd
}
