package image

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"io"
	"os"
	"sort"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// ociLayerType maps a stored layer media type to its OCI equivalent.
func ociLayerType(mt string) string {
	switch mt {
	case mediaTypeDockerLayer:
		return ocispec.MediaTypeImageLayer
	case mediaTypeDockerLayerGzip, mediaTypeDockerForeign:
		return ocispec.MediaTypeImageLayerGzip
	case "":
		return ocispec.MediaTypeImageLayer
	}
	return mt
}

// Manifest returns an OCI image manifest for img (what Save writes, and what a push can send).
func (s *Store) Manifest(img *Image) (raw []byte, desc ocispec.Descriptor, err error) {
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: img.ID, Size: int64(len(img.RawConfig))},
		Layers:    make([]ocispec.Descriptor, 0, len(img.Layers)),
	}
	for _, l := range img.Layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ociLayerType(l.MediaType), Digest: l.Blob, Size: l.Size})
	}
	raw, err = json.Marshal(&m)
	if err != nil {
		return nil, desc, err
	}
	return raw, ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, nil
}

// saveItem is one image in a Save, with the tags to write for it.
type saveItem struct {
	img  *Image
	tags []reference.Named
}

// selectForSave resolves Save's arguments like Docker: a name without tag means every tag of
// that repository; name:tag that tag; an ID the image without tags.
func (s *Store) selectForSave(args []string) ([]*saveItem, error) {
	var items []*saveItem
	byID := map[digest.Digest]*saveItem{}
	add := func(img *Image, tag reference.Named) {
		it := byID[img.ID]
		if it == nil {
			it = &saveItem{img: img}
			byID[img.ID] = it
			items = append(items, it)
		}
		if tag != nil {
			for _, t := range it.tags {
				if t.String() == tag.String() {
					return
				}
			}
			it.tags = append(it.tags, tag)
		}
	}
	for _, arg := range args {
		if !idRE.MatchString(arg) {
			if named, err := reference.ParseNormalizedNamed(arg); err == nil && reference.IsNameOnly(named) {
				var repoTags []string
				s.db.View(func(tx *bolt.Tx) error {
					c := tx.Bucket(bucketRefs).Cursor()
					prefix := named.Name() + ":"
					for k, _ := c.Seek([]byte(prefix)); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == prefix; k, _ = c.Next() {
						repoTags = append(repoTags, string(k))
					}
					return nil
				})
				if len(repoTags) > 0 {
					for _, t := range repoTags {
						img, err := s.Resolve(t)
						if err != nil {
							return nil, err
						}
						n, _ := reference.ParseNormalizedNamed(t)
						add(img, n)
					}
					continue
				}
			}
		}
		img, err := s.Resolve(arg)
		if err != nil {
			return nil, err
		}
		var tag reference.Named
		if !idRE.MatchString(arg) {
			if named, err := reference.ParseNormalizedNamed(arg); err == nil {
				if t, ok := reference.TagNameOnly(named).(reference.NamedTagged); ok {
					if _, dig := named.(reference.Digested); !dig && isRefOf(img, t) {
						tag = t
					}
				}
			}
		}
		add(img, tag)
	}
	return items, nil
}

func isRefOf(img *Image, t reference.Named) bool {
	f := reference.FamiliarString(t)
	for _, rt := range img.RepoTags {
		if rt == f {
			return true
		}
	}
	return false
}

// Save implements API: a docker-archive (manifest.json) that is also an OCI image layout
// (oci-layout, index.json, blobs/sha256), like `docker save` of Docker 25+. Layers are written
// as stored (uncompressed or gzip); `docker load` accepts both.
func (s *Store) Save(w io.Writer, refsOrIDs []string) error {
	items, err := s.selectForSave(refsOrIDs)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, copyBufSize)
	tw := tar.NewWriter(bw)
	epoch := time.Unix(0, 0)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch})
	}
	file := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	written := map[digest.Digest]bool{}
	buf := make([]byte, copyBufSize)
	var manifest []dockerManifestEntry
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, it := range items {
		img := it.img
		entry := dockerManifestEntry{Config: "blobs/sha256/" + img.ID.Encoded(), RepoTags: []string{}, Layers: []string{}}
		for _, l := range img.Layers {
			entry.Layers = append(entry.Layers, "blobs/sha256/"+l.Blob.Encoded())
			if written[l.Blob] {
				continue
			}
			written[l.Blob] = true
			if err := s.copyBlob(tw, l.Blob, buf); err != nil {
				return err
			}
		}
		if !written[img.ID] {
			written[img.ID] = true
			if err := file("blobs/sha256/"+img.ID.Encoded(), img.RawConfig); err != nil {
				return err
			}
		}
		mraw, mdesc, err := s.Manifest(img)
		if err != nil {
			return err
		}
		if !written[mdesc.Digest] {
			written[mdesc.Digest] = true
			if err := file("blobs/sha256/"+mdesc.Digest.Encoded(), mraw); err != nil {
				return err
			}
		}
		sort.Slice(it.tags, func(i, j int) bool { return it.tags[i].String() < it.tags[j].String() })
		for _, t := range it.tags {
			entry.RepoTags = append(entry.RepoTags, reference.FamiliarString(t))
			d := mdesc
			d.Annotations = map[string]string{annotationContainerdName: t.String()}
			if nt, ok := t.(reference.NamedTagged); ok {
				d.Annotations[ocispec.AnnotationRefName] = nt.Tag()
			}
			index.Manifests = append(index.Manifests, d)
		}
		if len(it.tags) == 0 {
			entry.RepoTags = nil
			index.Manifests = append(index.Manifests, mdesc)
		}
		manifest = append(manifest, entry)
	}
	ij, err := json.Marshal(&index)
	if err != nil {
		return err
	}
	mj, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"index.json", ij},
		{"manifest.json", mj},
		{ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)},
	} {
		if err := file(f.name, f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func (s *Store) copyBlob(tw *tar.Writer, d digest.Digest, buf []byte) error {
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		if os.IsNotExist(err) {
			return &notFoundError{msg: "blob " + d.String() + " not found"}
		}
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "blobs/sha256/" + d.Encoded(), Mode: 0o644, Size: st.Size(), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err = io.CopyBuffer(tw, struct{ io.Reader }{f}, buf)
	return err
}
