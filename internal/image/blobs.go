package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const copyBufSize = 1 << 20

// compression of a blob, detected from its first bytes.
type compression int

const (
	uncompressed compression = iota
	gzipped
	zstded
)

func detect(head []byte) compression {
	switch {
	case len(head) >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 8:
		return gzipped
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return zstded
	}
	return uncompressed
}

// spooled is a blob received from a stream: in memory when small, else a temp file in <root>/tmp.
// Its digest, and for gzip its uncompressed digest (the layer DiffID) and size, are computed
// while it is being received, so the stream is read exactly once.
type spooled struct {
	mem    []byte
	path   string // temp file, when not in memory
	digest digest.Digest
	size   int64
	comp   compression
	diffID digest.Digest // uncompressed digest; equals digest when uncompressed
	usize  int64
	gzErr  error
}

func (b *spooled) open() (io.ReadCloser, error) {
	if b.path == "" {
		return io.NopCloser(bytes.NewReader(b.mem)), nil
	}
	return os.Open(b.path)
}

func (b *spooled) bytes(limit int64) ([]byte, error) {
	if b.path == "" {
		return b.mem, nil
	}
	if b.size > limit {
		return nil, invalidf("invalid archive: JSON file too large (%d bytes)", b.size)
	}
	return os.ReadFile(b.path)
}

func (b *spooled) layerInfo() (diffID digest.Digest, usize int64, mediaType string, err error) {
	switch b.comp {
	case gzipped:
		if b.gzErr != nil {
			return "", 0, "", invalidf("invalid gzip layer %s: %v", b.digest, b.gzErr)
		}
		return b.diffID, b.usize, ocispec.MediaTypeImageLayerGzip, nil
	case zstded:
		return "", 0, "", invalidf("layer %s: zstd-compressed layers are not supported", b.digest)
	}
	return b.digest, b.size, ocispec.MediaTypeImageLayer, nil
}

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.h.Write(p) }

func (c *countingHash) digest() digest.Digest {
	return digest.Digest("sha256:" + hex.EncodeToString(c.h.Sum(nil)))
}

// spool reads r to its end. Data goes to memory if it is at most memMax bytes (expectSize
// tells when known, -1 otherwise), else to a new temp file in dir.
func spool(r io.Reader, dir string, expectSize, memMax int64, buf []byte) (*spooled, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	out := &spooled{comp: detect(head)}
	raw := &countingHash{h: sha256.New()}
	var sink io.Writer
	var f *os.File
	var mem *bytes.Buffer
	if expectSize >= 0 && expectSize <= memMax {
		mem = bytes.NewBuffer(make([]byte, 0, expectSize))
		sink = mem
	} else {
		var err error
		f, err = os.CreateTemp(dir, "spool-")
		if err != nil {
			return nil, err
		}
		sink = f
	}
	ws := []io.Writer{sink, raw}
	var (
		pw   *io.PipeWriter
		done chan struct{}
		un   *countingHash
	)
	if out.comp == gzipped {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		done = make(chan struct{})
		un = &countingHash{h: sha256.New()}
		go func() {
			defer close(done)
			zr, err := gzip.NewReader(pr)
			if err == nil {
				_, err = io.CopyBuffer(un, zr, make([]byte, 256<<10))
			}
			if err != nil {
				out.gzErr = err
				io.Copy(io.Discard, pr) // keep the writer side flowing
			}
		}()
		ws = append(ws, pw)
	}
	_, err := io.CopyBuffer(io.MultiWriter(ws...), struct{ io.Reader }{br}, buf)
	if pw != nil {
		pw.CloseWithError(err)
		<-done
	}
	if err != nil {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
		return nil, err
	}
	out.digest, out.size = raw.digest(), raw.n
	if un != nil {
		out.diffID, out.usize = un.digest(), un.n
	} else {
		out.diffID, out.usize = out.digest, out.size
	}
	if f != nil {
		out.path = f.Name()
		if err := f.Close(); err != nil {
			os.Remove(out.path)
			return nil, err
		}
	} else {
		out.mem = mem.Bytes()
	}
	return out, nil
}

// install moves a received blob into blobs/sha256 under its digest: temp file in the same
// filesystem, fsync, rename. An existing blob with that digest is kept (content addressed).
// The caller fsyncs the blob directory once after a batch (syncBlobDir).
func (s *Store) install(b *spooled) error {
	dst := s.blobPath(b.digest)
	if _, err := os.Stat(dst); err == nil {
		if b.path != "" {
			os.Remove(b.path)
			b.path = ""
		}
		return nil
	}
	if b.path != "" {
		f, err := os.OpenFile(b.path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
		if err := os.Rename(b.path, dst); err != nil {
			return err
		}
		b.path = ""
		return nil
	}
	return s.writeBlobBytes(b.digest, b.mem)
}

// writeBlobBytes stores data under d atomically, verifying the digest.
func (s *Store) writeBlobBytes(d digest.Digest, data []byte) error {
	if got := digest.FromBytes(data); got != d {
		return fmt.Errorf("blob digest mismatch: expected %s, got %s", d, got)
	}
	dst := s.blobPath(d)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	f, err := os.CreateTemp(s.blobDir(), ".tmp-")
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (s *Store) syncBlobDir() error {
	d, err := os.Open(s.blobDir())
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// PutBlob stores the content of r as a blob, verifying it against expected when that is not
// empty (e.g. a layer or manifest fetched from a registry). It returns the blob's digest and size.
func (s *Store) PutBlob(r io.Reader, expected digest.Digest) (digest.Digest, int64, error) {
	if expected != "" {
		if err := validDigest(expected); err != nil {
			return "", 0, err
		}
	}
	b, err := spool(r, s.tmpDir(), -1, 0, make([]byte, copyBufSize))
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if b.path != "" {
			os.Remove(b.path)
		}
	}()
	if expected != "" && b.digest != expected {
		return "", 0, invalidf("blob digest mismatch: expected %s, got %s", expected, b.digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.install(b); err != nil {
		return "", 0, err
	}
	return b.digest, b.size, s.syncBlobDir()
}
