package build

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// cache maps (parent image, step) to the image the step made: the layer cache. It lives in
// <data-root>/builder/cache.db, so it survives daemon restarts; an entry whose image is gone, or
// whose image no longer has that parent, is ignored.
type cache struct{ db *bolt.DB }

var bucketCache = []byte("steps")

func openCache(dataRoot string) (*cache, error) {
	dir := filepath.Join(dataRoot, "builder")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "cache.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucketCache); return err }); err != nil {
		db.Close()
		return nil, err
	}
	return &cache{db: db}, nil
}

// cacheKey names a step: the parent image ("" = scratch) and everything that decides the result.
func cacheKey(parent digest.Digest, parts ...string) []byte {
	h := sha256.New()
	h.Write([]byte(parent.String()))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return []byte(hex.EncodeToString(h.Sum(nil)))
}

func (c *cache) get(key []byte) digest.Digest {
	var id digest.Digest
	c.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketCache).Get(key); v != nil {
			id = digest.Digest(string(v))
		}
		return nil
	})
	return id
}

func (c *cache) put(key []byte, id digest.Digest) error {
	return c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCache).Put(key, []byte(id.String())) })
}

// prune empties the cache (builder prune); returns the number of entries dropped.
func (c *cache) prune() (int, error) {
	n := 0
	err := c.db.Update(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketCache).Stats().KeyN
		if err := tx.DeleteBucket(bucketCache); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketCache)
		return err
	})
	return n, err
}

func (c *cache) close() error { return c.db.Close() }
