package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// Output formatting shared by every listing command: docker's --format rules.
//   - "table …" renders a header row (from the header map) and aligns columns with a tabwriter (minwidth 10,
//     padding 3), "json" is "{{json .}}", anything else is a Go template run once per item;
//   - `\t` and `\n` typed on the command line become a tab and a newline;
//   - template functions: json, split, join, title, lower, upper, pad, truncate, println.

const (
	tableFormatKey = "table"
	jsonFormatKey  = "json"
	quietFormat    = "{{.ID}}"
)

var templateFuncs = template.FuncMap{
	"json": func(v any) string {
		buf := &bytes.Buffer{}
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			panic(err)
		}
		return strings.TrimSpace(buf.String())
	},
	"split":    strings.Split,
	"join":     strings.Join,
	"title":    titleCase,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      padWithSpace,
	"truncate": truncateWithLength,
	"println":  fmt.Sprintln,
}

// headerFuncs make the same template render header names, whatever functions it applies.
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"split":    func(v string, _ string) string { return v },
	"join":     func(v string, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

func titleCase(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || unicode.IsPunct(prev) {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

func padWithSpace(source string, prefix, suffix int) string {
	if source == "" {
		return source
	}
	return strings.Repeat(" ", prefix) + source + strings.Repeat(" ", suffix)
}

func truncateWithLength(source string, length int) string {
	if len(source) < length {
		return source
	}
	return source[:length]
}

// parseTemplate parses a user template with docker's helper functions.
func parseTemplate(format string) (*template.Template, error) {
	t, err := template.New("").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// isTableFormat reports whether the format asks for a table.
func isTableFormat(f string) bool { return strings.HasPrefix(f, tableFormatKey) }

// finalFormat turns the user's --format into the template text to execute.
func finalFormat(f string) string {
	switch {
	case isTableFormat(f):
		f = f[len(tableFormatKey):]
	case f == jsonFormatKey:
		f = "{{json .}}"
	}
	f = strings.Trim(f, " ")
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(f)
}

// writeFormatted renders items (pointers to structs whose methods are the fields) with format; header names the
// columns for table output.
func writeFormatted(out io.Writer, format string, header map[string]string, items []any) error {
	tmpl, err := parseTemplate(finalFormat(format))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, it := range items {
		if err := tmpl.Execute(&buf, it); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		buf.WriteString("\n")
	}
	if !isTableFormat(format) {
		_, err := buf.WriteTo(out)
		return err
	}
	tw := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	var hbuf bytes.Buffer
	_ = tmpl.Funcs(headerFuncs).Execute(&hbuf, header)
	_, _ = hbuf.WriteTo(tw)
	_, _ = tw.Write([]byte("\n"))
	_, _ = buf.WriteTo(tw)
	return tw.Flush()
}

// marshalContext makes the JSON for a formatting context: every exported, argument-less, single-result method.
func marshalContext(x any) ([]byte, error) {
	v := reflect.ValueOf(x)
	t := v.Type()
	m := map[string]any{}
	for i := 0; i < v.NumMethod(); i++ {
		meth := t.Method(i)
		fn := v.Method(i)
		if meth.Name == "MarshalJSON" || !unicode.IsUpper(rune(meth.Name[0])) {
			continue
		}
		if fn.Type().NumIn() != 0 || fn.Type().NumOut() != 1 {
			continue
		}
		m[meth.Name] = fn.Call(nil)[0].Interface()
	}
	return json.Marshal(m)
}

// ellipsis shortens s to maxWidth display characters, ending it with "…".
func ellipsis(s string, maxWidth int) string {
	if maxWidth <= 0 {
		return ""
	}
	rs := []rune(s)
	if maxWidth == 1 && len(rs) > 0 {
		return string(rs[0])
	}
	if utf8.RuneCountInString(s) <= maxWidth {
		return s
	}
	return string(rs[:maxWidth-1]) + "…"
}

// truncateID shortens an ID to 12 hex characters, dropping any "sha256:".
func truncateID(id string) string {
	if i := strings.IndexRune(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}
