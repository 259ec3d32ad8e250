package snapshot

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// A real rootfs tarball made by scripts/base-images.sh, when present.
const benchRootfs = "/var/cache/wharf/base-images/debian-bookworm-slim.tar"

func BenchmarkUnpackRootfs(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	st, err := os.Stat(benchRootfs)
	if err != nil {
		b.Skip("no rootfs tarball; run scripts/base-images.sh --no-load")
	}
	b.SetBytes(st.Size())
	for i := 0; i < b.N; i++ {
		s, err := New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		id := digest.FromString(benchRootfs)
		if err := s.Unpack(id, func() (io.ReadCloser, error) { return os.Open(benchRootfs) }); err != nil {
			b.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(s.LayerDir(id), "usr/bin/bash")); err != nil {
			b.Fatal(err)
		}
	}
}
