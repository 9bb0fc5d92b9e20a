package hfhub

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mohawk/safetensors"
)

// checkSnapshot verifies dir against files: every file is a relative link
// to ../../blobs/<name> (one more ../ per subfolder) whose name is the
// digest the test computes itself, with the same bytes.
func checkSnapshot(t *testing.T, dir string, files map[string][]byte, lfs map[string]bool) {
	t.Helper()
	for name, want := range files {
		p := filepath.Join(dir, name)
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("%s: not a link: %v", name, err)
		}
		digest := gitSHA1(want)
		if lfs[name] {
			digest = sha256Hex(want)
		}
		up := strings.Repeat("../", strings.Count(name, "/"))
		if wantTarget := filepath.Join(up+"..", "..", "blobs", digest); target != wantTarget {
			t.Errorf("%s links to %s, want %s", name, target, wantTarget)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", name)
		}
	}
}

func TestFetchPhiTiny(t *testing.T) {
	files, lfs := phiTiny(t)
	hub := newFakeHub(t, "org/phi-tiny", files, lfs...)
	var waits []time.Duration
	c := hubClient(t, hub, &waits)
	dir, commit, err := c.Fetch(context.Background(), ID{Repo: "org/phi-tiny"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if commit != hub.Commit || dir != filepath.Join(c.Cache.Dir, "models--org--phi-tiny", "snapshots", hub.Commit) {
		t.Fatalf("Fetch = %s, %s; want the snapshot of %s", dir, commit, hub.Commit)
	}
	ref, err := os.ReadFile(filepath.Join(c.Cache.Dir, "models--org--phi-tiny", "refs", "main"))
	if err != nil || string(ref) != hub.Commit {
		t.Fatalf("refs/main = %q, %v; want %s", ref, err, hub.Commit)
	}
	checkSnapshot(t, dir, files, hub.LFS)
	// The sharded checkpoint opens from the snapshot (issue 22, item 7).
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for _, name := range set.Names() {
		if _, err := set.Tensor(name); err != nil {
			t.Fatal(err)
		}
	}
	// A second fetch and a lookup by commit need nothing but the listing.
	before := len(hub.Log())
	if _, _, err := c.Fetch(context.Background(), ID{Repo: "org/phi-tiny", Revision: hub.Commit}, nil); err != nil {
		t.Fatal(err)
	}
	if got := hub.Log()[before:]; len(got) != 1 || !strings.HasPrefix(got[0], "GET /api/models/org/phi-tiny/revision/"+hub.Commit) {
		t.Errorf("second fetch sent %q, want only the listing", got)
	}
	if len(waits) != 0 {
		t.Errorf("waited %v without being asked to", waits)
	}
}

func TestFetchFaults(t *testing.T) {
	small := []byte(`{"model_type": "phi"}`)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	files := map[string][]byte{"config.json": small, "model.safetensors": big}
	tests := []struct {
		name    string
		setup   func(h *fakeHub, c *Client)
		id      ID
		include []string
		want    string          // substring of the error; "" = success
		waits   []time.Duration // the Retry-After and back-off waits expected
		check   func(t *testing.T, h *fakeHub, c *Client)
	}{
		{name: "include filters", include: []string{"*.json"}, check: func(t *testing.T, h *fakeHub, c *Client) {
			for _, r := range h.Log() {
				if strings.Contains(r, "model.safetensors") || strings.Contains(r, "/cdn/") {
					t.Errorf("fetched %s, which --include *.json excludes", r)
				}
			}
		}},
		{name: "include matching nothing", include: []string{"*.bin"}, want: "no file matches --include *.bin"},
		{name: "tag", id: ID{Repo: "org/m", Revision: "v1.0"}, check: func(t *testing.T, h *fakeHub, c *Client) {
			if _, _, err := c.Cache.Snapshot(ID{Repo: "org/m", Revision: "v1.0"}); err != nil {
				t.Error(err)
			}
		}},
		{name: "gated without a token", setup: func(h *fakeHub, c *Client) { h.Gated = "hf_good" },
			want: "Set HF_TOKEN to a token with read access"},
		{name: "gated with a wrong token", setup: func(h *fakeHub, c *Client) { h.Gated, c.Token = "hf_good", "hf_bad" },
			want: "Accept the model's terms at"},
		{name: "gated with the right token", setup: func(h *fakeHub, c *Client) { h.Gated, c.Token = "hf_good", "hf_good" },
			check: func(t *testing.T, h *fakeHub, c *Client) {
				// The token goes to the Hub, never to the CDN.
				for _, r := range h.Log() {
					if strings.HasPrefix(r, "GET /cdn/") == strings.HasSuffix(r, "Bearer hf_good") {
						t.Errorf("request %q: the token is sent to the CDN or missing on the Hub", r)
					}
				}
			}},
		{name: "unknown repository", id: ID{Repo: "org/nope"}, want: `org/nope: repository or revision "main" not found`},
		{name: "unknown revision", id: ID{Repo: "org/m", Revision: "dev"}, want: `org/m: revision "dev" not found`},
		{name: "listed file missing", setup: func(h *fakeHub, c *Client) { h.Listed = append(h.Listed, "tokenizer.json") },
			want: "file tokenizer.json of org/m@main: not found"},
		{name: "file name climbing out", setup: func(h *fakeHub, c *Client) { h.Listed = append(h.Listed, "../../evil") },
			want: `file "../../evil", which is not a path inside the repository`},
		{name: "rate limited then served", setup: func(h *fakeHub, c *Client) { h.Limited = 2 },
			waits: []time.Duration{2 * time.Second, 2 * time.Second}},
		{name: "Retry-After capped", setup: func(h *fakeHub, c *Client) { h.Limited, h.RetryAfter, c.MaxRetryAfter = 1, "3600", 5*time.Second },
			waits: []time.Duration{5 * time.Second}},
		{name: "rate limited for good", setup: func(h *fakeHub, c *Client) { h.Limited, c.MaxAttempts = 100, 3 },
			want: "gave up after 3 attempts", waits: []time.Duration{2 * time.Second, 2 * time.Second}},
		{name: "connection cut mid-file", setup: func(h *fakeHub, c *Client) { h.Cut["model.safetensors"] = 1 },
			waits: []time.Duration{time.Second},
			check: func(t *testing.T, h *fakeHub, c *Client) {
				gets := h.CDNGets()
				if len(gets) != 2 || strings.Contains(gets[0], "bytes=") || !strings.Contains(gets[1], "bytes=") || strings.Contains(gets[1], "bytes=0-") {
					t.Errorf("CDN requests %q: want a full GET, then a Range GET from where it was cut", gets)
				}
			}},
		{name: "connection stalled mid-file", setup: func(h *fakeHub, c *Client) { h.Stall["model.safetensors"], c.StallTimeout = 1, 200*time.Millisecond },
			waits: []time.Duration{time.Second},
			check: func(t *testing.T, h *fakeHub, c *Client) {
				gets := h.CDNGets()
				if len(gets) != 2 || !strings.Contains(gets[1], "bytes=") || strings.Contains(gets[1], "bytes=0-") {
					t.Errorf("CDN requests %q: want a full GET, then a Range GET from where it stalled", gets)
				}
			}},
		{name: "resume a download left by an earlier run", setup: func(h *fakeHub, c *Client) {
			blobs := filepath.Join(c.Cache.Dir, "models--org--m", "blobs")
			os.MkdirAll(blobs, 0o755)
			os.WriteFile(filepath.Join(blobs, sha256Hex(big)+".incomplete"), big[:1000], 0o644)
		}, check: func(t *testing.T, h *fakeHub, c *Client) {
			if gets := h.CDNGets(); len(gets) != 1 || !strings.Contains(gets[0], "bytes=1000-") {
				t.Errorf("CDN requests %q: want one GET of bytes=1000-", gets)
			}
		}},
		{name: "corrupt bytes", setup: func(h *fakeHub, c *Client) { h.Corrupt["model.safetensors"] = true },
			want: "checksum mismatch: the sha256 of the download is",
			check: func(t *testing.T, h *fakeHub, c *Client) {
				left, _ := filepath.Glob(filepath.Join(c.Cache.Dir, "models--org--m", "blobs", sha256Hex(big)+"*"))
				if len(left) != 0 {
					t.Errorf("a failed verification left %q", left)
				}
			}},
		{name: "longer than announced", setup: func(h *fakeHub, c *Client) { h.Padded["model.safetensors"] = true },
			want: "the server sent more than the 262144 bytes the Hub announced"},
		{name: "offline", setup: func(h *fakeHub, c *Client) { c.Offline = true }, want: "HF_HUB_OFFLINE is set",
			check: func(t *testing.T, h *fakeHub, c *Client) {
				if n := len(h.Log()); n != 0 {
					t.Errorf("offline client sent %d requests", n)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hub := newFakeHub(t, "org/m", files, "model.safetensors")
			var waits []time.Duration
			c := hubClient(t, hub, &waits)
			if tc.setup != nil {
				hub.With(func(h *fakeHub) { tc.setup(h, c) })
			}
			id := tc.id
			if id.Repo == "" {
				id.Repo = "org/m"
			}
			dir, _, err := c.Fetch(context.Background(), id, tc.include)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && err == nil:
				t.Fatalf("Fetch succeeded, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			case tc.want == "":
				want := files
				if tc.include != nil {
					want = map[string][]byte{"config.json": small}
				}
				checkSnapshot(t, dir, want, hub.LFS)
			}
			if !slices.Equal(waits, tc.waits) {
				t.Errorf("waited %v, want %v", waits, tc.waits)
			}
			if tc.check != nil {
				tc.check(t, hub, c)
			}
		})
	}
}

// Two fetches of one repository into one cache at once: each blob is
// downloaded once (the other waits on its lock) and both end verified.
func TestConcurrentFetch(t *testing.T) {
	big := bytes.Repeat([]byte("mohawk"), 1<<16)
	files := map[string][]byte{"config.json": []byte("{}"), "model.safetensors": big}
	hub := newFakeHub(t, "org/m", files, "model.safetensors")
	var waits []time.Duration
	c := hubClient(t, hub, &waits)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			d := *c
			_, _, errs[i] = d.Fetch(context.Background(), ID{Repo: "org/m"}, nil)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if gets := hub.CDNGets(); len(gets) != 1 {
		t.Errorf("the blob was downloaded %d times: %q", len(gets), gets)
	}
	checkSnapshot(t, c.Cache.snapshotDir(ID{Repo: "org/m"}, hub.Commit), files, hub.LFS)
}

func TestModelFiles(t *testing.T) {
	tests := []struct {
		names []string
		want  []string // nil: an error
	}{
		{[]string{"README.md", "config.json", "model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "onnx/config.json", "tokenizer.json", "merges.txt", "tokenizer.model"},
			[]string{"config.json", "model.safetensors", "tokenizer.json", "merges.txt", "tokenizer.model"}},
		{[]string{"config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "flax_model.msgpack"},
			[]string{"config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"}},
		{[]string{"README.md", "config.json", "onnx/model.safetensors"}, nil},
	}
	for _, tc := range tests {
		got, err := modelFiles(tc.names)
		if tc.want == nil {
			if err == nil || !strings.Contains(err.Error(), "not a checkpoint mohawk can load") {
				t.Errorf("modelFiles(%q) = %q, %v; want an error", tc.names, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("modelFiles(%q) = %q, %v; want %q", tc.names, got, err, tc.want)
		}
	}
}

// A download waiting on another's lock gives up when its context ends.
func TestLockWaitCancelled(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockBlob(context.Background(), lock, func() { t.Error("the first lock waited") })
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := lockBlob(ctx, lock, func() { waited = true }); err == nil || !waited || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("second lock: %v (waited %v); want it to wait, then give up", err, waited)
	}
}
