// Package shimbin carries, inside the wharf binary, the small programs that
// containers re-exec (their init and their shim: internal/runtime/cmd/wharf-shim;
// the monitor the shim becomes once the container runs:
// internal/runtime/cmd/wharf-monitor).
// Wharf ships as one binary, but a re-exec of the whole daemon would run every
// dependency's package initialisation twice per container start and keep ~1.5 MB
// more per shim; `make build` embeds the small one, and the daemon installs it
// under its exec root at start. Builds without it (plain `go build`) fall back to
// re-exec'ing the wharf binary itself.
package shimbin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed all:payload
var payload embed.FS

const (
	name        = "wharf-shim"
	monitorName = "wharf-monitor"
)

// Embedded reports whether this build carries the shim.
func Embedded() bool {
	_, err := fs.Stat(payload, "payload/"+name)
	return err == nil
}

// Install writes the embedded shim to dir/wharf-shim and the monitor beside it (unless identical ones are
// there) and returns the shim's path; "" when this build carries none. The writes are atomic: temp file,
// fsync, rename; the monitor goes first, so a shim never looks for one that is half there.
func Install(dir string) (string, error) {
	if _, err := install(dir, monitorName); err != nil {
		return "", err
	}
	return install(dir, name)
}

func install(dir, name string) (string, error) {
	data, err := payload.ReadFile("payload/" + name)
	if err != nil {
		return "", nil
	}
	path := filepath.Join(dir, name)
	if cur, err := os.ReadFile(path); err == nil && sha256.Sum256(cur) == sha256.Sum256(data) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.ReadFrom(bytes.NewReader(data)); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	return path, nil
}
