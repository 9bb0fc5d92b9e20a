# mohawk: two commands on a fresh machine with Go and npm.
#   make demo   builds, installs ONNX Runtime 1.29.0 into ~/.cache/mohawk (via npm)
#               on first use, and runs pipeline.yaml (the embedded default run)
#   make test   the test suite (what CI runs)
GO       ?= go
BIN      := bin/pipeline
GOFLAGS  ?=

.PHONY: build demo test vet fuzz bench clean

build:
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/pipeline

demo: build
	$(BIN) run pipeline.yaml

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet
	$(GO) test -timeout 30m ./...

# Short fuzzing pass over every parser of untrusted input (see docs/reliability.md).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 60s ./safetensors
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./hfconfig
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./tokenizer
	$(GO) test -run '^$$' -fuzz FuzzEncodeDecode -fuzztime 60s ./tokenizer
	$(GO) test -run '^$$' -fuzz FuzzJSONL -fuzztime 60s ./data
	$(GO) test -run '^$$' -fuzz FuzzCacheFile -fuzztime 60s ./data

clean:
	rm -rf bin runs
