package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketImages = []byte("images") // image ID ("sha256:…") → JSON record
	bucketRefs   = []byte("refs")   // normalised reference ("docker.io/library/busybox:latest", "…@sha256:…") → image ID
)

var (
	idRE      = regexp.MustCompile(`^(sha256:)?[a-f0-9]{64}$`)
	shortIDRE = regexp.MustCompile(`^(sha256:)?[a-f0-9]{1,64}$`)
)

// Store is the on-disk image store. It is safe for concurrent use by one process; a second
// process opening the same root fails (bbolt's file lock).
type Store struct {
	root string
	db   *bolt.DB
	// mu serialises the short "commit" phase (renaming blobs into place + metadata transaction)
	// against Delete's blob garbage collection, so a blob an image is about to use is never removed.
	mu sync.Mutex
}

var _ API = (*Store)(nil)

// record is what images.db keeps per image; the config lives in its blob.
type record struct {
	Layers []layerRecord `json:"layers"`
	Parent digest.Digest `json:"parent,omitempty"`
	Added  time.Time     `json:"added"`
}

type layerRecord struct {
	DiffID    digest.Digest `json:"diffID"`
	Blob      digest.Digest `json:"blob"`
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`  // stored blob size
	USize     int64         `json:"usize"` // uncompressed size
}

// Open opens (creating if needed) the store at root. It removes leftovers of interrupted
// operations: temp files, and blobs that no image record references.
func Open(root string) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{root, filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(filepath.Join(root, "images.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	s := &Store{root: root, db: db}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketRefs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("recover image store: %w", err)
	}
	return s, nil
}

// Close closes the metadata database.
func (s *Store) Close() error { return s.db.Close() }

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir() string { return filepath.Join(s.root, "blobs", "sha256") }
func (s *Store) tmpDir() string  { return filepath.Join(s.root, "tmp") }

func (s *Store) blobPath(d digest.Digest) string { return filepath.Join(s.blobDir(), d.Encoded()) }

// recover cleans what a crash may leave: temp files in tmp/ and blobs/sha256/, references to
// missing images, and blobs no image references. Metadata is committed last by every writer,
// so a record always has its blobs; the reverse (orphan blobs) is garbage.
func (s *Store) recover() error {
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return err
		}
	}
	used := map[string]bool{}
	err = s.db.Update(func(tx *bolt.Tx) error {
		imgs := tx.Bucket(bucketImages)
		if err := imgs.ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("image %s: corrupt record: %w", k, err)
			}
			used[digest.Digest(k).Encoded()] = true
			for _, l := range r.Layers {
				used[l.Blob.Encoded()] = true
			}
			return nil
		}); err != nil {
			return err
		}
		refs := tx.Bucket(bucketRefs)
		var dangling [][]byte
		refs.ForEach(func(k, v []byte) error {
			if imgs.Get(v) == nil {
				dangling = append(dangling, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range dangling {
			if err := refs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ents, err = os.ReadDir(s.blobDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !used[e.Name()] {
			if err := os.RemoveAll(filepath.Join(s.blobDir(), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- reading ----

func (s *Store) readConfig(id digest.Digest) ([]byte, error) {
	b, err := os.ReadFile(s.blobPath(id))
	if os.IsNotExist(err) {
		return nil, &notFoundError{msg: "No such image: " + id.String()}
	}
	return b, err
}

// build turns a record into an Image. refs maps image ID → its references (normalised).
func (s *Store) build(id digest.Digest, r *record, refs []string) (*Image, error) {
	raw, err := s.readConfig(id)
	if err != nil {
		return nil, err
	}
	img := &Image{ID: id, RawConfig: raw, Parent: r.Parent}
	var full Config
	if err := json.Unmarshal(raw, &full); err != nil {
		return nil, fmt.Errorf("image %s: invalid config: %w", id, err)
	}
	img.Config, img.Docker = full.Image, full.Docker
	if img.Config.Created != nil {
		img.Created = *img.Config.Created
	}
	for _, l := range r.Layers {
		img.Layers = append(img.Layers, Layer{DiffID: l.DiffID, Blob: l.Blob, MediaType: l.MediaType, Size: l.Size})
		img.Size += l.USize
	}
	for _, ref := range refs {
		n, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			continue
		}
		if _, ok := n.(reference.Canonical); ok {
			img.RepoDigests = append(img.RepoDigests, reference.FamiliarString(n))
		} else {
			img.RepoTags = append(img.RepoTags, reference.FamiliarString(n))
		}
	}
	sort.Strings(img.RepoTags)
	sort.Strings(img.RepoDigests)
	return img, nil
}

func getRecord(tx *bolt.Tx, id digest.Digest) (*record, error) {
	v := tx.Bucket(bucketImages).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("image %s: corrupt record: %w", id, err)
	}
	return &r, nil
}

func refsOf(tx *bolt.Tx, id digest.Digest) []string {
	var out []string
	tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
		if string(v) == string(id) {
			out = append(out, string(k))
		}
		return nil
	})
	return out
}

// lookup resolves refOrID inside a transaction. It returns ("", nil) when nothing matches.
func lookup(tx *bolt.Tx, refOrID string) (digest.Digest, error) {
	imgs := tx.Bucket(bucketImages)
	if idRE.MatchString(refOrID) {
		id := digest.Digest("sha256:" + strings.TrimPrefix(refOrID, "sha256:"))
		if imgs.Get([]byte(id)) != nil {
			return id, nil
		}
		return "", nil
	}
	named, err := reference.ParseNormalizedNamed(refOrID)
	if err != nil {
		return "", &invalidError{err: err}
	}
	if _, isDigested := named.(reference.Digested); !isDigested {
		named = reference.TagNameOnly(named)
	}
	if v := tx.Bucket(bucketRefs).Get([]byte(named.String())); v != nil {
		return digest.Digest(v), nil
	}
	// Docker falls back to a (unique) ID prefix search.
	if shortIDRE.MatchString(refOrID) {
		prefix := []byte("sha256:" + strings.TrimPrefix(refOrID, "sha256:"))
		c := imgs.Cursor()
		k, _ := c.Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return "", nil
		}
		first := digest.Digest(k)
		if k2, _ := c.Next(); k2 != nil && bytes.HasPrefix(k2, prefix) {
			return "", nil // ambiguous: Docker reports it as not found
		}
		return first, nil
	}
	return "", nil
}

// Resolve implements API.
func (s *Store) Resolve(refOrID string) (*Image, error) {
	var (
		id   digest.Digest
		rec  *record
		refs []string
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if id, err = lookup(tx, refOrID); err != nil || id == "" {
			return err
		}
		if rec, err = getRecord(tx, id); err != nil {
			return err
		}
		refs = refsOf(tx, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errNoSuchImage(refOrID)
	}
	img, err := s.build(id, rec, refs)
	if IsNotFound(err) {
		return nil, errNoSuchImage(refOrID)
	}
	return img, err
}

// List implements API: all images, newest first.
func (s *Store) List() ([]*Image, error) {
	type item struct {
		id  digest.Digest
		rec record
	}
	var items []item
	refs := map[digest.Digest][]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			it := item{id: digest.Digest(k)}
			if err := json.Unmarshal(v, &it.rec); err != nil {
				return fmt.Errorf("image %s: corrupt record: %w", k, err)
			}
			items = append(items, it)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
			refs[digest.Digest(v)] = append(refs[digest.Digest(v)], string(k))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(items))
	for i := range items {
		img, err := s.build(items[i].id, &items[i].rec, refs[items[i].id])
		if IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// OpenBlob implements API.
func (s *Store) OpenBlob(d digest.Digest) (io.ReadCloser, error) {
	if err := validDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if os.IsNotExist(err) {
		return nil, &notFoundError{msg: fmt.Sprintf("blob %s not found", d)}
	}
	return f, err
}

// HasBlob reports whether the blob is stored.
func (s *Store) HasBlob(d digest.Digest) bool {
	if validDigest(d) != nil {
		return false
	}
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

func validDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return invalidf("invalid digest %q", d)
	}
	return nil
}

// ---- references ----

// normalizeTag parses a reference for tagging: name or name:tag, never a digest.
func normalizeTag(ref string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, &invalidError{err: err}
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, invalidf("refusing to create a tag with a digest reference")
	}
	return reference.TagNameOnly(named), nil
}

// Tag implements API. An existing tag moves to the new image.
func (s *Store) Tag(refOrID, newRef string) error {
	named, err := normalizeTag(newRef)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		id, err := lookup(tx, refOrID)
		if err != nil {
			return err
		}
		if id == "" {
			return errNoSuchImage(refOrID)
		}
		return tx.Bucket(bucketRefs).Put([]byte(named.String()), []byte(id))
	})
}

// Untag implements API. ref is a name, name:tag or name@digest.
func (s *Store) Untag(ref string) (*Image, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, &invalidError{err: err}
	}
	if _, ok := named.(reference.Digested); !ok {
		named = reference.TagNameOnly(named)
	}
	var img *Image
	err = s.db.Update(func(tx *bolt.Tx) error {
		refs := tx.Bucket(bucketRefs)
		v := refs.Get([]byte(named.String()))
		if v == nil {
			return errNoSuchImage(ref)
		}
		id := digest.Digest(v)
		rec, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if err := refs.Delete([]byte(named.String())); err != nil {
			return err
		}
		if rec == nil {
			return errNoSuchImage(ref)
		}
		if img, err = s.build(id, rec, refsOf(tx, id)); err != nil {
			return err
		}
		return nil
	})
	return img, err
}

// AddRepoDigest records name@digest (e.g. after a pull or push) as a reference to image id.
func (s *Store) AddRepoDigest(id digest.Digest, canonical string) error {
	named, err := reference.ParseNormalizedNamed(canonical)
	if err != nil {
		return &invalidError{err: err}
	}
	if _, ok := named.(reference.Canonical); !ok {
		return invalidf("%s is not a digest reference", canonical)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketImages).Get([]byte(id)) == nil {
			return errNoSuchImage(id.String())
		}
		return tx.Bucket(bucketRefs).Put([]byte(named.String()), []byte(id))
	})
}

// Delete implements API. Blobs that no remaining image uses are removed after the metadata
// commit, so a crash in between only leaves orphans that Open collects.
func (s *Store) Delete(id digest.Digest) error {
	if !idRE.MatchString(id.String()) {
		return errNoSuchImage(id.String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var garbage []digest.Digest
	err := s.db.Update(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if rec == nil {
			return errNoSuchImage(id.String())
		}
		refs := tx.Bucket(bucketRefs)
		for _, k := range refsOf(tx, id) {
			if err := refs.Delete([]byte(k)); err != nil {
				return err
			}
		}
		imgs := tx.Bucket(bucketImages)
		if err := imgs.Delete([]byte(id)); err != nil {
			return err
		}
		cand := map[digest.Digest]bool{id: true}
		for _, l := range rec.Layers {
			cand[l.Blob] = true
		}
		if err := imgs.ForEach(func(k, v []byte) error {
			delete(cand, digest.Digest(k))
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			for _, l := range r.Layers {
				delete(cand, l.Blob)
			}
			return nil
		}); err != nil {
			return err
		}
		for d := range cand {
			garbage = append(garbage, d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range garbage {
		if err := os.Remove(s.blobPath(d)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// ---- ocispec helpers ----

func configFromJSON(raw []byte) (*ocispec.Image, error) {
	var c ocispec.Image
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, invalidf("invalid image config: %v", err)
	}
	return &c, nil
}
