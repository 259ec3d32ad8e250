// Package snapshot owns filesystem layers on disk: it unpacks layer tars once
// into <root>/layers/<chainID> (safely: no path may escape the layer), mounts
// a container's rootfs as overlayfs over those read-only layers, turns an
// upper directory back into a layer tar (whiteouts included), and provides the
// safe tar extraction and archiving used by `docker cp` (ExtractTar, ArchivePath,
// ArchivePathInRoot, ResolvePath).
package snapshot

import (
	"io"

	digest "github.com/opencontainers/go-digest"
)

// API is what the engine needs. *Store implements it.
type API interface {
	// Unpack makes sure the layer with this chain ID exists; open is called only when it does not,
	// and must return the uncompressed or gzip-compressed layer tar.
	Unpack(chainID digest.Digest, open func() (io.ReadCloser, error)) error
	HasLayer(chainID digest.Digest) bool
	// Prepare creates (or reuses) the writable layer for key and mounts rootfs = overlay(lowers…, upper).
	// lowers are chain IDs, bottom first. Returns the mounted rootfs path.
	Prepare(key string, lowers []digest.Digest) (rootfs string, err error)
	// Unmount unmounts the rootfs of key but keeps its upper dir (a stopped container keeps its changes).
	Unmount(key string) error
	// Remove unmounts and deletes the writable layer of key.
	Remove(key string) error
	// UpperDir returns the upper directory of key (for diffs and size).
	UpperDir(key string) string
	// Diff writes the changes in key's upper dir as a layer tar (OCI whiteouts, sorted entries).
	Diff(key string, w io.Writer) error
	// RemoveLayer deletes an unpacked read-only layer.
	RemoveLayer(chainID digest.Digest) error
}
