package apiserver

import (
	"context"
	"sync"

	"encoding/json"
	"errors"
	"fmt"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

// bookmarkInterval is how often an idle watch with allowWatchBookmarks
// gets a BOOKMARK.
var bookmarkInterval = 30 * time.Second

type watchWriter struct {
	w       http.ResponseWriter
	fl      http.Flusher
	r       *resource
	table   bool
	include string
	headers bool
	lastRV  int64
}

func (ww *watchWriter) send(typ watch.EventType, obj runtime.Object) error {
	var payload interface{} = obj
	if ww.table && typ != watch.Bookmark && typ != watch.Error {
		t := tableFor(ww.r, []runtime.Object{obj}, !ww.headers, ww.include)
		ww.headers = true
		t.ResourceVersion = obj.(metav1.Object).GetResourceVersion()
		payload = t
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	line, err := json.Marshal(metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: raw}})
	if err != nil {
		return err
	}
	if _, err := ww.w.Write(append(line, '\n')); err != nil {
		return err
	}
	ww.fl.Flush()
	return nil
}

func (ww *watchWriter) bookmark(rv int64, initialEnd bool) error {
	obj := ww.r.newObj()
	s := obj.(metav1.Object)
	s.SetResourceVersion(strconv.FormatInt(rv, 10))
	if initialEnd {
		s.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	obj.GetObjectKind().SetGroupVersionKind(ww.r.gvk())
	// a bookmark carries only kind, apiVersion and metadata.resourceVersion
	raw, _ := json.Marshal(map[string]interface{}{
		"kind": ww.r.kind, "apiVersion": ww.r.apiVersion(),
		"metadata": map[string]interface{}{"resourceVersion": s.GetResourceVersion(), "annotations": s.GetAnnotations()},
	})
	line, _ := json.Marshal(metav1.WatchEvent{Type: string(watch.Bookmark), Object: runtime.RawExtension{Raw: raw}})
	if _, err := ww.w.Write(append(line, '\n')); err != nil {
		return err
	}
	ww.fl.Flush()
	return nil
}

func (s *Server) serveWatch(w http.ResponseWriter, req *http.Request, r *resource, ns string) {
	ctx := req.Context()
	q := req.URL.Query()
	sel, err := parseSelectors(req, r)
	if err != nil {
		writeError(w, err)
		return
	}
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	initial := q.Get("sendInitialEvents")
	rvParam := q.Get("resourceVersion")
	if initial != "" {
		var errs field.ErrorList
		if q.Get("resourceVersionMatch") != "NotOlderThan" {
			errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
		}
		if initial == "true" && !bookmarks {
			errs = append(errs, field.Forbidden(field.NewPath("allowWatchBookmarks"), "sendInitialEvents requires setting allowWatchBookmarks to true"))
		}
		if len(errs) > 0 {
			writeError(w, apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("ListOptions").GroupKind(), "", errs))
			return
		}
	}
	timeout := time.Duration(1800+rand.IntN(1800)) * time.Second
	if v := q.Get("timeoutSeconds"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, apierrors.NewInternalError(errors.New("streaming unsupported")))
		return
	}

	// Decide the start revision and whether to replay the current state.
	var initialObjs []runtime.Object
	var from int64
	replay := rvParam == "" || rvParam == "0" || initial == "true"
	if replay {
		cur, err := s.store.CurrentRevision(ctx)
		if err != nil {
			writeError(w, storeErr(r, "", err))
			return
		}
		if rvParam != "" && rvParam != "0" {
			if n, err := strconv.ParseInt(rvParam, 10, 64); err == nil && n > cur {
				writeError(w, apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", n, cur), 1))
				return
			}
		}
		res, err := s.store.List(ctx, r.listPrefix(ns), store.ListOptions{Revision: cur})
		if err != nil {
			writeError(w, storeErr(r, "", err))
			return
		}
		for _, kv := range res.KVs {
			obj, err := s.decodeStored(r, kv)
			if err == nil && sel.matches(r, obj) {
				initialObjs = append(initialObjs, obj)
			}
		}
		from = res.Revision
	} else {
		n, err := strconv.ParseInt(rvParam, 10, 64)
		if err != nil {
			writeError(w, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %s", rvParam)))
			return
		}
		from = n
	}

	ww := &watchWriter{w: w, fl: fl, r: r, table: wantsTable(req), include: q.Get("includeObject"), lastRV: from}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	watcher, werr := s.store.Watch(wctx, r.listPrefix(ns), from)

	ct := "application/json"
	if ww.table {
		ct = "application/json;as=Table;v=v1;g=meta.k8s.io"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	fl.Flush()

	if werr != nil {
		var st metav1.Status
		if errors.Is(werr, store.ErrCompacted) {
			cr, _ := s.store.CompactedRevision(ctx)
			st = apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", from, cr)).Status()
		} else {
			st = storeErr(r, "", werr).(apierrors.APIStatus).Status()
		}
		st.Kind, st.APIVersion = "Status", "v1"
		ww.send(watch.Error, &st)
		return
	}
	defer watcher.Stop()

	for _, obj := range initialObjs {
		if ww.send(watch.Added, obj) != nil {
			return
		}
	}
	if initial == "true" {
		if ww.bookmark(from, true) != nil {
			return
		}
	}
	var tick <-chan time.Time
	if bookmarks {
		t := time.NewTicker(bookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-wctx.Done():
			return
		case <-tick:
			if ww.bookmark(ww.lastRV, false) != nil {
				return
			}
		case ev, ok := <-watcher.Events():
			if !ok {
				return
			}
			ww.lastRV = ev.Revision()
			if !ww.table && sel.label.Empty() && sel.field.Empty() {
				// no selector: every watcher of the resource sends the same
				// bytes; encode each event once
				line := s.events.line(s, r, ev)
				if line == nil {
					continue
				}
				if _, err := w.Write(line); err != nil {
					return
				}
				fl.Flush()
				continue
			}
			typ, obj := s.convertEvent(r, sel, ev)
			if obj == nil {
				continue
			}
			if ww.send(typ, obj) != nil {
				return
			}
		}
	}
}

// convertEvent maps a store event to a watch event, applying selectors
// (an object leaving the selection is DELETED, entering it is ADDED).
func (s *Server) convertEvent(r *resource, sel *selectors, ev store.Event) (watch.EventType, runtime.Object) {
	var cur, prev runtime.Object
	if ev.Type == store.EventPut {
		o, err := s.decodeStored(r, ev.KV)
		if err != nil {
			return "", nil
		}
		cur = o
	}
	if ev.PrevKV != nil {
		o, err := s.decodeStored(r, *ev.PrevKV)
		if err == nil {
			prev = o
		}
	}
	curMatch := cur != nil && sel.matches(r, cur)
	prevMatch := prev != nil && sel.matches(r, prev)
	switch {
	case ev.Type == store.EventDelete:
		if !prevMatch {
			return "", nil
		}
		prev.(metav1.Object).SetResourceVersion(strconv.FormatInt(ev.Revision(), 10))
		return watch.Deleted, prev
	case curMatch && prevMatch:
		return watch.Modified, cur
	case curMatch:
		return watch.Added, cur
	case prevMatch:
		// left the selection: report it gone, at the new revision
		prev.(metav1.Object).SetResourceVersion(strconv.FormatInt(ev.Revision(), 10))
		return watch.Deleted, prev
	}
	return "", nil
}

// eventCache keeps the encoded watch lines of recent events, shared by all
// watchers without selectors.
type eventCache struct {
	mu    sync.Mutex
	m     map[string][]byte
	order []string
}

const eventCacheSize = 4096

func (c *eventCache) line(s *Server, r *resource, ev store.Event) []byte {
	key := ev.KV.Key + "@" + strconv.FormatInt(ev.Revision(), 10)
	c.mu.Lock()
	if l, ok := c.m[key]; ok {
		c.mu.Unlock()
		return l
	}
	c.mu.Unlock()
	typ, obj := s.convertEvent(r, &selectors{label: labels.Everything(), field: fields.Everything()}, ev)
	if obj == nil {
		return nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	line, err := json.Marshal(metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: raw}})
	if err != nil {
		return nil
	}
	line = append(line, '\n')
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	if _, ok := c.m[key]; !ok {
		c.m[key] = line
		c.order = append(c.order, key)
		if len(c.order) > eventCacheSize {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	return line
}
