package hfhub

import (
	"context"
	"encoding/json"
	"fmt"
	"mohawk/internal/hubtest"
	"mohawk/internal/shareddata"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHub is a local stand-in for the Hub's HTTP API, serving one
// repository at one commit from memory. Small files are answered directly
// with their git blob sha1 as ETag; LFS files redirect to /cdn/<sha256> on
// the same server, which honours Range requests.
type fakeHub struct {
	*httptest.Server
	repo   string
	commit string
	refs   map[string]string // branch or tag → commit
	files  map[string][]byte
	lfs    map[string]bool
	listed []string // the file list the API gives; default: the keys of files

	mu        sync.Mutex
	gated     string         // a token that opens the repository; "" = public
	limited   int            // answer this many API requests with 429
	cut       map[string]int // LFS file → how many GETs to cut halfway
	corrupt   map[string]bool
	requests  []string // "METHOD path range auth"
	retryWait string
}

func newFakeHub(t *testing.T, repo string, files map[string][]byte, lfs ...string) *fakeHub {
	t.Helper()
	h := &fakeHub{repo: repo, commit: strings.Repeat("c0ffee", 6) + "1234", files: files,
		lfs: map[string]bool{}, cut: map[string]int{}, corrupt: map[string]bool{}, retryWait: "2"}
	h.refs = map[string]string{"main": h.commit, "v1.0": h.commit}
	for _, f := range lfs {
		h.lfs[f] = true
	}
	for f := range files {
		h.listed = append(h.listed, f)
	}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

var (
	gitSHA1   = hubtest.GitBlobSHA1
	sha256Hex = hubtest.SHA256
)

func (h *fakeHub) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization"))))
	gated, limited := h.gated, h.limited > 0 && strings.HasPrefix(r.URL.Path, "/api/")
	if limited {
		h.limited--
	}
	h.mu.Unlock()
	if limited {
		w.Header().Set("Retry-After", h.retryWait)
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}
	if digest, ok := strings.CutPrefix(r.URL.Path, "/cdn/"); ok {
		h.serveBlob(w, r, digest)
		return
	}
	api, isAPI := strings.CutPrefix(r.URL.Path, "/api/models/")
	repo, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/resolve/")
	if isAPI {
		repo, rest, _ = strings.Cut(api, "/revision/")
	}
	if !strings.HasPrefix(repo+"/", h.repo+"/") {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
		return
	}
	if gated != "" && r.Header.Get("Authorization") != "Bearer "+gated {
		w.Header().Set("X-Error-Code", "GatedRepo")
		http.Error(w, `{"error":"Access to model is restricted"}`, http.StatusUnauthorized)
		return
	}
	rev, file, _ := strings.Cut(rest, "/")
	commit := h.refs[rev]
	if rev == h.commit {
		commit = rev
	}
	if commit == "" {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		http.Error(w, `{"error":"Invalid rev id"}`, http.StatusNotFound)
		return
	}
	if isAPI {
		info := map[string]any{"id": h.repo, "sha": commit}
		var sib []map[string]string
		for _, f := range h.listed {
			sib = append(sib, map[string]string{"rfilename": f})
		}
		info["siblings"] = sib
		json.NewEncoder(w).Encode(info)
		return
	}
	body, ok := h.files[file]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, `{"error":"Entry not found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	if h.lfs[file] {
		w.Header().Set("X-Linked-Etag", `"`+sha256Hex(body)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(body)))
		w.Header().Set("ETag", `"`+gitSHA1([]byte("pointer"))+`"`)
		http.Redirect(w, r, "/cdn/"+sha256Hex(body), http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+gitSHA1(body)+`"`)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (h *fakeHub) serveBlob(w http.ResponseWriter, r *http.Request, digest string) {
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "the CDN must not get the Hub token", http.StatusBadRequest)
		return
	}
	for name, body := range h.files {
		if !h.lfs[name] || sha256Hex(body) != digest {
			continue
		}
		h.mu.Lock()
		cut := h.cut[name] > 0 && r.Header.Get("Range") == ""
		if cut {
			h.cut[name]--
		}
		corrupt := h.corrupt[name]
		h.mu.Unlock()
		if corrupt {
			body = append([]byte(nil), body...)
			body[len(body)/2] ^= 1
		}
		if cut {
			// Promise the whole file, send half, drop the connection.
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, name, time.Time{}, strings.NewReader(string(body)))
		return
	}
	http.NotFound(w, r)
}

// client is a Client of hub writing into a fresh cache, recording the
// waits it would have slept.
func (h *fakeHub) client(t *testing.T, waits *[]time.Duration) *Client {
	t.Helper()
	return &Client{Endpoint: h.URL, Cache: Cache{Dir: t.TempDir()}, HTTP: h.Client(),
		sleep: func(_ context.Context, d time.Duration) error { *waits = append(*waits, d); return nil }}
}

// phiTiny reads the small reference model: three LFS shards and the JSON
// files beside them.
func phiTiny(t *testing.T) (files map[string][]byte, lfs []string) {
	t.Helper()
	dir := shareddata.Path(t, "reference", "phi-tiny-en")
	files = map[string][]byte{}
	for _, n := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "model.safetensors.index.json",
		"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
		if strings.HasSuffix(n, ".safetensors") {
			lfs = append(lfs, n)
		}
	}
	return files, lfs
}
