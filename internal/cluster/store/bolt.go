package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketMeta = []byte("meta")
	bucketKV   = []byte("kv")
	bucketHist = []byte("history")

	metaRevision  = []byte("revision")
	metaCompacted = []byte("compacted")
)

// BoltOptions tunes the embedded store.
type BoltOptions struct {
	// HistoryMaxAge: events older than this are compacted (default 10m).
	HistoryMaxAge time.Duration
	// HistoryMaxEvents: at most this many events are kept (default 10000).
	HistoryMaxEvents int64
	// CompactInterval: how often the compactor runs (default 1m).
	CompactInterval time.Duration
	// NoSync disables fsync of commits (tests/benchmarks only).
	NoSync bool
}

// Bolt is the embedded bbolt implementation of Interface.
type Bolt struct {
	db   *bolt.DB
	opts BoltOptions

	writeMu   sync.Mutex // serializes writes and their publication
	rev       int64      // guarded by writeMu (read with revMu)
	revMu     sync.RWMutex
	compacted int64

	subMu sync.Mutex
	subs  map[*boltWatcher]struct{}

	compactKick chan struct{}
	stop        chan struct{}
	wg          sync.WaitGroup
	closeOnce   sync.Once
}

// OpenBolt opens (creating if needed) the bbolt store at path.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if opts.HistoryMaxAge <= 0 {
		opts.HistoryMaxAge = 10 * time.Minute
	}
	if opts.HistoryMaxEvents <= 0 {
		opts.HistoryMaxEvents = 10000
	}
	if opts.CompactInterval <= 0 {
		opts.CompactInterval = time.Minute
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.NoSync = opts.NoSync
	s := &Bolt{db: db, opts: opts, subs: map[*boltWatcher]struct{}{}, compactKick: make(chan struct{}, 1), stop: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketKV, bucketHist} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		s.rev = getInt(m.Get(metaRevision))
		if s.rev == 0 {
			// like etcd, an empty store is at revision 1, so that 0 can
			// always mean "now"
			s.rev = 1
			if err := m.Put(metaRevision, putInt(1)); err != nil {
				return err
			}
		}
		s.compacted = getInt(m.Get(metaCompacted))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.compactLoop()
	return s, nil
}

func getInt(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func putInt(v int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	return b
}

// kv record: createRev(8) modRev(8) value
func encodeKV(create, mod int64, v []byte) []byte {
	b := make([]byte, 16+len(v))
	binary.BigEndian.PutUint64(b, uint64(create))
	binary.BigEndian.PutUint64(b[8:], uint64(mod))
	copy(b[16:], v)
	return b
}

func decodeKV(key string, b []byte) KeyValue {
	return KeyValue{Key: key, CreateRevision: int64(binary.BigEndian.Uint64(b)), ModRevision: int64(binary.BigEndian.Uint64(b[8:])), Value: append([]byte(nil), b[16:]...)}
}

// history record: type(1) time(8) createRev(8) hasPrev(1) prevCreate(8) prevMod(8)
// keyLen(uvarint) key valueLen(uvarint) value prevLen(uvarint) prev
func encodeEvent(ev Event, now time.Time) []byte {
	var buf bytes.Buffer
	buf.WriteByte(byte(ev.Type))
	buf.Write(putInt(now.UnixNano()))
	buf.Write(putInt(ev.KV.CreateRevision))
	if ev.PrevKV != nil {
		buf.WriteByte(1)
		buf.Write(putInt(ev.PrevKV.CreateRevision))
		buf.Write(putInt(ev.PrevKV.ModRevision))
	} else {
		buf.WriteByte(0)
		buf.Write(make([]byte, 16))
	}
	var tmp [binary.MaxVarintLen64]byte
	writeBytes := func(p []byte) {
		n := binary.PutUvarint(tmp[:], uint64(len(p)))
		buf.Write(tmp[:n])
		buf.Write(p)
	}
	writeBytes([]byte(ev.KV.Key))
	writeBytes(ev.KV.Value)
	if ev.PrevKV != nil {
		writeBytes(ev.PrevKV.Value)
	} else {
		writeBytes(nil)
	}
	return buf.Bytes()
}

func decodeEvent(rev int64, b []byte) (Event, time.Time, error) {
	if len(b) < 34 {
		return Event{}, time.Time{}, errors.New("store: corrupt history record")
	}
	ev := Event{Type: EventType(b[0])}
	ts := time.Unix(0, getInt(b[1:9]))
	ev.KV.CreateRevision = getInt(b[9:17])
	ev.KV.ModRevision = rev
	hasPrev := b[17] == 1
	prevCreate, prevMod := getInt(b[18:26]), getInt(b[26:34])
	rest := b[34:]
	read := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return nil, errors.New("store: corrupt history record")
		}
		p := append([]byte(nil), rest[k:k+int(n)]...)
		rest = rest[k+int(n):]
		return p, nil
	}
	key, err := read()
	if err != nil {
		return ev, ts, err
	}
	val, err := read()
	if err != nil {
		return ev, ts, err
	}
	prev, err := read()
	if err != nil {
		return ev, ts, err
	}
	ev.KV.Key = string(key)
	ev.KV.Value = val
	if hasPrev {
		ev.PrevKV = &KeyValue{Key: string(key), Value: prev, CreateRevision: prevCreate, ModRevision: prevMod}
	}
	return ev, ts, nil
}

