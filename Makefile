# mohawk: two commands on a fresh machine with Go and npm.
#   make demo   builds, installs ONNX Runtime 1.29.0 into ~/.cache/mohawk (via npm)
#               on first use, and runs pipeline.yaml (the embedded default run)
#   make test   the test suite (what CI runs), strict: nothing but GPU and
#               privileged tests may skip; ends with a pass/fail/skip summary
GO       ?= go
BIN      := bin/pipeline
GOFLAGS  ?=
FUZZTIME ?= 60s

.PHONY: build demo test vet fuzz bench clean crash-test soak

build:
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/pipeline

demo: build
	$(BIN) run pipeline.yaml

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# Strict mode (internal/strict): a missing ONNX Runtime or ../shared fails
# instead of skipping. internal/testreport prints go test's usual output and
# ends with "tests: N passed, N failed, N skipped" and "skipped: name (why), …".
test: vet
	$(GO) build -o bin/testreport ./internal/testreport
	GO=$(GO) MOHAWK_STRICT_TESTS=1 bin/testreport -timeout 30m ./...

# Short fuzzing pass over every parser of untrusted input (see docs/reliability.md).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime $(FUZZTIME) ./safetensors
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./hfconfig
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./tokenizer
	$(GO) test -run '^$$' -fuzz FuzzEncodeDecode -fuzztime $(FUZZTIME) ./tokenizer
	$(GO) test -run '^$$' -fuzz FuzzEncodeHF -fuzztime $(FUZZTIME) ./tokenizer
	$(GO) test -run '^$$' -fuzz FuzzJSONL -fuzztime $(FUZZTIME) ./data
	$(GO) test -run '^$$' -fuzz FuzzCacheFile -fuzztime $(FUZZTIME) ./data
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME) ./torchpickle
	$(GO) test -run '^$$' -fuzz FuzzPickle -fuzztime $(FUZZTIME) ./torchpickle
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./pipeline
	$(GO) test -run '^$$' -fuzz FuzzReadSignature -fuzztime $(FUZZTIME) ./runtime
	$(GO) test -run '^$$' -fuzz FuzzExternalData -fuzztime $(FUZZTIME) ./runtime
	$(GO) test -run '^$$' -fuzz FuzzModelProto -fuzztime $(FUZZTIME) ./export/onnxpb
	$(GO) test -run '^$$' -fuzz FuzzReadManifest -fuzztime $(FUZZTIME) ./deploy

# kill -9 at 50 random moments of a tiny pipeline run; every re-run must
# resume from the newest complete checkpoint and end equal to an
# uninterrupted run (go test ./... runs the same test with 5 kills).
crash-test:
	mkdir -p runs
	MOHAWK_CRASH_KILLS=50 MOHAWK_CRASH_REPORT=$(CURDIR)/runs/crash-test.json \
		$(GO) test -count=1 -timeout 60m -run '^TestCrashResume$$' -v ./pipeline

# 30 minutes of Stage-3 training on the CPU with the resident set sampled
# every 10 s (runs/soak/rss.csv, runs/soak/summary.txt); MINUTES=… to change.
soak: build
	PIPELINE=$(CURDIR)/$(BIN) bench/soak.sh runs/soak

clean:
	rm -rf bin runs
