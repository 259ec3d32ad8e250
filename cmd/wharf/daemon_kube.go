package main

import (
	"context"
	"log/slog"

	"github.com/wharfhq/wharf/internal/api/docker"
	"github.com/wharfhq/wharf/internal/engine"
)

// startKube starts the Kubernetes API server. (Wired once the cluster packages land.)
func startKube(ctx context.Context, o daemonOptions, e *engine.Engine, log *slog.Logger) (func(), error) {
	return func() {}, nil
}

// registerBuilder plugs the image builder into the Docker API. (Wired once the builder lands.)
func registerBuilder(api *docker.Server, e *engine.Engine, log *slog.Logger) {}
