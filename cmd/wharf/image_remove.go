package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type rmiOptions struct {
	force   bool
	noPrune bool
}

func (c *cli) newRmiCommand() *cobra.Command {
	var o rmiOptions
	cmd := &cobra.Command{
		Use:   "rmi [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runRmi(args, &o)
		},
	}
	cmd.Flags().BoolVarP(&o.force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&o.noPrune, "no-prune", false, "Do not delete untagged parents")
	return cmd
}

func (c *cli) runRmi(images []string, o *rmiOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var errs []string
	fatal := false
	for _, img := range images {
		res, err := api.ImageRemove(ctx, img, client.ImageRemoveOptions{Force: o.force, PruneChildren: !o.noPrune})
		if err != nil {
			if !isNotFound(err) {
				fatal = true
			}
			errs = append(errs, daemonErrorText(err))
			continue
		}
		for _, d := range res.Items {
			if d.Deleted != "" {
				fmt.Fprintf(c.out, "Deleted: %s\n", d.Deleted)
			} else {
				fmt.Fprintf(c.out, "Untagged: %s\n", d.Untagged)
			}
		}
	}
	if len(errs) > 0 {
		msg := strings.Join(errs, "\n")
		if !o.force || fatal {
			return errors.New(msg)
		}
		fmt.Fprintln(c.err, msg)
	}
	return nil
}
