package engine

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"regexp"
	"sort"
	"strings"
)

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Container finds a container by full ID, name (with or without "/") or unique ID prefix.
func (e *Engine) Container(ref string) (*Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lookupLocked(ref)
}

func (e *Engine) lookupLocked(ref string) (*Container, error) {
	if ref == "" {
		return nil, NotFound("No such container: %s", ref)
	}
	if c, ok := e.containers[ref]; ok {
		return c, nil
	}
	name := ref
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	if id, ok := e.names[name]; ok {
		return e.containers[id], nil
	}
	var found *Container
	for id, c := range e.containers {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, Invalid("Multiple IDs found with provided prefix: %s", ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, NotFound("No such container: %s", ref)
	}
	return found, nil
}

// Containers returns all containers, newest first.
func (e *Engine) Containers() []*Container {
	e.mu.Lock()
	out := make([]*Container, 0, len(e.containers))
	for _, c := range e.containers {
		out = append(out, c)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	nameLeft  = []string{"admiring", "bold", "brave", "busy", "clever", "dazzling", "eager", "elegant", "festive", "focused", "gallant", "happy", "jolly", "keen", "kind", "loving", "modest", "nifty", "quirky", "serene", "sharp", "stoic", "tender", "vibrant", "wizardly", "zealous"}
	nameRight = []string{"albattani", "banach", "bohr", "curie", "darwin", "einstein", "euler", "fermi", "gauss", "hopper", "hypatia", "kepler", "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak"}
)

func pick(list []string) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	return list[n.Int64()]
}

// generateName makes a Docker-style random name not yet in use. Caller holds e.mu.
func (e *Engine) generateNameLocked() string {
	for i := 0; ; i++ {
		n := "/" + pick(nameLeft) + "_" + pick(nameRight)
		if i > 10 {
			n += "_" + newID()[:4]
		}
		if _, taken := e.names[n]; !taken {
			return n
		}
	}
}
