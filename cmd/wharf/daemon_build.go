package main

import (
	"log/slog"

	"github.com/wharfhq/wharf/internal/api/docker"
	"github.com/wharfhq/wharf/internal/build"
	"github.com/wharfhq/wharf/internal/engine"
)

// registerBuilder plugs the image builder (Dockerfile builds through POST /build) into the Docker API.
func registerBuilder(api *docker.Server, e *engine.Engine, log *slog.Logger) {
	b, err := build.New(e, log)
	if err != nil {
		log.Error("image builds are disabled", "err", err)
		return
	}
	b.Registry = docker.RegistryClient // FROM pulls with the daemon's client (--insecure-registry)
	api.Builder = b.ServeBuild
	api.BuildPrune = b.PruneCache
}
