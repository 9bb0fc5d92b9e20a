package hubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hub is a local stand-in for the Hub's HTTP API, serving one
// repository at one commit from memory: a model (/api/models/org/name/…,
// /org/name/resolve/…) or a dataset (/api/datasets/org/name/…,
// /datasets/org/name/resolve/…). Small files are answered directly with
// their git blob sha1 as ETag; LFS files redirect to /cdn/<sha256> on the
// same server, which honours Range requests.
type Hub struct {
	*httptest.Server
	Repo   string // org/name
	Type   string // "model" or "dataset"
	Commit string
	Refs   map[string]string // branch or tag → commit
	Files  map[string][]byte
	LFS    map[string]bool
	Listed []string // the file list the API gives; default: the keys of Files

	// Faults, set through With once the server runs.
	Gated      string          // a token that opens the repository; "" = public
	Limited    int             // answer this many API requests with 429
	RetryAfter string          // the Retry-After of those answers
	Cut        map[string]int  // LFS file → how many whole-file GETs to cut halfway
	Stall      map[string]int  // LFS file → how many whole-file GETs to stop halfway, the connection left open
	Corrupt    map[string]bool // LFS file → serve it with one bit flipped
	Padded     map[string]bool // LFS file → serve it with bytes after its end

	mu       sync.Mutex
	requests []string // "METHOD path range auth"
}

// NewHub serves files as repository repo at Commit, under the branch main
// and the tag v1.0; the files named in lfs are LFS files. repo is the
// model "org/name" or the dataset "datasets/org/name".
func NewHub(t testing.TB, repo string, files map[string][]byte, lfs ...string) *Hub {
	t.Helper()
	typ, name := split(repo)
	h := &Hub{Repo: name, Type: typ, Commit: Commit, Files: files,
		LFS: map[string]bool{}, Cut: map[string]int{}, Stall: map[string]int{}, Corrupt: map[string]bool{}, Padded: map[string]bool{}, RetryAfter: "2"}
	h.Refs = map[string]string{"main": h.Commit, "v1.0": h.Commit}
	for _, f := range lfs {
		h.LFS[f] = true
	}
	for f := range files {
		h.Listed = append(h.Listed, f)
	}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

// With changes the hub's settings while no request is being served.
func (h *Hub) With(change func(h *Hub)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	change(h)
}

// CDNGets lists the requests for blob bytes, in order.
func (h *Hub) CDNGets() []string {
	var gets []string
	for _, r := range h.Log() {
		if strings.HasPrefix(r, "GET /cdn/") {
			gets = append(gets, r)
		}
	}
	return gets
}

// Log lists the requests served, each as "METHOD path [range] [authorization]".
func (h *Hub) Log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization"))))
	gated, limited, retryAfter, listed := h.Gated, h.Limited > 0 && strings.HasPrefix(r.URL.Path, "/api/"), h.RetryAfter, slices.Clone(h.Listed)
	if limited {
		h.Limited--
	}
	h.mu.Unlock()
	if limited {
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}
	if digest, ok := strings.CutPrefix(r.URL.Path, "/cdn/"); ok {
		h.serveBlob(w, r, digest)
		return
	}
	api, isAPI := strings.CutPrefix(r.URL.Path, "/api/"+h.Type+"s/")
	repo, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/resolve/")
	if isAPI {
		repo, rest, _ = strings.Cut(api, "/revision/")
	} else if h.Type != "model" {
		repo = strings.TrimPrefix(repo, h.Type+"s/") // a model's URL keeps the prefix and is not found
	}
	if repo != h.Repo {
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
	commit := h.Refs[rev]
	if rev == h.Commit {
		commit = rev
	}
	if commit == "" {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		http.Error(w, `{"error":"Invalid rev id"}`, http.StatusNotFound)
		return
	}
	if isAPI {
		info := map[string]any{"id": h.Repo, "sha": commit}
		var sib []map[string]string
		for _, f := range listed {
			sib = append(sib, map[string]string{"rfilename": f})
		}
		info["siblings"] = sib
		json.NewEncoder(w).Encode(info)
		return
	}
	body, ok := h.Files[file]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, `{"error":"Entry not found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	if h.LFS[file] {
		w.Header().Set("X-Linked-Etag", `"`+SHA256(body)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(body)))
		w.Header().Set("ETag", `"`+GitBlobSHA1([]byte("pointer"))+`"`)
		http.Redirect(w, r, "/cdn/"+SHA256(body), http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+GitBlobSHA1(body)+`"`)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (h *Hub) serveBlob(w http.ResponseWriter, r *http.Request, digest string) {
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "the CDN must not get the Hub token", http.StatusBadRequest)
		return
	}
	for name, body := range h.Files {
		if !h.LFS[name] || SHA256(body) != digest {
			continue
		}
		h.mu.Lock()
		cut := h.Cut[name] > 0 && r.Header.Get("Range") == ""
		if cut {
			h.Cut[name]--
		}
		stall := h.Stall[name] > 0 && r.Header.Get("Range") == ""
		if stall {
			h.Stall[name]--
		}
		corrupt, padded := h.Corrupt[name], h.Padded[name]
		h.mu.Unlock()
		if corrupt {
			body = append([]byte(nil), body...)
			body[len(body)/2] ^= 1
		}
		if padded {
			body = append(append([]byte(nil), body...), "trailing"...)
		}
		if cut || stall {
			// Promise the whole file, send half, then drop the connection
			// or go silent until the client gives up.
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			if stall {
				<-r.Context().Done()
			}
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, name, time.Time{}, strings.NewReader(string(body)))
		return
	}
	http.NotFound(w, r)
}