func (s *Bolt) closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Get implements Interface.
func (s *Bolt) Get(ctx context.Context, key string) (KeyValue, error) {
	if s.closed() {
		return KeyValue{}, ErrClosed
	}
	var kv KeyValue
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKV).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		kv = decodeKV(key, v)
		return nil
	})
	return kv, err
}

// List implements Interface.
func (s *Bolt) List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error) {
	if s.closed() {
		return ListResult{}, ErrClosed
	}
	var res ListResult
	err := s.db.View(func(tx *bolt.Tx) error {
		cur := getInt(tx.Bucket(bucketMeta).Get(metaRevision))
		compacted := getInt(tx.Bucket(bucketMeta).Get(metaCompacted))
		at := opts.Revision
		if at == 0 || at == cur {
			res.Revision = cur
			return s.listCurrent(tx, prefix, opts, &res)
		}
		if at > cur {
			return ErrFutureRevision
		}
		if at < compacted {
			return ErrCompacted
		}
		res.Revision = at
		return s.listAt(tx, prefix, at, cur, opts, &res)
	})
	return res, err
}

func (s *Bolt) listCurrent(tx *bolt.Tx, prefix string, opts ListOptions, res *ListResult) error {
	c := tx.Bucket(bucketKV).Cursor()
	start := []byte(prefix)
	if opts.StartAfter != "" && opts.StartAfter >= prefix {
		start = append([]byte(opts.StartAfter), 0)
	}
	p := []byte(prefix)
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if opts.Limit > 0 && int64(len(res.KVs)) >= opts.Limit {
			res.More = true
			break
		}
		res.KVs = append(res.KVs, decodeKV(string(k), v))
	}
	return nil
}

// listAt reconstructs the state at revision at by undoing the history after it.
func (s *Bolt) listAt(tx *bolt.Tx, prefix string, at, cur int64, opts ListOptions, res *ListResult) error {
	state := map[string]*KeyValue{}
	c := tx.Bucket(bucketKV).Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		kv := decodeKV(string(k), v)
		state[kv.Key] = &kv
	}
	seen := map[string]bool{}
	hc := tx.Bucket(bucketHist).Cursor()
	for k, v := hc.Seek(putInt(at + 1)); k != nil; k, v = hc.Next() {
		ev, _, err := decodeEvent(getInt(k), v)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(ev.KV.Key, prefix) || seen[ev.KV.Key] {
			continue
		}
		seen[ev.KV.Key] = true
		if ev.PrevKV == nil {
			delete(state, ev.KV.Key)
		} else {
			prev := *ev.PrevKV
			state[ev.KV.Key] = &prev
		}
	}
	keys := make([]string, 0, len(state))
	for k := range state {
		if opts.StartAfter != "" && k <= opts.StartAfter {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if opts.Limit > 0 && int64(len(res.KVs)) >= opts.Limit {
			res.More = true
			break
		}
		res.KVs = append(res.KVs, *state[k])
	}
	return nil
}

