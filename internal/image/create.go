package image

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// pendingImage is an image ready to be recorded once its blobs are in place.
type pendingImage struct {
	raw    []byte
	id     digest.Digest
	layers []layerRecord
	refs   []reference.Named // tags or canonical references, normalised
	parent digest.Digest
}

// commit installs blobs, then writes configs, then records images and references in one
// metadata transaction. Until that transaction commits nothing is visible; a crash before it
// leaves only orphan blobs/temp files, which Open removes.
func (s *Store) commit(blobs []*spooled, imgs []*pendingImage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range blobs {
		if err := s.install(b); err != nil {
			return err
		}
	}
	for _, p := range imgs {
		if err := s.writeBlobBytes(p.id, p.raw); err != nil {
			return err
		}
		for _, l := range p.layers {
			if _, err := os.Stat(s.blobPath(l.Blob)); err != nil {
				return fmt.Errorf("layer blob %s: %w", l.Blob, err)
			}
		}
	}
	if err := s.syncBlobDir(); err != nil {
		return err
	}
	now := time.Now().UTC()
	return s.db.Update(func(tx *bolt.Tx) error {
		ib, rb := tx.Bucket(bucketImages), tx.Bucket(bucketRefs)
		for _, p := range imgs {
			old, err := getRecord(tx, p.id)
			if err != nil {
				return err
			}
			rec := record{Layers: p.layers, Parent: p.parent, Added: now}
			if old != nil {
				rec.Added = old.Added
				if rec.Parent == "" {
					rec.Parent = old.Parent
				}
			}
			v, err := json.Marshal(&rec)
			if err != nil {
				return err
			}
			if err := ib.Put([]byte(p.id), v); err != nil {
				return err
			}
			for _, r := range p.refs {
				if err := rb.Put([]byte(r.String()), []byte(p.id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// CreateOptions describes an image made locally (import, commit, build).
type CreateOptions struct {
	// Config is the image config (Docker-only and unknown fields are written too). RootFS.DiffIDs
	// is filled in by CreateImage; when Parent is empty and DiffIDs is not, those diff IDs name
	// layers already in the store, kept below the new ones.
	Config Config
	// Layers are new layer tars (uncompressed, or gzip), bottom first, stacked on top of the
	// parent's layers. Each is read once.
	Layers []io.Reader
	// Parent, when set, is the image the new one is based on (commit/build): its layers come
	// first and Image.Parent records it.
	Parent digest.Digest
	// Ref optionally tags the new image.
	Ref string
}

// Create implements API (docker import): CreateImage without a parent.
func (s *Store) Create(cfg ocispec.Image, layers []io.Reader, ref string) (*Image, error) {
	return s.CreateImage(CreateOptions{Config: Config{Image: cfg}, Layers: layers, Ref: ref})
}

// CreateImage stores the new layers and config and records the image. The image ID is the
// sha256 of the config JSON written.
func (s *Store) CreateImage(o CreateOptions) (*Image, error) {
	var tag reference.Named
	if o.Ref != "" {
		var err error
		if tag, err = normalizeTag(o.Ref); err != nil {
			return nil, err
		}
	}
	cfg := o.Config
	var base []layerRecord
	switch {
	case o.Parent != "":
		var rec *record
		if err := s.db.View(func(tx *bolt.Tx) (err error) { rec, err = getRecord(tx, o.Parent); return err }); err != nil {
			return nil, err
		}
		if rec == nil {
			return nil, errNoSuchImage(o.Parent.String())
		}
		base = rec.Layers
	case len(cfg.RootFS.DiffIDs) > 0:
		var err error
		if base, err = s.findLayers(cfg.RootFS.DiffIDs); err != nil {
			return nil, err
		}
	}
	var blobs []*spooled
	defer func() {
		for _, b := range blobs {
			if b.path != "" {
				os.Remove(b.path)
			}
		}
	}()
	layers := append([]layerRecord(nil), base...)
	buf := make([]byte, copyBufSize)
	for i, r := range o.Layers {
		b, err := spool(r, s.tmpDir(), -1, 0, buf)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		blobs = append(blobs, b)
		diffID, usize, mt, err := b.layerInfo()
		if err != nil {
			return nil, err
		}
		layers = append(layers, layerRecord{DiffID: diffID, Blob: b.digest, MediaType: mt, Size: b.size, USize: usize})
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = make([]digest.Digest, 0, len(layers))
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
	}
	if cfg.Created == nil {
		now := time.Now().UTC()
		cfg.Created = &now
	}
	if cfg.OS == "" {
		cfg.OS = "linux"
	}
	if cfg.Architecture == "" {
		cfg.Architecture = runtime.GOARCH
	}
	raw, err := json.Marshal(&cfg)
	if err != nil {
		return nil, err
	}
	p := &pendingImage{raw: raw, id: digest.FromBytes(raw), layers: layers, parent: o.Parent}
	if tag != nil {
		p.refs = []reference.Named{tag}
	}
	if err := s.commit(blobs, []*pendingImage{p}); err != nil {
		return nil, err
	}
	return s.Resolve(p.id.String())
}

// findLayers finds stored layers by diff ID in existing image records.
func (s *Store) findLayers(diffIDs []digest.Digest) ([]layerRecord, error) {
	byDiff := map[digest.Digest]layerRecord{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			for _, l := range r.Layers {
				byDiff[l.DiffID] = l
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]layerRecord, len(diffIDs))
	for i, d := range diffIDs {
		l, ok := byDiff[d]
		if !ok {
			return nil, &notFoundError{msg: fmt.Sprintf("layer %s not found", d)}
		}
		out[i] = l
	}
	return out, nil
}

// PutImage records an image whose layer blobs are already stored (PutBlob), e.g. after a pull.
// rawConfig is stored as the config blob. Each layer blob is read once to verify its DiffID
// against the config and to learn its uncompressed size. refs are tags and/or name@digest
// references (RepoDigests); they move to this image.
func (s *Store) PutImage(rawConfig []byte, layers []Layer, refs []string) (*Image, error) {
	cfg, err := configFromJSON(rawConfig)
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, invalidf("invalid image: config has %d layers, manifest has %d", len(cfg.RootFS.DiffIDs), len(layers))
	}
	var named []reference.Named
	for _, r := range refs {
		n, err := reference.ParseNormalizedNamed(r)
		if err != nil {
			return nil, &invalidError{err: err}
		}
		if _, ok := n.(reference.Digested); !ok {
			n = reference.TagNameOnly(n)
		}
		named = append(named, n)
	}
	recs := make([]layerRecord, len(layers))
	buf := make([]byte, copyBufSize)
	for i, l := range layers {
		want := cfg.RootFS.DiffIDs[i]
		if l.DiffID != "" && l.DiffID != want {
			return nil, invalidf("invalid diffID for layer %d: expected %q, got %q", i, want, l.DiffID)
		}
		diffID, usize, size, err := s.measureLayer(l.Blob, buf)
		if err != nil {
			return nil, err
		}
		if diffID != want {
			return nil, invalidf("invalid diffID for layer %d: expected %q, got %q", i, want, diffID)
		}
		mt := l.MediaType
		if mt == "" {
			mt = ocispec.MediaTypeImageLayer
			if diffID != l.Blob {
				mt = ocispec.MediaTypeImageLayerGzip
			}
		}
		recs[i] = layerRecord{DiffID: diffID, Blob: l.Blob, MediaType: mt, Size: size, USize: usize}
	}
	p := &pendingImage{raw: rawConfig, id: digest.FromBytes(rawConfig), layers: recs, refs: named}
	if err := s.commit(nil, []*pendingImage{p}); err != nil {
		return nil, err
	}
	return s.Resolve(p.id.String())
}

// measureLayer reads a stored layer blob: DiffID, uncompressed size and stored size.
func (s *Store) measureLayer(blob digest.Digest, buf []byte) (digest.Digest, int64, int64, error) {
	rc, err := s.OpenBlob(blob)
	if err != nil {
		return "", 0, 0, err
	}
	defer rc.Close()
	f := rc.(*os.File)
	st, err := f.Stat()
	if err != nil {
		return "", 0, 0, err
	}
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, 0, err
	}
	var r io.Reader = f
	switch detect(head[:n]) {
	case gzipped:
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", 0, 0, invalidf("layer %s: %v", blob, err)
		}
		r = zr
	case zstded:
		return "", 0, 0, invalidf("layer %s: zstd-compressed layers are not supported", blob)
	}
	h := &countingHash{h: sha256.New()}
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{r}, buf); err != nil {
		return "", 0, 0, invalidf("layer %s: %v", blob, err)
	}
	return h.digest(), h.n, st.Size(), nil
}
