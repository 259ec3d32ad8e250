package main

import (
	"context"
	"runtime"
	"sort"
	"strconv"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

const defaultVersionTemplate = `{{with .Client -}}
Client:{{if ne .Platform nil}}{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}{{end}}
 Version:	{{.Version}}
 API version:	{{.APIVersion}}{{if ne .APIVersion .DefaultAPIVersion}} (downgraded from {{.DefaultAPIVersion}}){{end}}
 Go version:	{{.GoVersion}}
 Git commit:	{{.GitCommit}}
 Built:	{{.BuildTime}}
 OS/Arch:	{{.Os}}/{{.Arch}}
 Context:	{{.Context}}
{{- end}}

{{- if ne .Server nil}}{{with .Server}}

Server:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}
 {{- range $component := .Components}}
 {{$component.Name}}:
  {{- if eq $component.Name "Engine" }}
  Version:	{{.Version}}
  API version:	{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:	{{index .Details "GoVersion"}}
  Git commit:	{{index .Details "GitCommit"}}
  Built:	{{index .Details "BuildTime"}}
  OS/Arch:	{{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:	{{index .Details "Experimental"}}
  {{- else }}
  Version:	{{$component.Version}}
  {{- $detailsOrder := getDetailsOrder $component}}
  {{- range $key := $detailsOrder}}
  {{$key}}:	{{index $component.Details $key}}
   {{- end}}
  {{- end}}
 {{- end}}
 {{- end}}{{- end}}`

type platformInfo struct {
	Name string `json:"Name,omitempty"`
}

type clientVersion struct {
	Platform          *platformInfo `json:"Platform,omitempty"`
	Version           string        `json:"Version,omitempty"`
	APIVersion        string        `json:"ApiVersion,omitempty"`
	DefaultAPIVersion string        `json:"DefaultAPIVersion,omitempty"`
	GitCommit         string        `json:"GitCommit,omitempty"`
	GoVersion         string        `json:"GoVersion,omitempty"`
	Os                string        `json:"Os,omitempty"`
	Arch              string        `json:"Arch,omitempty"`
	BuildTime         string        `json:"BuildTime,omitempty"`
	Context           string        `json:"Context"`
}

type serverVersion struct {
	Platform      platformInfo
	Components    []system.ComponentVersion `json:",omitempty"`
	Version       string
	APIVersion    string `json:"ApiVersion"`
	MinAPIVersion string `json:"MinAPIVersion,omitempty"`
	Os            string
	Arch          string
	Experimental  bool `json:",omitempty"`
}

type versionInfo struct {
	Client clientVersion
	Server *serverVersion
}

func (c *cli) newVersionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the Wharf version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runVersion(format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template")
	return cmd
}

func newVersionTemplate(format string) (*template.Template, error) {
	switch format {
	case "":
		format = defaultVersionTemplate
	case jsonFormatKey:
		format = "{{json .}}"
	}
	t, err := template.New("version").Funcs(templateFuncs).Funcs(template.FuncMap{"getDetailsOrder": getDetailsOrder}).Parse(format)
	if err != nil {
		return nil, statusError{Status: "template parsing error: " + err.Error(), Code: 64}
	}
	return t, nil
}

func getDetailsOrder(v system.ComponentVersion) []string {
	out := make([]string, 0, len(v.Details))
	for k := range v.Details {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *cli) runVersion(format string) error {
	tmpl, err := newVersionTemplate(format)
	if err != nil {
		return err
	}
	vd := versionInfo{Client: clientVersion{
		Platform:          &platformInfo{Name: "Wharf"},
		Version:           version,
		DefaultAPIVersion: client.MaxAPIVersion,
		APIVersion:        client.MaxAPIVersion,
		GoVersion:         runtime.Version(),
		GitCommit:         gitCommit,
		BuildTime:         reformatDate(buildTime),
		Os:                runtime.GOOS,
		Arch:              runtime.GOARCH,
		Context:           "default",
	}}
	api, err := c.client()
	if err == nil {
		var sv client.ServerVersionResult
		sv, err = api.ServerVersion(context.Background(), client.ServerVersionOptions{})
		if err == nil {
			vd.Client.APIVersion = api.ClientVersion()
			s := &serverVersion{
				Platform: platformInfo{Name: sv.Platform.Name}, Components: sv.Components, Version: sv.Version,
				APIVersion: sv.APIVersion, MinAPIVersion: sv.MinAPIVersion, Os: sv.Os, Arch: sv.Arch,
				Experimental: sv.Experimental,
			}
			found := false
			for _, comp := range s.Components {
				if comp.Name == "Engine" {
					found = true
					if bt, ok := comp.Details["BuildTime"]; ok {
						comp.Details["BuildTime"] = reformatDate(bt)
					}
				}
			}
			if !found {
				s.Components = append(s.Components, system.ComponentVersion{
					Name: "Engine", Version: sv.Version,
					Details: map[string]string{
						"ApiVersion": sv.APIVersion, "MinAPIVersion": sv.MinAPIVersion, "Os": sv.Os, "Arch": sv.Arch,
						"Experimental": strconv.FormatBool(sv.Experimental), "GoVersion": "", "GitCommit": "", "BuildTime": "",
					},
				})
			}
			vd.Server = s
		}
	}
	tw := tabwriter.NewWriter(c.out, 20, 1, 1, ' ', 0)
	err2 := tmpl.Execute(tw, vd)
	_, _ = tw.Write([]byte("\n"))
	_ = tw.Flush()
	if err != nil {
		return err
	}
	return err2
}

// reformatDate turns an RFC3339 build time into docker's "Mon Jan  2 15:04:05 2006" style.
func reformatDate(buildTime string) string {
	t, err := time.Parse(time.RFC3339Nano, buildTime)
	if err == nil {
		return t.Format(time.ANSIC)
	}
	return buildTime
}
