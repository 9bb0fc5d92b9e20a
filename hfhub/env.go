package hfhub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultEndpoint is the Hub's address unless $HF_ENDPOINT says otherwise.
const DefaultEndpoint = "https://huggingface.co"

// expand does what huggingface_hub does to its path settings: a leading
// ~ becomes the home directory and $VAR references are substituted.
func expand(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	return os.ExpandEnv(p)
}

// hfHome is $HF_HOME, else $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface.
func hfHome() string {
	if h := os.Getenv("HF_HOME"); h != "" {
		return expand(h)
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(expand(x), "huggingface")
	}
	return expand(filepath.Join("~", ".cache", "huggingface"))
}

// CacheDir is the hub cache huggingface_hub uses: $HF_HUB_CACHE, else the
// legacy $HUGGINGFACE_HUB_CACHE, else the hub folder of hfHome.
func CacheDir() string {
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if v := os.Getenv(k); v != "" {
			return expand(v)
		}
	}
	return filepath.Join(hfHome(), "hub")
}

// Endpoint is $HF_ENDPOINT without a trailing slash, else DefaultEndpoint.
func Endpoint() string {
	if e := strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/"); e != "" {
		return e
	}
	return DefaultEndpoint
}

// Offline reports whether $HF_HUB_OFFLINE (or $TRANSFORMERS_OFFLINE) is
// set to 1, ON, YES or TRUE, in any case.
func Offline() bool {
	v := os.Getenv("HF_HUB_OFFLINE")
	if v == "" {
		v = os.Getenv("TRANSFORMERS_OFFLINE")
	}
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// Token is the access token: $HF_TOKEN, else the contents of
// $HF_TOKEN_PATH, else of hfHome's token file (what `hf auth login`
// writes). No token is "" with no error; an unreadable token file is an
// error naming it.
func Token() (string, error) {
	if t := strings.TrimSpace(os.Getenv("HF_TOKEN")); t != "" {
		return t, nil
	}
	path := filepath.Join(hfHome(), "token")
	if p := os.Getenv("HF_TOKEN_PATH"); p != "" {
		path = expand(p)
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading the Hugging Face token: %w; fix its permissions or set HF_TOKEN", err)
	}
	return strings.TrimSpace(string(b)), nil
}
