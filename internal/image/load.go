package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	memMaxEntry = 1 << 20  // archive files up to this size stay in memory…
	memMaxTotal = 64 << 20 // …until this much is held
	maxJSON     = 64 << 20
	maxLinkHops = 16

	annotationContainerdName = "io.containerd.image.name"
	mediaTypeDockerManifest  = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList      = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerLayer     = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerForeign   = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// dockerManifestEntry is one element of a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config       string
	RepoTags     []string
	Layers       []string
	Parent       digest.Digest                        `json:",omitempty"`
	LayerSources map[digest.Digest]ocispec.Descriptor `json:",omitempty"`
}

// archive is the content of a tar read once: regular files spooled, links recorded.
type archive struct {
	files map[string]*spooled
	links map[string]string // entry → archive path it points to
}

func (a *archive) cleanup() {
	for _, f := range a.files {
		if f.path != "" {
			os.Remove(f.path)
		}
	}
}

func (a *archive) get(name string) (*spooled, error) {
	name = cleanArchivePath(name)
	for i := 0; i <= maxLinkHops; i++ {
		if f, ok := a.files[name]; ok {
			if hex, isBlob := strings.CutPrefix(name, "blobs/sha256/"); isBlob && f.digest.Encoded() != hex {
				return nil, invalidf("invalid archive: %s has digest %s", name, f.digest)
			}
			return f, nil
		}
		t, ok := a.links[name]
		if !ok {
			return nil, invalidf("invalid archive: %s not found in archive", name)
		}
		name = t
	}
	return nil, invalidf("invalid archive: too many links for %s", name)
}

// getBlob returns blobs/<alg>/<hex> and verifies its content matches the digest.
func (a *archive) getBlob(d digest.Digest) (*spooled, error) {
	if err := validDigest(d); err != nil {
		return nil, err
	}
	f, err := a.get("blobs/sha256/" + d.Encoded())
	if err != nil {
		return nil, err
	}
	if f.digest != d {
		return nil, invalidf("invalid archive: blob %s has digest %s", d, f.digest)
	}
	return f, nil
}

func (a *archive) json(name string, v any) error {
	f, err := a.get(name)
	if err != nil {
		return err
	}
	b, err := f.bytes(maxJSON)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return invalidf("invalid archive: %s: %v", name, err)
	}
	return nil
}

// cleanArchivePath makes an archive path relative and clean; "" when it leaves the archive.
func cleanArchivePath(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

// readArchive reads the tar stream once, spooling every regular file (hashing it, and
// decompressing gzip ones on the fly to get DiffIDs).
func (s *Store) readArchive(r io.Reader, work string) (*archive, error) {
	a := &archive{files: map[string]*spooled{}, links: map[string]string{}}
	br := bufio.NewReaderSize(r, copyBufSize)
	// `docker load` also accepts a compressed archive.
	if head, _ := br.Peek(4); detect(head) == gzipped {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, invalidf("invalid archive: %v", err)
		}
		defer zr.Close()
		r = bufio.NewReaderSize(zr, copyBufSize)
	} else {
		r = br
	}
	tr := tar.NewReader(r)
	buf := make([]byte, copyBufSize)
	var inMem int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			a.cleanup()
			return nil, invalidf("invalid archive: %v", err)
		}
		name := cleanArchivePath(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			memMax := int64(0)
			if hdr.Size <= memMaxEntry && inMem+hdr.Size <= memMaxTotal {
				memMax = memMaxEntry
			}
			f, err := spool(tr, work, hdr.Size, memMax, buf)
			if err != nil {
				a.cleanup()
				return nil, fmt.Errorf("read archive entry %s: %w", name, err)
			}
			if f.path == "" {
				inMem += f.size
			}
			if old := a.files[name]; old != nil && old.path != "" {
				os.Remove(old.path)
			}
			a.files[name] = f
		case tar.TypeSymlink:
			t := hdr.Linkname
			if !path.IsAbs(t) {
				t = path.Join(path.Dir(name), t)
			}
			a.links[name] = cleanArchivePath(t)
		case tar.TypeLink:
			a.links[name] = cleanArchivePath(hdr.Linkname)
		}
	}
	return a, nil
}