// write runs fn in a write transaction with the next revision and publishes
// the event it returns once the commit is durable.
func (s *Bolt) write(fn func(tx *bolt.Tx, rev int64) (*Event, error)) (*Event, error) {
	if s.closed() {
		return nil, ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var ev *Event
	rev := s.rev + 1
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		ev, err = fn(tx, rev)
		if err != nil || ev == nil {
			return err
		}
		if err := tx.Bucket(bucketHist).Put(putInt(rev), encodeEvent(*ev, time.Now())); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaRevision, putInt(rev))
	})
	if err != nil {
		return nil, err
	}
	s.revMu.Lock()
	s.rev = rev
	s.revMu.Unlock()
	s.publish(*ev)
	if rev-s.compactedRev() > 2*s.opts.HistoryMaxEvents {
		select {
		case s.compactKick <- struct{}{}:
		default:
		}
	}
	return ev, nil
}

func (s *Bolt) compactedRev() int64 {
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	return s.compacted
}

// Create implements Interface.
func (s *Bolt) Create(ctx context.Context, key string, value []byte) (KeyValue, error) {
	ev, err := s.write(func(tx *bolt.Tx, rev int64) (*Event, error) {
		b := tx.Bucket(bucketKV)
		if b.Get([]byte(key)) != nil {
			return nil, ErrExists
		}
		if err := b.Put([]byte(key), encodeKV(rev, rev, value)); err != nil {
			return nil, err
		}
		return &Event{Type: EventPut, KV: KeyValue{Key: key, Value: value, CreateRevision: rev, ModRevision: rev}}, nil
	})
	if err != nil {
		return KeyValue{}, err
	}
	return ev.KV, nil
}

// Update implements Interface.
func (s *Bolt) Update(ctx context.Context, key string, value []byte, expected int64) (KeyValue, error) {
	ev, err := s.write(func(tx *bolt.Tx, rev int64) (*Event, error) {
		b := tx.Bucket(bucketKV)
		old := b.Get([]byte(key))
		if old == nil {
			return nil, ErrNotFound
		}
		prev := decodeKV(key, old)
		if expected != 0 && prev.ModRevision != expected {
			return nil, &ConflictError{Current: prev}
		}
		if err := b.Put([]byte(key), encodeKV(prev.CreateRevision, rev, value)); err != nil {
			return nil, err
		}
		return &Event{Type: EventPut, KV: KeyValue{Key: key, Value: value, CreateRevision: prev.CreateRevision, ModRevision: rev}, PrevKV: &prev}, nil
	})
	if err != nil {
		return KeyValue{}, err
	}
	return ev.KV, nil
}

// Delete implements Interface.
func (s *Bolt) Delete(ctx context.Context, key string, expected int64) (KeyValue, int64, error) {
	ev, err := s.write(func(tx *bolt.Tx, rev int64) (*Event, error) {
		b := tx.Bucket(bucketKV)
		old := b.Get([]byte(key))
		if old == nil {
			return nil, ErrNotFound
		}
		prev := decodeKV(key, old)
		if expected != 0 && prev.ModRevision != expected {
			return nil, &ConflictError{Current: prev}
		}
		if err := b.Delete([]byte(key)); err != nil {
			return nil, err
		}
		return &Event{Type: EventDelete, KV: KeyValue{Key: key, ModRevision: rev}, PrevKV: &prev}, nil
	})
	if err != nil {
		return KeyValue{}, 0, err
	}
	return *ev.PrevKV, ev.KV.ModRevision, nil
}

// CurrentRevision implements Interface.
func (s *Bolt) CurrentRevision(ctx context.Context) (int64, error) {
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	return s.rev, nil
}

// CompactedRevision implements Interface.
func (s *Bolt) CompactedRevision(ctx context.Context) (int64, error) {
	return s.compactedRev(), nil
}

// HistoryLen returns the number of events kept (for tests and metrics).
func (s *Bolt) HistoryLen() int {
	n := 0
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketHist).Stats().KeyN
		return nil
	})
	return n
}

