package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/wharfhq/wharf/internal/cluster/apiserver"
)

// kubeconfigOptions are `wharf kubeconfig`'s flags.
type kubeconfigOptions struct {
	dataRoot string
	use      bool
}

func newKubeconfigCommand() *cobra.Command {
	var o kubeconfigOptions
	cmd := &cobra.Command{
		Use:   "kubeconfig [OPTIONS]",
		Short: "Merge Wharf's kubeconfig into ~/.kube/config as context \"wharf\" and print its path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(o.dataRoot, "kubeconfig.yaml")
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("no kubeconfig at %s: start `wharf daemon` first", path)
			}
			home, err := os.UserHomeDir()
			if err != nil {
				return err
			}
			if err := apiserver.MergeKubeconfig(path, home, o.use); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.dataRoot, "data-root", "/var/lib/wharf", "Root directory of persistent Wharf state")
	cmd.Flags().BoolVar(&o.use, "use", false, "Also make \"wharf\" the current context")
	return cmd
}
