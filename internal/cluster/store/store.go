// Package store is the key-value storage behind the Kubernetes-compatible API
// server: a revisioned, watchable key space with compare-and-swap writes.
//
// Two implementations pass the same conformance suite (see storetest):
// an embedded bbolt store (the default) and an etcd v3 client.
package store

import (
	"context"
	"errors"
)

// Errors returned by every implementation. Callers test with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("store: key not found")
	// ErrExists: Create on a key that exists.
	ErrExists = errors.New("store: key already exists")
	// ErrConflict: the expected revision of Update/Delete does not match.
	ErrConflict = errors.New("store: revision conflict")
	// ErrCompacted: the requested revision is older than the oldest kept
	// revision (the API server answers 410 Gone).
	ErrCompacted = errors.New("store: required revision has been compacted")
	// ErrFutureRevision: the requested revision is newer than the store's.
	ErrFutureRevision = errors.New("store: required revision is a future revision")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
)

// KeyValue is one stored key with its revisions.
type KeyValue struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// EventType says what happened to a key.
type EventType int

const (
	// EventPut is a create or an update (PrevKV nil for a create).
	EventPut EventType = iota
	// EventDelete removes a key; KV.Value is empty, PrevKV holds the last value.
	EventDelete
)

func (t EventType) String() string {
	if t == EventDelete {
		return "DELETE"
	}
	return "PUT"
}

// Event is one change, in revision order.
type Event struct {
	Type EventType
	// KV is the key after the change; for a delete, Key and ModRevision (the
	// revision of the delete) are set.
	KV KeyValue
	// PrevKV is the key before the change, nil if it did not exist.
	PrevKV *KeyValue
}

// Revision is the revision at which the event happened.
func (e Event) Revision() int64 { return e.KV.ModRevision }

// ListOptions narrows a List.
type ListOptions struct {
	// Revision lists the state at that revision; 0 means current.
	Revision int64
	// Limit caps the number of returned keys; 0 means no limit.
	Limit int64
	// StartAfter continues a paged list: only keys greater than it.
	StartAfter string
}

// ListResult is one page of a List.
type ListResult struct {
	KVs []KeyValue
	// Revision is the revision the list was served at.
	Revision int64
	// More is true when keys remain after the last returned one.
	More bool
}

// Watcher delivers events until its context ends, Stop is called, or the
// store drops it (a watcher that falls too far behind is closed; the caller
// re-watches from the last revision it saw).
type Watcher interface {
	Events() <-chan Event
	Stop()
	// Err tells why the event channel was closed (nil after Stop or ctx end).
	Err() error
}

// Interface is the storage contract of the API server. Keys are plain
// strings ("/registry/pods/default/web-1"); prefixes select ranges.
type Interface interface {
	// Get returns the current value of key, or ErrNotFound.
	Get(ctx context.Context, key string) (KeyValue, error)
	// List returns keys under prefix in key order, at opts.Revision (0 =
	// current); ErrCompacted if that revision is no longer reconstructible.
	List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error)
	// Create writes key only if it does not exist (ErrExists otherwise).
	Create(ctx context.Context, key string, value []byte) (KeyValue, error)
	// Update writes key only if its ModRevision equals expectedRevision
	// (ErrConflict, with the current KeyValue, otherwise; ErrNotFound if gone).
	// expectedRevision 0 skips the check (the key must still exist).
	Update(ctx context.Context, key string, value []byte, expectedRevision int64) (KeyValue, error)
	// Delete removes key, only if its ModRevision equals expectedRevision when
	// that is non-zero. It returns the deleted KeyValue and the revision of
	// the delete.
	Delete(ctx context.Context, key string, expectedRevision int64) (prev KeyValue, rev int64, err error)
	// Watch streams every change under prefix with a revision greater than
	// fromRevision (0 = from now). ErrCompacted if fromRevision is too old.
	Watch(ctx context.Context, prefix string, fromRevision int64) (Watcher, error)
	// Compact discards history at and below revision.
	Compact(ctx context.Context, revision int64) error
	// CurrentRevision is the revision of the last write.
	CurrentRevision(ctx context.Context) (int64, error)
	// CompactedRevision is the oldest revision no longer served by Watch.
	CompactedRevision(ctx context.Context) (int64, error)
	Close() error
}

// ConflictError wraps ErrConflict with the current state of the key.
type ConflictError struct {
	Current KeyValue
}

func (e *ConflictError) Error() string { return ErrConflict.Error() }
func (e *ConflictError) Unwrap() error { return ErrConflict }

// PrefixEnd returns the smallest key greater than every key with prefix.
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00" // all keys
}