// Load implements API. The archive is read once; blobs are installed first and all images
// are recorded in one metadata transaction at the end.
func (s *Store) Load(r io.Reader) (*LoadResult, error) {
	work, err := os.MkdirTemp(s.tmpDir(), "load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	a, err := s.readArchive(r, work)
	if err != nil {
		return nil, err
	}
	defer a.cleanup()

	var imgs []*pendingImage
	if _, err := a.get("manifest.json"); err == nil {
		imgs, err = s.parseDockerArchive(a)
		if err != nil {
			return nil, err
		}
	} else if _, err := a.get("index.json"); err == nil {
		imgs, err = s.parseOCILayout(a)
		if err != nil {
			return nil, err
		}
	} else {
		return nil, invalidf("invalid archive: no manifest.json (docker save) or index.json (OCI layout) found")
	}
	if len(imgs) == 0 {
		return nil, invalidf("invalid archive: no images found")
	}

	// Install every file that is used as a layer blob.
	var blobs []*spooled
	seen := map[digest.Digest]bool{}
	for _, p := range imgs {
		for _, l := range p.layers {
			if seen[l.Blob] {
				continue
			}
			seen[l.Blob] = true
			for _, f := range a.files {
				if f.digest == l.Blob {
					blobs = append(blobs, f)
					break
				}
			}
		}
	}
	if err := s.commit(blobs, imgs); err != nil {
		return nil, err
	}
	res := &LoadResult{}
	for _, p := range imgs {
		if len(p.refs) == 0 {
			res.IDs = append(res.IDs, p.id)
			continue
		}
		for _, n := range p.refs {
			res.Refs = append(res.Refs, reference.FamiliarString(n))
		}
	}
	return res, nil
}

// layerFromFile checks a layer file against the DiffID the config expects.
func layerFromFile(f *spooled, i int, want digest.Digest) (layerRecord, error) {
	diffID, usize, mt, err := f.layerInfo()
	if err != nil {
		return layerRecord{}, err
	}
	if diffID != want {
		return layerRecord{}, invalidf("invalid diffID for layer %d: expected %q, got %q", i, want, diffID)
	}
	return layerRecord{DiffID: diffID, Blob: f.digest, MediaType: mt, Size: f.size, USize: usize}, nil
}

func (s *Store) parseDockerArchive(a *archive) ([]*pendingImage, error) {
	var manifest []dockerManifestEntry
	if err := a.json("manifest.json", &manifest); err != nil {
		return nil, err
	}
	byID := map[digest.Digest]*pendingImage{}
	var out []*pendingImage
	for _, m := range manifest {
		cf, err := a.get(m.Config)
		if err != nil {
			return nil, err
		}
		raw, err := cf.bytes(maxJSON)
		if err != nil {
			return nil, err
		}
		cfg, err := configFromJSON(raw)
		if err != nil {
			return nil, err
		}
		if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			return nil, invalidf("invalid manifest, layers length mismatch: expected %d, got %d", len(cfg.RootFS.DiffIDs), len(m.Layers))
		}
		p := &pendingImage{raw: raw, id: cf.digest, parent: m.Parent}
		for i, lp := range m.Layers {
			f, err := a.get(lp)
			if err != nil {
				if src, foreign := m.LayerSources[cfg.RootFS.DiffIDs[i]]; foreign {
					return nil, invalidf("foreign layer %s (%s) is not included in the archive", cfg.RootFS.DiffIDs[i], src.MediaType)
				}
				return nil, err
			}
			l, err := layerFromFile(f, i, cfg.RootFS.DiffIDs[i])
			if err != nil {
				return nil, err
			}
			p.layers = append(p.layers, l)
		}
		for _, t := range m.RepoTags {
			n, err := reference.ParseNormalizedNamed(t)
			if err != nil {
				return nil, &invalidError{err: err}
			}
			if _, ok := n.(reference.NamedTagged); !ok {
				return nil, invalidf("invalid tag %q", t)
			}
			p.refs = append(p.refs, n)
		}
		if prev := byID[p.id]; prev != nil {
			prev.refs = append(prev.refs, p.refs...)
			continue
		}
		byID[p.id] = p
		out = append(out, p)
	}
	return out, nil
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerList
}