// Compact implements Interface.
func (s *Bolt) Compact(ctx context.Context, rev int64) error {
	if s.closed() {
		return ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if rev > s.rev {
		return ErrFutureRevision
	}
	if rev <= s.compacted {
		return nil
	}
	return s.compactLocked(rev)
}

const compactBatch = 5000

func (s *Bolt) compactLocked(rev int64) error {
	// Delete in batches so one huge compaction does not hold a giant tx.
	for {
		done := true
		err := s.db.Update(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketHist).Cursor()
			n := 0
			for k, _ := c.First(); k != nil && getInt(k) <= rev; k, _ = c.Next() {
				if n >= compactBatch {
					done = false
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			if done {
				return tx.Bucket(bucketMeta).Put(metaCompacted, putInt(rev))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	s.revMu.Lock()
	s.compacted = rev
	s.revMu.Unlock()
	return nil
}

// autoCompact applies the age and size limits.
func (s *Bolt) autoCompact() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	target := s.rev - s.opts.HistoryMaxEvents
	cutoff := time.Now().Add(-s.opts.HistoryMaxAge).UnixNano()
	s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHist).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) < 9 || getInt(v[1:9]) > cutoff {
				break
			}
			if r := getInt(k); r > target {
				target = r
			}
		}
		return nil
	})
	if target > s.compacted {
		s.compactLocked(target)
	}
}

func (s *Bolt) compactLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.compactKick:
		}
		s.autoCompact()
	}
}

// Close implements Interface.
func (s *Bolt) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.subMu.Lock()
		for w := range s.subs {
			w.close(nil)
		}
		s.subs = map[*boltWatcher]struct{}{}
		s.subMu.Unlock()
		s.writeMu.Lock()
		err = s.db.Close()
		s.writeMu.Unlock()
	})
	return err
}

// maxPending is how many undelivered events a watcher may queue before it
// is closed as too slow.
const maxPending = 100000

type boltWatcher struct {
	s       *Bolt
	prefix  string
	from    int64
	mu      sync.Mutex
	pending []Event
	signal  chan struct{}
	out     chan Event
	done    chan struct{}
	once    sync.Once
	err     error
}

func (w *boltWatcher) Events() <-chan Event { return w.out }

func (w *boltWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *boltWatcher) close(err error) {
	w.once.Do(func() {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		close(w.done)
	})
}

func (w *boltWatcher) Stop() {
	w.s.subMu.Lock()
	delete(w.s.subs, w)
	w.s.subMu.Unlock()
	w.close(nil)
}

func (w *boltWatcher) push(ev Event) {
	w.mu.Lock()
	if len(w.pending) >= maxPending {
		w.mu.Unlock()
		w.close(errors.New("store: watcher fell too far behind"))
		return
	}
	w.pending = append(w.pending, ev)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *boltWatcher) pump(ctx context.Context) {
	defer close(w.out)
	defer func() {
		w.s.subMu.Lock()
		delete(w.s.subs, w)
		w.s.subMu.Unlock()
	}()
	for {
		w.mu.Lock()
		batch := w.pending
		w.pending = nil
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case w.out <- ev:
			case <-w.done:
				return
			case <-ctx.Done():
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-w.signal:
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *Bolt) publish(ev Event) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for w := range s.subs {
		if ev.KV.ModRevision > w.from && strings.HasPrefix(ev.KV.Key, w.prefix) {
			w.push(ev)
		}
	}
}

// Watch implements Interface.
func (s *Bolt) Watch(ctx context.Context, prefix string, from int64) (Watcher, error) {
	if s.closed() {
		return nil, ErrClosed
	}
	// Holding writeMu: no commit can slip between the history read and the
	// registration.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if from == 0 {
		from = s.rev
	}
	if from < s.compacted {
		return nil, ErrCompacted
	}
	w := &boltWatcher{s: s, prefix: prefix, from: from, signal: make(chan struct{}, 1), out: make(chan Event, 64), done: make(chan struct{})}
	if from < s.rev {
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketHist).Cursor()
			for k, v := c.Seek(putInt(from + 1)); k != nil; k, v = c.Next() {
				ev, _, err := decodeEvent(getInt(k), v)
				if err != nil {
					return err
				}
				if strings.HasPrefix(ev.KV.Key, prefix) {
					w.pending = append(w.pending, ev)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	s.subMu.Lock()
	s.subs[w] = struct{}{}
	s.subMu.Unlock()
	go w.pump(ctx)
	return w, nil
}

var _ Interface = (*Bolt)(nil)
