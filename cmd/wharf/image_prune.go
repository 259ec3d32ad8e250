package main

import (
	"fmt"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *cli) newImagePruneCommand() *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runImagePrune(&o)
		},
	}
	cmd.Flags().BoolVarP(&o.all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&o.force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&o.filter, "filter", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

// imagePruneFilters adds dangling=… to the user's filters (only dangling images unless --all).
func imagePruneFilters(o *pruneOptions) client.Filters {
	f := o.filter.Value().Clone()
	if f == nil {
		f = client.Filters{}
	}
	if o.all {
		f.Add("dangling", "false")
	} else {
		f.Add("dangling", "true")
	}
	return f
}

func (c *cli) runImagePrune(o *pruneOptions) error {
	ctx, cancel := c.signalContext()
	defer cancel()
	warning := "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
	if o.all {
		warning = "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
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
	res, err := api.ImagePrune(ctx, client.ImagePruneOptions{Filters: imagePruneFilters(o)})
	if err != nil {
		return err
	}
	var reclaimed uint64
	if len(res.Report.ImagesDeleted) > 0 {
		var b strings.Builder
		b.WriteString("Deleted Images:\n")
		for _, d := range res.Report.ImagesDeleted {
			if d.Untagged != "" {
				b.WriteString("untagged: " + d.Untagged + "\n")
			}
			if d.Deleted != "" {
				b.WriteString("deleted: " + d.Deleted + "\n")
			}
		}
		fmt.Fprintln(c.out, b.String())
		reclaimed = res.Report.SpaceReclaimed
	}
	fmt.Fprintln(c.out, "Total reclaimed space:", units.HumanSize(float64(reclaimed)))
	return nil
}
