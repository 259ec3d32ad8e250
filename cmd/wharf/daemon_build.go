package main

import (
	"log/slog"

	"github.com/wharfhq/wharf/internal/api/docker"
	"github.com/wharfhq/wharf/internal/engine"
)

// registerBuilder plugs the image builder into the Docker API. (Wired once the builder lands.)
func registerBuilder(api *docker.Server, e *engine.Engine, log *slog.Logger) {}
