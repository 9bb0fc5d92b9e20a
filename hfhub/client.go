package hfhub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"mohawk/atomicfile"
)

// Client downloads repositories from the Hub into a Cache.
type Client struct {
	Endpoint string       // e.g. DefaultEndpoint, without a trailing slash
	Token    string       // sent as a Bearer token to Endpoint's host only; "" for none
	Cache    Cache        // where files go
	HTTP     *http.Client // nil: http.DefaultClient's transport
	Offline  bool         // refuse to connect
	Progress io.Writer    // a progress bar per file; nil: none

	// MaxAttempts bounds the tries of one request (rate limits, server
	// errors, cut connections); 0 means 5.
	MaxAttempts int
	// MaxRetryAfter bounds the wait a Retry-After header can ask for;
	// 0 means one minute.
	MaxRetryAfter time.Duration
	// StallTimeout is how long a download may receive nothing before its
	// connection is dropped and the download resumed; 0 means one minute.
	StallTimeout time.Duration

	sleep func(context.Context, time.Duration) error // nil: sleepCtx; tests record the waits
}

// NewClient is a Client configured from the environment the way
// huggingface_hub is: CacheDir, Endpoint, Token and Offline.
func NewClient(progress io.Writer) (*Client, error) {
	tok, err := Token()
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return &Client{Endpoint: Endpoint(), Token: tok, Cache: Cache{Dir: CacheDir()}, Offline: Offline(), Progress: progress,
		HTTP: &http.Client{Transport: t}}, nil
}

// repoInfo is what /api/models/{repo}/revision/{rev} (or /api/datasets/…)
// answers, in part.
type repoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

// Fetch downloads the files of id (those matching one of the include
// patterns, path.Match syntax, or all when none is given) into the cache,
// records the revision's commit in refs/ and returns the snapshot folder
// and commit. Files already in the cache are not downloaded again.
func (c *Client) Fetch(ctx context.Context, id ID, include []string) (dir, commit string, err error) {
	if err := checkPatterns(include); err != nil {
		return "", "", err
	}
	return c.fetch(ctx, id, func(names []string) ([]string, error) {
		files := pick(names, include...)
		if len(files) == 0 {
			return nil, fmt.Errorf("no file matches --include %s (the repository lists %d files)", strings.Join(include, ", "), len(names))
		}
		return files, nil
	})
}

// FetchFirst is Fetch of the files matching the first of patterns that
// matches any file of the repository: one layout among several a dataset
// may have (see Request.Files).
func (c *Client) FetchFirst(ctx context.Context, id ID, patterns []string) (dir, commit string, err error) {
	if err := checkPatterns(patterns); err != nil {
		return "", "", err
	}
	return c.fetch(ctx, id, func(names []string) ([]string, error) {
		for _, p := range patterns {
			if files := pick(names, p); len(files) > 0 {
				return files, nil
			}
		}
		return nil, fmt.Errorf("no file matches %s (the repository lists %d files)", strings.Join(patterns, ", "), len(names))
	})
}

func checkPatterns(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("file pattern %q: %w", p, err)
		}
	}
	return nil
}

// FetchModel is Fetch of what loading a model needs: the top-level
// *.json, *.safetensors and *.txt files and tokenizer.model, and
// pytorch_model*.bin only when there is no safetensors file.
func (c *Client) FetchModel(ctx context.Context, id ID) (dir, commit string, err error) {
	return c.fetch(ctx, id, modelFiles)
}

func modelFiles(names []string) ([]string, error) {
	files := pick(names, "*.json", "*.safetensors", "*.txt", "tokenizer.model")
	weights := pick(names, "*.safetensors")
	if len(weights) == 0 {
		weights = pick(names, "pytorch_model*.bin")
		files = append(files, weights...)
	}
	if len(weights) == 0 {
		return nil, fmt.Errorf("no *.safetensors or pytorch_model*.bin at the top of the repository (it lists %d files); it is not a checkpoint mohawk can load", len(names))
	}
	return files, nil
}

// fetch lists the revision, downloads the files choose picks from the
// listing and records the revision's commit in refs/. The files are
// linked into the snapshot only once all of them are downloaded, so an
// interrupted fetch leaves none of them there, never a part of a set of
// shards.
func (c *Client) fetch(ctx context.Context, id ID, choose func(names []string) ([]string, error)) (dir, commit string, err error) {
	if c.Offline {
		return "", "", fmt.Errorf("%s: HF_HUB_OFFLINE is set, so nothing is downloaded; unset it to fetch the %s", id, id.kind())
	}
	info, err := c.revisionInfo(ctx, id)
	if err != nil {
		return "", "", err
	}
	var names []string
	for _, s := range info.Siblings {
		name := s.RFilename
		if !filepath.IsLocal(name) || strings.ContainsAny(name, "\\\x00") || path.Clean(name) != name {
			return "", "", fmt.Errorf("%s: the Hub lists a file %q, which is not a path inside the repository; refusing to write it", id, name)
		}
		names = append(names, name)
	}
	// Files are fetched in path order, whatever order the Hub lists them
	// in, so a failed fetch has always kept the same files before it.
	slices.Sort(names)
	files, err := choose(names)
	if err != nil {
		return "", "", fmt.Errorf("%s@%s: %w", id.Repo, id.Rev(), err)
	}
	if !isCommit(id.Rev()) {
		ref := filepath.Join(c.Cache.repoDir(id), "refs", filepath.FromSlash(id.Rev()))
		if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
			return "", "", fmt.Errorf("%s: %w", id, err)
		}
		if err := atomicfile.WriteBytes(ref, []byte(info.SHA)); err != nil {
			return "", "", fmt.Errorf("%s: %w", id, err)
		}
	}
	var links, blobs []string
	for _, f := range files {
		link, blob, err := c.fetchFile(ctx, id, info.SHA, f)
		if err != nil {
			return "", "", err
		}
		if link != "" {
			links, blobs = append(links, link), append(blobs, blob)
		}
	}
	for i, link := range links {
		if err := linkBlob(link, blobs[i]); err != nil {
			return "", "", fmt.Errorf("%s: %w", id, err)
		}
	}
	return c.Cache.snapshotDir(id, info.SHA), info.SHA, nil
}

