package hfhub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
)

// fileMeta is what a HEAD of /{repo}/resolve/{commit}/{file} tells.
type fileMeta struct {
	etag     string // the blob's name: sha256 (LFS) or git sha1
	size     int64
	location string // where the bytes are: the resolve URL or a CDN it redirects to
	onHub    bool   // location is on the Hub itself (gets the token)
}

// fetchFile puts the blob of one file of the commit into the cache
// (unless present) and returns the snapshot's link to make to it; link is
// "" when the snapshot has the file already.
func (c *Client) fetchFile(ctx context.Context, id ID, commit, name string) (link, blob string, err error) {
	link = filepath.Join(c.Cache.snapshotDir(id, commit), filepath.FromSlash(name))
	if _, err := os.Stat(link); err == nil {
		return "", "", nil
	}
	meta, err := c.head(ctx, id, commit, name)
	if err != nil {
		return "", "", err
	}
	blob = filepath.Join(c.Cache.repoDir(id), "blobs", meta.etag)
	if _, err := os.Stat(blob); err != nil {
		if err := c.fetchBlob(ctx, id, name, meta, blob); err != nil {
			return "", "", err
		}
	}
	return link, blob, nil
}

// head reads the file's ETag, size and location, following redirects on
// the endpoint's host (renamed repositories) but not to other hosts (the
// CDN, which is where the bytes are fetched from).
func (c *Client) head(ctx context.Context, id ID, commit, name string) (*fileMeta, error) {
	u := c.Endpoint + "/" + id.page() + "/resolve/" + commit + "/" + escapePath(name)
	noFollow := *c.httpClient()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hdr := http.Header{"Accept-Encoding": {"identity"}}
	for hops := 0; ; hops++ {
		resp, err := c.do(ctx, http.MethodHead, u, hdr, &noFollow, true)
		if err != nil {
			return nil, fmt.Errorf("%s: file %s: %w", id, name, err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return nil, c.statusError(resp, id, name)
		}
		loc := u
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			next, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("%s: file %s: HTTP %d without a usable Location: %w", id, name, resp.StatusCode, err)
			}
			if c.sameHost(next) && resp.Header.Get("X-Linked-Etag") == "" && hops < 5 {
				u = next.String()
				continue
			}
			loc = next.String()
		}
		meta, err := c.parseMeta(resp.Header, id, name, commit)
		if err != nil {
			return nil, err
		}
		meta.location, meta.onHub = loc, loc == u
		return meta, nil
	}
}

func (c *Client) parseMeta(h http.Header, id ID, name, commit string) (*fileMeta, error) {
	if got := h.Get("X-Repo-Commit"); got != "" && got != commit {
		return nil, fmt.Errorf("%s: file %s: the Hub serves it from commit %s, not the %s asked for; fetch again", id, name, got, commit)
	}
	etag := h.Get("X-Linked-Etag")
	if etag == "" {
		etag = h.Get("ETag")
	}
	etag = strings.Trim(strings.TrimPrefix(strings.TrimSpace(etag), "W/"), `"`)
	if etag == "" || strings.ContainsAny(etag, `/\.`) || strings.ContainsFunc(etag, func(r rune) bool { return r < '!' || r > '~' }) {
		return nil, fmt.Errorf("%s: file %s: the Hub gave ETag %q, which cannot name a blob; cannot download or verify it", id, name, etag)
	}
	sizeHdr := h.Get("X-Linked-Size")
	if sizeHdr == "" {
		sizeHdr = h.Get("Content-Length")
	}
	size, err := strconv.ParseInt(sizeHdr, 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("%s: file %s: the Hub gave no usable size (%q)", id, name, sizeHdr)
	}
	return &fileMeta{etag: etag, size: size}, nil
}

// escapePath escapes each segment of a slash-separated file name.
func escapePath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// fetchBlob downloads a blob under its lock: into blob.incomplete,
// resuming what an earlier, interrupted download left there, then checks
// it against the ETag and renames it into place.
func (c *Client) fetchBlob(ctx context.Context, id ID, name string, meta *fileMeta, blob string) error {
	lock := filepath.Join(c.Cache.Dir, ".locks", id.folder(), meta.etag+".lock")
	unlock, err := lockBlob(ctx, lock, func() {
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "%s: waiting for another download of %s (it holds %s)\n", id, name, lock)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: file %s: %w", id, name, err)
	}
	defer unlock()
	if _, err := os.Stat(blob); err == nil {
		return nil // another download finished it while this one waited
	}
	partial := blob + ".incomplete"
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("%s: file %s: %w", id, name, err)
	}
	f, err := os.OpenFile(partial, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("%s: file %s: %w", id, name, err)
	}
	defer f.Close()
	if err := c.download(ctx, f, meta, name); err != nil {
		return fmt.Errorf("%s: file %s: %w (what arrived is kept in %s; run the command again to resume)", id, name, err, partial)
	}
	if err := verify(f, meta); err != nil {
		f.Close()
		os.Remove(partial)
		return fmt.Errorf("%s: file %s: %w; the download was deleted, run the command again", id, name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: file %s: %w", id, name, err)
	}
	return os.Rename(partial, blob)
}

