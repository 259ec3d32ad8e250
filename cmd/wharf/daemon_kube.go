package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/wharfhq/wharf/internal/cluster/apiserver"
	"github.com/wharfhq/wharf/internal/engine"
)

// startKube starts the Kubernetes API server on the daemon's data root and merges its kubeconfig into
// ~/.kube/config as context "wharf" (current only when the user has none).
func startKube(ctx context.Context, o daemonOptions, e *engine.Engine, log *slog.Logger) (func(), error) {
	srv, err := apiserver.New(apiserver.Options{DataRoot: o.dataRoot, Port: o.kubePort, DatastoreEndpoint: o.datastoreEndpoint,
		Logf: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }})
	if err != nil {
		return nil, fmt.Errorf("kubernetes API: %w", err)
	}
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(kctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("kubernetes API: %w", err)
	}
	log.Info("Kubernetes API listening", "url", srv.URL(), "kubeconfig", srv.KubeconfigPath())
	if home, err := os.UserHomeDir(); err == nil {
		if err := apiserver.MergeKubeconfig(srv.KubeconfigPath(), home, false); err != nil {
			log.Warn("could not merge the kubeconfig into ~/.kube/config", "err", err)
		}
	}
	return func() { cancel(); <-done }, nil
}
