package docker

import (
	"context"
	"net/http"
	"strconv"

	"github.com/wharfhq/wharf/internal/engine"
)

type execCreateRequest struct {
	User         string
	Privileged   bool
	Tty          bool
	AttachStdin  bool
	AttachStderr bool
	AttachStdout bool
	Detach       bool // CLI 28 sends it though the types lack it
	Env          []string
	WorkingDir   string
	Cmd          []string
}

func (s *Server) execCreate(r *request, id string) error {
	var req execCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	xid, err := s.e.ExecCreate(id, engine.ExecConfig{Cmd: req.Cmd, Env: req.Env, User: req.User, WorkingDir: req.WorkingDir,
		Tty: req.Tty, AttachStdin: req.AttachStdin, AttachStdout: req.AttachStdout, AttachStderr: req.AttachStderr, Privileged: req.Privileged})
	if err != nil {
		return err
	}
	return writeJSON(r.w, http.StatusCreated, map[string]string{"Id": xid})
}

func (s *Server) execStart(r *request, id string) error {
	var req struct {
		Detach bool
		Tty    bool
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	st, err := s.e.ExecInspect(id)
	if err != nil {
		return err
	}
	if req.Detach {
		go s.e.ExecStart(context.Background(), id, nil, nil, nil)
		r.w.WriteHeader(http.StatusOK)
		return nil
	}
	tty := st.Config.Tty
	conn, brw, err := hijack(r, tty)
	if err != nil {
		return err
	}
	defer conn.Close()
	stdout, stderr := outputs(brw, tty, func() { brw.Flush() })
	var in *stdinReader
	if st.Config.AttachStdin {
		in = &stdinReader{brw.Reader}
	}
	var err2 error
	if in != nil {
		err2 = s.e.ExecStart(context.Background(), id, in, stdout, stderr)
	} else {
		err2 = s.e.ExecStart(context.Background(), id, nil, stdout, stderr)
	}
	if err2 != nil {
		// The exec could not start: tell the client on its stream, as dockerd does.
		stderr.Write([]byte(err2.Error() + "\n"))
	}
	brw.Flush()
	closeWrite(conn)
	return errHandled
}

func (s *Server) execResize(r *request, id string) error {
	h, _ := strconv.Atoi(r.query("h"))
	w, _ := strconv.Atoi(r.query("w"))
	if err := s.e.ExecResize(id, uint16(w), uint16(h)); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) execInspect(r *request, id string) error {
	st, err := s.e.ExecInspect(id)
	if err != nil {
		return err
	}
	code := 0
	if st.ExitCode != nil {
		code = *st.ExitCode
	}
	var exitCode any = code
	if st.ExitCode == nil {
		exitCode = nil
	}
	entry := ""
	var args []string
	if len(st.Config.Cmd) > 0 {
		entry, args = st.Config.Cmd[0], st.Config.Cmd[1:]
	}
	return writeJSON(r.w, http.StatusOK, map[string]any{
		"ID": st.ID, "Running": st.Running, "ExitCode": exitCode, "ContainerID": st.ContainerID, "Pid": st.Pid,
		"OpenStdin": st.Config.AttachStdin, "OpenStdout": st.Config.AttachStdout, "OpenStderr": st.Config.AttachStderr,
		"CanRemove": false, "DetachKeys": "",
		"ProcessConfig": map[string]any{"tty": st.Config.Tty, "entrypoint": entry, "arguments": args, "privileged": st.Config.Privileged, "user": st.Config.User},
	})
}
