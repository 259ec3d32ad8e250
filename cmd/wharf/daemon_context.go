package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
)

// ensureDockerContext creates the docker CLI context "wharf" pointing at host, if the user has none by
// that name, so `docker context use wharf` (or `docker --context wharf …`) reaches this daemon.
func ensureDockerContext(host string) error {
	home, err := os.UserHomeDir()
	if err != nil {
		return err
	}
	cfgDir := os.Getenv("DOCKER_CONFIG")
	if cfgDir == "" {
		cfgDir = filepath.Join(home, ".docker")
	}
	sum := sha256.Sum256([]byte("wharf"))
	dir := filepath.Join(cfgDir, "contexts", "meta", hex.EncodeToString(sum[:]))
	path := filepath.Join(dir, "meta.json")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	meta := map[string]any{
		"Name":      "wharf",
		"Metadata":  map[string]string{"Description": "Wharf"},
		"Endpoints": map[string]any{"docker": map[string]any{"Host": host, "SkipTLSVerify": false}},
	}
	b, _ := json.Marshal(meta)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
