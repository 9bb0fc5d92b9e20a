package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"mohawk/tokenizer"
)

// cmdTokenize prints the token ids of each document of a text file, one
// line per document, as Hugging Face's encode(document,
// add_special_tokens=True).ids gives them (no end-of-text appended).
func cmdTokenize(_ context.Context, args []string) error {
	fs := flags("tokenize", "--tokenizer tokenizer.json [--separator S] FILE")
	tokPath := fs.String("tokenizer", "", "Hugging Face tokenizer.json")
	sep := fs.String("separator", `\n\n`, "document separator (Go escapes such as \\n are understood)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *tokPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	separator, err := strconv.Unquote(`"` + *sep + `"`)
	if err != nil || separator == "" {
		return fmt.Errorf("--separator %q is not a non-empty Go string (escapes such as \\n are understood)", *sep)
	}
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	return writeTokenIDs(os.Stdout, tok, string(text), separator)
}

// writeTokenIDs writes the ids of each document of text, split on sep, as
// one line of ids separated by single spaces.
func writeTokenIDs(w io.Writer, tok *tokenizer.Tokenizer, text, sep string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var line []byte
	for doc := range strings.SplitSeq(text, sep) {
		line = line[:0]
		for i, id := range tok.Encode(doc) {
			if i > 0 {
				line = append(line, ' ')
			}
			line = strconv.AppendInt(line, id, 10)
		}
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}
