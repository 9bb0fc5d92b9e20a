package hfhub

import (
	"context"
	"testing"
	"time"

	"mohawk/internal/hubtest"
	"mohawk/internal/shareddata"
)

type fakeHub = hubtest.Hub

var (
	newFakeHub = hubtest.NewHub
	gitSHA1    = hubtest.GitBlobSHA1
	sha256Hex  = hubtest.SHA256
)

// hubClient is a Client of hub writing into a fresh cache, recording the
// waits it would have slept.
func hubClient(t *testing.T, h *fakeHub, waits *[]time.Duration) *Client {
	t.Helper()
	return &Client{Endpoint: h.URL, Cache: Cache{Dir: t.TempDir()}, HTTP: h.Client(),
		sleep: func(_ context.Context, d time.Duration) error { *waits = append(*waits, d); return nil }}
}

// phiTiny is the small reference model: three LFS shards and the JSON
// files beside them.
func phiTiny(t *testing.T) (files map[string][]byte, lfs []string) {
	return hubtest.Files(t, shareddata.Path(t, "reference", "phi-tiny-en"), "config.json", "tokenizer.json", "tokenizer_config.json",
		"generation_config.json", "model.safetensors.index.json",
		"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors")
}
