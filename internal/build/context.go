package build

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/wharfhq/wharf/internal/snapshot"
)

// maxDockerfileSize bounds what we read as a Dockerfile or .dockerignore.
const maxDockerfileSize = 16 << 20

// extractContext unpacks the context tar (plain, gzip or bzip2) into dir, an empty directory.
// Entries that climb out, devices and links out of dir are refused (snapshot.ExtractTar); the
// files are owned by the daemon (COPY sets its own ownership).
func extractContext(r io.Reader, dir string) error {
	if err := snapshot.ExtractTar(r, dir, snapshot.ExtractOptions{NoLchown: true}); err != nil {
		return fmt.Errorf("error reading build context: %w", err)
	}
	return nil
}

// readContextFile reads a regular file of the context by its name in the context, following
// symlinks only inside the context.
func readContextFile(dir, name string) ([]byte, error) {
	p, err := securejoin.SecureJoin(dir, name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	return io.ReadAll(io.LimitReader(f, maxDockerfileSize))
}

// readDockerfile finds the Dockerfile in the context (name as the API's dockerfile parameter gives
// it; "Dockerfile" falls back to "dockerfile" as Docker does).
func readDockerfile(dir, name string) ([]byte, string, error) {
	if name == "" {
		name = "Dockerfile"
	}
	clean := path.Clean("/" + filepath.ToSlash(name))[1:]
	data, err := readContextFile(dir, clean)
	if errors.Is(err, fs.ErrNotExist) && name == "Dockerfile" {
		if d, err2 := readContextFile(dir, "dockerfile"); err2 == nil {
			return d, "dockerfile", nil
		}
	}
	if err != nil {
		return nil, "", errorf("Cannot locate specified Dockerfile: %s", name)
	}
	return data, clean, nil
}

// ParseIgnore reads .dockerignore patterns.
func ParseIgnore(data []byte) ([]string, error) {
	return ignorefile.ReadAll(bytes.NewReader(data))
}

// ignoreMatcher builds the matcher for the context's exclude patterns; the Dockerfile and
// .dockerignore themselves are never excluded (the daemon needs them).
func ignoreMatcher(patterns []string, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, errorf("error checking context: %v", err)
	}
	return pm, nil
}

// Excluded reports whether rel (slash-separated, relative to the context root) is left out by pm.
func Excluded(pm *patternmatcher.PatternMatcher, rel string) bool {
	if pm == nil {
		return false
	}
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	if rel == "" {
		return false
	}
	// A path is excluded when it or one of its parents matches (with the parent results, as the
	// CLI walks the tree).
	parts := strings.Split(rel, "/")
	var info patternmatcher.MatchInfo
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		m, inf, err := pm.MatchesUsingParentResults(p, info)
		if err != nil {
			return false
		}
		info = inf
		if i == len(parts)-1 {
			return m
		}
	}
	return false
}

// applyIgnore removes from the extracted context what .dockerignore excludes (the CLI already
// leaves those out, but API clients may not), keeping the Dockerfile and .dockerignore.
func applyIgnore(dir string, pm *patternmatcher.PatternMatcher, keep ...string) error {
	if pm == nil {
		return nil
	}
	keepSet := map[string]bool{".dockerignore": true}
	for _, k := range keep {
		keepSet[k] = true
	}
	var remove []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if keepSet[rel] || !Excluded(pm, rel) {
			return nil
		}
		if de.IsDir() {
			if pm.Exclusions() {
				return nil // an exception may bring something inside back
			}
			remove = append(remove, p)
			return filepath.SkipDir
		}
		remove = append(remove, p)
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range remove {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}
