package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"mohawk/hfhub"
)

// localModel turns a model flag's value in place into a local directory
// through hfhub.Resolve: an existing directory stays, an id
// (org/name[@revision]) becomes its Hugging Face cache snapshot. Only
// `pipeline run` and `pipeline fetch` download.
func localModel(ctx context.Context, flag string, p *string) error {
	if *p == "" {
		return nil
	}
	dir, err := hfhub.Resolve(ctx, hfhub.Request{Role: "--" + flag, Path: *p, Log: os.Stderr})
	if err != nil {
		return err
	}
	*p = dir
	return nil
}

// patterns collects a repeated --include flag.
type patterns []string

func (p *patterns) String() string     { return strings.Join(*p, ",") }
func (p *patterns) Set(s string) error { *p = append(*p, s); return nil }

func cmdFetch(ctx context.Context, args []string) error {
	fs := flags("fetch", "[--repo-type dataset] org/name[@revision] [--include PATTERN ...]")
	var include patterns
	fs.Var(&include, "include", "download only files matching this pattern (path.Match syntax: '*' stays within a folder, e.g. 'data/train-*.parquet'); repeat for several")
	repoType := fs.String("repo-type", "model", "the repository's type, as huggingface-cli's --repo-type: model or dataset")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 { // flags after the id
		rest := fs.Args()
		if err := parse(fs, rest[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			fs.Usage()
			return errUsage
		}
		args = rest[:1]
	} else {
		args = nil
	}
	if len(args) != 1 {
		fs.Usage()
		return errUsage
	}
	typ, err := hfhub.ParseRepoType(*repoType)
	if err != nil {
		return fmt.Errorf("--repo-type: %w", err)
	}
	id, err := hfhub.ParseID(args[0])
	if err != nil {
		return err
	}
	id.Type = typ
	c, err := hfhub.NewClient(os.Stderr)
	if err != nil {
		return err
	}
	dir, commit, err := c.Fetch(ctx, id, include)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s is commit %s\n", hfhub.ID{Repo: id.Repo, Revision: id.Rev(), Type: id.Type}, commit)
	fmt.Println(dir)
	return nil
}