func (s *Store) parseOCILayout(a *archive) ([]*pendingImage, error) {
	var index ocispec.Index
	if err := a.json("index.json", &index); err != nil {
		return nil, err
	}
	byID := map[digest.Digest]*pendingImage{}
	var out []*pendingImage
	for _, desc := range index.Manifests {
		p, err := s.ociImage(a, desc, 0)
		if err != nil {
			return nil, err
		}
		if n := ociRefName(desc.Annotations); n != nil {
			p.refs = append(p.refs, n)
		}
		if prev := byID[p.id]; prev != nil {
			prev.refs = append(prev.refs, p.refs...)
			continue
		}
		byID[p.id] = p
		out = append(out, p)
	}
	return out, nil
}

// ociRefName finds the image name an OCI layout gives a manifest: containerd's full name
// annotation, or org.opencontainers.image.ref.name when it is a full reference (a bare tag
// such as "latest" names no repository, and the image then loads untagged).
func ociRefName(ann map[string]string) reference.Named {
	for _, v := range []string{ann[annotationContainerdName], ann[ocispec.AnnotationRefName]} {
		if v == "" || !strings.ContainsAny(v, ":/@") {
			continue
		}
		n, err := reference.ParseNormalizedNamed(v)
		if err != nil {
			continue
		}
		if _, ok := n.(reference.Digested); ok {
			continue
		}
		return reference.TagNameOnly(n)
	}
	return nil
}

// ociImage resolves a descriptor (manifest, or index choosing this platform) to an image.
func (s *Store) ociImage(a *archive, desc ocispec.Descriptor, depth int) (*pendingImage, error) {
	if depth > 4 {
		return nil, invalidf("invalid archive: index nesting too deep")
	}
	f, err := a.getBlob(desc.Digest)
	if err != nil {
		return nil, err
	}
	b, err := f.bytes(maxJSON)
	if err != nil {
		return nil, err
	}
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, invalidf("invalid archive: manifest %s: %v", desc.Digest, err)
	}
	if isIndexType(desc.MediaType) || isIndexType(probe.MediaType) || (probe.MediaType == "" && probe.Manifests != nil) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, invalidf("invalid archive: index %s: %v", desc.Digest, err)
		}
		var pick *ocispec.Descriptor
		for i, m := range idx.Manifests {
			if m.Platform == nil {
				if pick == nil {
					pick = &idx.Manifests[i]
				}
				continue
			}
			if m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
				if _, err := a.getBlob(m.Digest); err == nil {
					pick = &idx.Manifests[i]
					break
				}
			}
		}
		if pick == nil {
			return nil, invalidf("no image for linux/%s in index %s", runtime.GOARCH, desc.Digest)
		}
		return s.ociImage(a, *pick, depth+1)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, invalidf("invalid archive: manifest %s: %v", desc.Digest, err)
	}
	cf, err := a.getBlob(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	raw, err := cf.bytes(maxJSON)
	if err != nil {
		return nil, err
	}
	cfg, err := configFromJSON(raw)
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, invalidf("invalid manifest, layers length mismatch: expected %d, got %d", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	p := &pendingImage{raw: raw, id: cf.digest}
	for i, ld := range m.Layers {
		switch ld.MediaType {
		case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, mediaTypeDockerLayer, mediaTypeDockerLayerGzip,
			ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, mediaTypeDockerForeign: //nolint:staticcheck
		case ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck
			return nil, invalidf("layer %s: zstd-compressed layers are not supported", ld.Digest)
		default:
			return nil, invalidf("layer %s: unsupported media type %q", ld.Digest, ld.MediaType)
		}
		lf, err := a.getBlob(ld.Digest)
		if err != nil {
			return nil, err
		}
		l, err := layerFromFile(lf, i, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return nil, err
		}
		p.layers = append(p.layers, l)
	}
	return p, nil
}