// download fills f up to meta.size from meta.location, asking for the
// missing range when f already holds a prefix, and resuming after a cut
// connection up to MaxAttempts times.
func (c *Client) download(ctx context.Context, f *os.File, meta *fileMeta, name string) error {
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	bar := c.bar(meta.size, name)
	defer bar.Finish()
	var last error
	for try := 1; try <= attempts; try++ {
		have, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return err
		}
		if have > meta.size {
			if err := f.Truncate(0); err != nil {
				return err
			}
			have = 0
		}
		if have == meta.size {
			return nil
		}
		bar.Set64(have)
		hdr := http.Header{"Accept-Encoding": {"identity"}}
		if have > 0 {
			hdr.Set("Range", fmt.Sprintf("bytes=%d-", have))
		}
		reqCtx, cancel := context.WithCancel(ctx)
		resp, err := c.do(reqCtx, http.MethodGet, meta.location, hdr, c.httpClient(), meta.onHub)
		if err != nil {
			cancel()
			return err
		}
		switch {
		case resp.StatusCode == http.StatusPartialContent && strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)):
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			// The whole file again (or a range the server would not give):
			// start over.
			if err := f.Truncate(0); err != nil {
				resp.Body.Close()
				cancel()
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				resp.Body.Close()
				cancel()
				return err
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				cancel()
				last = fmt.Errorf("HTTP %d for bytes %d-", resp.StatusCode, have)
				continue
			}
			bar.Set64(0)
		default:
			resp.Body.Close()
			cancel()
			if resp.StatusCode >= 400 {
				return fmt.Errorf("GET %s: HTTP %d (%s)", resp.Request.URL.Redacted(), resp.StatusCode, http.StatusText(resp.StatusCode))
			}
			return fmt.Errorf("GET %s: unexpected HTTP %d (Content-Range %q) for bytes %d-", resp.Request.URL.Redacted(), resp.StatusCode, resp.Header.Get("Content-Range"), have)
		}
		stall := c.StallTimeout
		if stall <= 0 {
			stall = time.Minute
		}
		watchdog := time.AfterFunc(stall, cancel)
		body := io.LimitReader(&stallReader{r: resp.Body, watchdog: watchdog, stall: stall}, meta.size-have+1)
		_, err = io.Copy(io.MultiWriter(f, bar), body)
		stalled := !watchdog.Stop()
		resp.Body.Close()
		cancel()
		if end, serr := f.Seek(0, io.SeekCurrent); serr == nil && end > meta.size {
			f.Truncate(0)
			return fmt.Errorf("the server sent more than the %d bytes the Hub announced", meta.size)
		}
		if err == nil {
			last = errors.New("the server ended the file early")
			continue // the loop checks the size
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if last = err; stalled {
			last = fmt.Errorf("nothing received for %v", stall)
		}
		if err := c.wait(ctx, time.Duration(try)*time.Second); err != nil {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", attempts, last)
}

// stallReader pushes its watchdog's deadline back on every read that
// brings bytes; the watchdog drops the connection when it fires.
type stallReader struct {
	r        io.Reader
	watchdog *time.Timer
	stall    time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.watchdog.Reset(s.stall)
	}
	return n, err
}

func (c *Client) bar(size int64, name string) *progressbar.ProgressBar {
	if c.Progress == nil {
		return progressbar.DefaultBytesSilent(size, name)
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(c.Progress),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.Progress) }),
	)
}

// verify checks the downloaded bytes against the ETag: a 64-digit hex
// ETag is the sha256 of the content (Git LFS files), a 40-digit one the
// git blob sha1 ("blob <size>\x00" + content). Other forms are checked
// by size only.
func verify(f *os.File, meta *fileMeta) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != meta.size {
		return fmt.Errorf("downloaded %d bytes, the Hub says the file has %d", st.Size(), meta.size)
	}
	var h hash.Hash
	kind := ""
	switch {
	case len(meta.etag) == 64 && isHex(meta.etag):
		h, kind = sha256.New(), "sha256"
	case len(meta.etag) == 40 && isHex(meta.etag):
		h, kind = sha1.New(), "git blob sha1"
		fmt.Fprintf(h, "blob %d\x00", meta.size)
	default:
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != meta.etag {
		return fmt.Errorf("checksum mismatch: the %s of the download is %s, the Hub's ETag is %s", kind, got, meta.etag)
	}
	return nil
}

// lockBlob takes an exclusive flock on path (created if needed), as
// huggingface_hub's FileLock does, calling waiting once if another holder
// makes it wait, and returns its release. It gives up when ctx ends.
func lockBlob(ctx context.Context, path string, waiting func()) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if try == 0 {
			waiting()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// linkBlob makes link a relative symbolic link to blob, replacing
// atomically whatever is there.
func linkBlob(link, blob string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", link, os.Getpid(), time.Now().UnixNano())
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