// pick returns the names matching one of patterns (all when none is given).
func pick(names []string, patterns ...string) []string {
	var out []string
	for _, n := range names {
		if matchAny(patterns, n) {
			out = append(out, n)
		}
	}
	return out
}

func matchAny(patterns []string, name string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// revisionInfo asks the Hub for the revision's commit and file list.
func (c *Client) revisionInfo(ctx context.Context, id ID) (*repoInfo, error) {
	u := c.Endpoint + "/api/" + string(id.kind()) + "s/" + id.Repo + "/revision/" + url.PathEscape(id.Rev())
	resp, err := c.do(ctx, http.MethodGet, u, nil, c.httpClient(), true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(resp, id, "")
	}
	var info repoInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("%s: the Hub's answer from %s is not the expected JSON: %w", id, u, err)
	}
	if !isCommit(info.SHA) {
		return nil, fmt.Errorf("%s: the Hub's answer from %s gives commit %q, not a 40-digit hash", id, u, info.SHA)
	}
	if isCommit(id.Rev()) && info.SHA != id.Rev() {
		return nil, fmt.Errorf("%s: asked for commit %s, the Hub answered for %s", id, id.Rev(), info.SHA)
	}
	return &info, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// do sends a request, retrying rate limits (429), unavailability (503)
// and transport errors up to MaxAttempts times; 429 and 503 wait for their
// Retry-After delay (at most MaxRetryAfter). With auth, the token is sent:
// only to URLs on the Hub, never to where it redirects downloads.
func (c *Client) do(ctx context.Context, method, u string, header http.Header, hc *http.Client, auth bool) (*http.Response, error) {
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	var last error
	for try := 1; ; try++ {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", "mohawk-hfhub")
		if c.Token != "" && auth {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := hc.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last, wait = err, time.Duration(try)*time.Second
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			last = fmt.Errorf("%s %s: HTTP %d (%s)", method, u, resp.StatusCode, http.StatusText(resp.StatusCode))
			wait = c.retryAfter(resp.Header.Get("Retry-After"))
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		default:
			return resp, nil
		}
		if try >= attempts {
			return nil, fmt.Errorf("gave up after %d attempts: %w; try again later", attempts, last)
		}
		if err := c.wait(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), 1 s
// when absent or unreadable, capped at MaxRetryAfter.
func (c *Client) retryAfter(h string) time.Duration {
	limit := c.MaxRetryAfter
	if limit <= 0 {
		limit = time.Minute
	}
	d := time.Second
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = max(time.Until(t), 0)
	}
	return min(d, limit)
}

func (c *Client) wait(ctx context.Context, d time.Duration) error {
	if c.sleep != nil {
		return c.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) sameHost(u *url.URL) bool {
	e, err := url.Parse(c.Endpoint)
	return err == nil && strings.EqualFold(e.Host, u.Host)
}

// statusError turns an error answer into a message that says what to do,
// using the Hub's X-Error-Code header where it sends one. file is "" for
// the repository listing.
func (c *Client) statusError(resp *http.Response, id ID, file string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	detail := strings.TrimSpace(string(body))
	var msg struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &msg) == nil && msg.Error != "" {
		detail = msg.Error
	}
	if detail != "" {
		detail = ": " + detail
	}
	status := fmt.Sprintf("HTTP %d%s", resp.StatusCode, detail)
	what := id.String()
	if file != "" {
		what = fmt.Sprintf("file %s of %s", file, ID{Repo: id.Repo, Revision: id.Rev(), Type: id.Type})
	}
	kind := id.kind()
	code := resp.Header.Get("X-Error-Code")
	switch {
	case code == "GatedRepo" || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		page := c.Endpoint + "/" + id.page()
		if c.Token == "" {
			return fmt.Errorf("%s: the Hub refused access (%s): the %s is gated or private (or does not exist). Set HF_TOKEN to a token with read access (%s/settings/tokens) or log in with `hf auth login`; for a gated %s, first accept its terms at %s", what, status, kind, c.Endpoint, kind, page)
		}
		return fmt.Errorf("%s: the Hub refused access with the token in use (%s): the %s is gated or private (or does not exist). Accept the %s's terms at %s with the account of that token, or set HF_TOKEN to a token that has access", what, status, kind, kind, page)
	case code == "RevisionNotFound":
		return fmt.Errorf("%s: revision %q not found on %s (%s); check the branch, tag or commit after '@'", ID{Repo: id.Repo, Type: id.Type}, id.Rev(), c.Endpoint, status)
	case code == "EntryNotFound" || resp.StatusCode == http.StatusNotFound && file != "":
		return fmt.Errorf("%s: not found on %s (%s); the repository's file list may have changed, fetch again", what, c.Endpoint, status)
	case code == "RepoNotFound" || resp.StatusCode == http.StatusNotFound:
		hint := "check the id (org/name) and revision"
		if kind == Dataset {
			hint += ", and that it names a dataset"
		} else {
			hint += ", and that it names a model, not a dataset"
		}
		return fmt.Errorf("%s: repository or revision %q not found on %s (%s); %s", ID{Repo: id.Repo, Type: id.Type}, id.Rev(), c.Endpoint, status, hint)
	}
	return fmt.Errorf("%s: unexpected answer from %s (%s)", what, resp.Request.URL.Redacted(), status)
}
