package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wharfhq/wharf/internal/registry"
)

// newRegistryCommand is `wharf registry`: the built-in OCI registry (CNCF distribution, filesystem
// storage), plus `garbage-collect` and `htpasswd`.
func newRegistryCommand() *cobra.Command {
	var cfg registry.ServerConfig
	cmd := &cobra.Command{
		Use:   "registry [OPTIONS]",
		Short: "Run an OCI registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
				return fmt.Errorf("--tls-cert and --tls-key go together")
			}
			ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			scheme := "http"
			if cfg.TLSCert != "" {
				scheme = "https"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wharf registry listening on %s://%s, storage %s\n", scheme, cfg.Addr, cfg.Root)
			return cfg.ListenAndServe(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:5000", "Address to listen on (HOST:PORT)")
	f.StringVar(&cfg.Root, "root", "/var/lib/wharf/registry", "Storage directory")
	f.StringVar(&cfg.Htpasswd, "htpasswd", "", "htpasswd file (bcrypt) enabling basic authentication")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file")
	f.BoolVar(&cfg.Debug, "debug", false, "Log every request")

	var root string
	var dryRun, untagged bool
	gc := &cobra.Command{
		Use:   "garbage-collect [OPTIONS]",
		Short: "Delete blobs no manifest references (run with the registry stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return registry.GarbageCollect(context.Background(), root, dryRun, untagged, cmd.OutOrStdout())
		},
	}
	gc.Flags().StringVar(&root, "root", "/var/lib/wharf/registry", "Storage directory")
	gc.Flags().BoolVarP(&dryRun, "dry-run", "d", false, "Only print what would be deleted")
	gc.Flags().BoolVarP(&untagged, "delete-untagged", "m", false, "Also delete manifests no tag references")

	var user, password string
	htp := &cobra.Command{
		Use:   "htpasswd -u USER -p PASSWORD FILE",
		Short: "Add or replace a user in an htpasswd file (bcrypt)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := registry.HtpasswdLine(user, password)
			if err != nil {
				return err
			}
			old, _ := os.ReadFile(args[0])
			out := ""
			for _, l := range splitLines(string(old)) {
				if l != "" && !hasUser(l, user) {
					out += l + "\n"
				}
			}
			return writeFileAtomic(args[0], []byte(out+line+"\n"), 0o600)
		},
	}
	htp.Flags().StringVarP(&user, "username", "u", "", "User")
	htp.Flags().StringVarP(&password, "password", "p", "", "Password")
	cmd.AddCommand(gc, htp)
	return cmd
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func hasUser(line, user string) bool {
	return len(line) > len(user) && line[:len(user)] == user && line[len(user)] == ':'
}
