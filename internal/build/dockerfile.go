package build

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand // ARGs before the first FROM
	Escape   rune
	Warnings []string
}

// ParseDockerfile parses with BuildKit's parser and instruction packages. Errors name the line as
// Docker's classic builder does ("dockerfile parse error line 2: unknown instruction: FOO").
func ParseDockerfile(data []byte) (*Dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		if strings.Contains(err.Error(), "file with no instructions") {
			return nil, errors.New("the Dockerfile (Dockerfile) cannot be empty")
		}
		return nil, parseErr(err)
	}
	if len(res.AST.Children) == 0 {
		return nil, errors.New("the Dockerfile (Dockerfile) cannot be empty")
	}
	stages, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, parseErr(err)
	}
	if len(stages) == 0 {
		return nil, errors.New("No image was generated. Is your Dockerfile empty?")
	}
	d := &Dockerfile{Stages: stages, MetaArgs: meta, Escape: res.EscapeToken}
	for _, w := range res.Warnings {
		d.Warnings = append(d.Warnings, w.Short)
	}
	return d, nil
}

func parseErr(err error) error {
	msg := err.Error()
	msg = strings.Replace(msg, "dockerfile parse error on line ", "dockerfile parse error line ", 1)
	if !strings.HasPrefix(msg, "dockerfile parse error") {
		var le *parser.LocationError
		if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			msg = fmt.Sprintf("dockerfile parse error line %d: %s", le.Locations[0][0].Start.Line, msg)
		}
	}
	return &Error{Msg: msg}
}

// Error is a build error shown to the client as Docker shows it.
type Error struct {
	Msg  string
	Code int // exit code the CLI uses (0 → 1)
}

func (e *Error) Error() string { return e.Msg }

func errorf(format string, a ...any) error { return &Error{Msg: fmt.Sprintf(format, a...)} }

// predefinedArgs may be set with --build-arg without an ARG instruction; they are never recorded
// in the image history.
var predefinedArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// argScope tracks the ARG values in scope for a stage, with the --build-arg values given.
type argScope struct {
	given    map[string]*string // --build-arg
	used     map[string]bool    // build-args consumed by some ARG (or predefined)
	global   map[string]*string // values of the meta ARGs
	declared map[string]*string // this stage's ARGs: name → value (nil = no value)
	order    []string
}

func newArgScope(given map[string]*string) *argScope {
	if given == nil {
		given = map[string]*string{}
	}
	return &argScope{given: given, used: map[string]bool{}, global: map[string]*string{}, declared: map[string]*string{}}
}

// newStage starts a new stage's scope: only the meta ARGs stay visible, and only to FROM and to
// a re-declaration.
func (a *argScope) newStage() {
	a.declared = map[string]*string{}
	a.order = nil
}

// declare handles one ARG key[=default] (the default already expanded); meta says it is a global one.
func (a *argScope) declare(key string, def *string, meta bool) {
	v := def
	if g, ok := a.given[key]; ok {
		a.used[key] = true
		if g != nil {
			v = g
		}
	}
	if !meta && v == nil {
		if g, ok := a.global[key]; ok {
			v = g
		}
	}
	if meta {
		a.global[key] = v
		return
	}
	if _, ok := a.declared[key]; !ok {
		a.order = append(a.order, key)
	}
	a.declared[key] = v
}

// env returns the variables ARG makes visible, for expansion and for RUN: declared ARGs with a
// value and the predefined proxy args given with --build-arg.
func (a *argScope) env() []string {
	var out []string
	for _, k := range a.order {
		if v := a.declared[k]; v != nil {
			out = append(out, k+"="+*v)
		}
	}
	var pre []string
	for k, v := range a.given {
		if predefinedArgs[k] && v != nil {
			if _, ok := a.declared[k]; !ok {
				a.used[k] = true
				pre = append(pre, k+"="+*v)
			}
		}
	}
	sort.Strings(pre)
	return append(out, pre...)
}

// historyArgs is the "K=V" list Docker prefixes RUN's history with ("|1 K=V /bin/sh -c …"): the
// declared ARGs with a value, sorted, predefined proxy args left out.
func (a *argScope) historyArgs() []string {
	var out []string
	for _, k := range a.order {
		if v := a.declared[k]; v != nil && !predefinedArgs[k] {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

// metaEnv is what FROM expands with: the meta ARGs that have a value.
func (a *argScope) metaEnv() []string {
	var out []string
	for k, v := range a.global {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

// unused lists the --build-args that no ARG consumed, sorted.
func (a *argScope) unused() []string {
	var out []string
	for k := range a.given {
		if !a.used[k] && !predefinedArgs[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Expand expands $VAR, ${VAR}, ${VAR:-x}… in word the way the Dockerfile frontend does. env is a
// list of K=V (later entries win).
func Expand(word string, env []string, escape rune) (string, error) {
	lex := shell.NewLex(escape)
	out, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(dedupEnv(env)))
	return out, err
}

// dedupEnv keeps the last value of each variable.
func dedupEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// setEnv sets k=v in env (replacing an existing k in place).
func setEnv(env []string, k, v string) []string {
	out := append([]string(nil), env...)
	for i, kv := range out {
		if kk, _, _ := strings.Cut(kv, "="); kk == k {
			out[i] = k + "=" + v
			return out
		}
	}
	return append(out, k+"="+v)
}
