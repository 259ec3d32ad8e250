package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *cli) newWaitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			ctx := context.Background()
			var errs []error
			for _, ctr := range args {
				res := api.ContainerWait(ctx, ctr, client.ContainerWaitOptions{})
				select {
				case r := <-res.Result:
					fmt.Fprintf(c.out, "%d\n", r.StatusCode)
				case err := <-res.Error:
					errs = append(errs, errors.New(daemonErrorText(err)))
				}
			}
			return errors.Join(errs...)
		},
	}
}
