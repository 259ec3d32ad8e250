package main

import (
	"context"
	"fmt"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type pruneOptions struct {
	force  bool
	all    bool
	filter filterOpt
}

func (c *cli) newContainerPruneCommand() *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runContainerPrune(&o)
		},
	}
	cmd.Flags().BoolVarP(&o.force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&o.filter, "filter", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

func (c *cli) runContainerPrune(o *pruneOptions) error {
	ctx, cancel := c.signalContext()
	defer cancel()
	if !o.force {
		ok, err := confirm(ctx, c.in, c.out, "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?")
		if err != nil || !ok {
			return nil
		}
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	res, err := api.ContainerPrune(ctx, client.ContainerPruneOptions{Filters: o.filter.Value()})
	if err != nil {
		return err
	}
	var reclaimed uint64
	if len(res.Report.ContainersDeleted) > 0 {
		var b strings.Builder
		b.WriteString("Deleted Containers:\n")
		for _, id := range res.Report.ContainersDeleted {
			b.WriteString(id + "\n")
		}
		fmt.Fprintln(c.out, b.String())
		reclaimed = res.Report.SpaceReclaimed
	}
	fmt.Fprintln(c.out, "Total reclaimed space:", units.HumanSize(float64(reclaimed)))
	return nil
}

var _ = context.Background
