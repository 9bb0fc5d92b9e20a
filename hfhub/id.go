package hfhub

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultRevision is the branch an id without @revision means.
const DefaultRevision = "main"

// RepoType is the kind of Hub repository an ID names, as huggingface_hub
// spells it (its repo_type).
type RepoType string

// The repository types mohawk reads.
const (
	Model   RepoType = "model"
	Dataset RepoType = "dataset"
)

// ParseRepoType reads "model" or "dataset", the values of huggingface-cli's
// --repo-type.
func ParseRepoType(s string) (RepoType, error) {
	switch t := RepoType(s); t {
	case Model, Dataset:
		return t, nil
	}
	return "", fmt.Errorf("repository type %q: want model or dataset", s)
}

// ID names a repository on the Hub and a revision of it.
type ID struct {
	Repo     string   // "org/name"
	Revision string   // a branch, a tag or a full commit hash; "" means DefaultRevision
	Type     RepoType // "" means Model
}

// ParseID reads "org/name" or "org/name@revision". The names follow the
// Hub's rules: letters, digits, '_', '-' and '.', starting and ending with
// a letter, digit or '_', without "--" or "..", at most 96 characters.
func ParseID(s string) (ID, error) {
	repo, rev, hasRev := strings.Cut(s, "@")
	org, name, ok := strings.Cut(repo, "/")
	if !ok || strings.Contains(name, "/") {
		return ID{}, fmt.Errorf("%q is not a Hugging Face id: want org/name or org/name@revision", s)
	}
	for _, part := range []string{org, name} {
		if err := checkName(part); err != nil {
			return ID{}, fmt.Errorf("%q is not a Hugging Face id: %w", s, err)
		}
	}
	if hasRev {
		if err := checkRevision(rev); err != nil {
			return ID{}, fmt.Errorf("%q is not a Hugging Face id: %w", s, err)
		}
	}
	return ID{Repo: repo, Revision: rev}, nil
}

// ParseDatasetID reads a dataset id, written as ParseID reads a model's.
func ParseDatasetID(s string) (ID, error) {
	id, err := ParseID(s)
	id.Type = Dataset
	return id, err
}

func checkName(s string) error {
	if s == "" || len(s) > 96 {
		return fmt.Errorf("name %q must have 1 to 96 characters", s)
	}
	for _, r := range s {
		if !isWordChar(r) && r != '-' && r != '.' {
			return fmt.Errorf("name %q may hold only letters, digits, '_', '-' and '.'", s)
		}
	}
	if !isWordChar(rune(s[0])) || !isWordChar(rune(s[len(s)-1])) {
		return fmt.Errorf("name %q must start and end with a letter, digit or '_'", s)
	}
	if strings.Contains(s, "--") || strings.Contains(s, "..") {
		return fmt.Errorf("name %q must not contain \"--\" or \"..\"", s)
	}
	return nil
}

func isWordChar(r rune) bool {
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

// checkRevision accepts what can name a file under refs/: a branch or tag
// such as "v1.0" or "refs/pr/1", or a commit hash.
func checkRevision(rev string) error {
	switch {
	case rev == "":
		return errors.New("the revision after '@' is empty")
	case strings.ContainsAny(rev, "\\\x00:"), !filepath.IsLocal(rev), filepath.Clean(rev) != rev:
		return fmt.Errorf("revision %q is not a branch, tag or commit name", rev)
	}
	return nil
}

// Rev is the revision, DefaultRevision when none was given.
func (id ID) Rev() string {
	if id.Revision == "" {
		return DefaultRevision
	}
	return id.Revision
}

// String gives the id as a user writes it (org/name[@revision]), after
// the word "dataset" for a dataset.
func (id ID) String() string {
	s := id.Repo
	if id.Revision != "" {
		s += "@" + id.Revision
	}
	if id.kind() == Dataset {
		return "dataset " + s
	}
	return s
}

// kind is the repository type, Model when unset.
func (id ID) kind() RepoType {
	if id.Type == "" {
		return Model
	}
	return id.Type
}

// folder is the repository's folder name in the cache: models--org--name
// or datasets--org--name.
func (id ID) folder() string {
	return string(id.kind()) + "s--" + strings.ReplaceAll(id.Repo, "/", "--")
}

// page is the repository's path on the Hub, also the start of its file
// URLs: org/name for a model, datasets/org/name for a dataset.
func (id ID) page() string {
	if id.kind() == Model {
		return id.Repo
	}
	return string(id.kind()) + "s/" + id.Repo
}

// fetchCommand is the command line that downloads id's files matching
// include (all files when none is given).
func (id ID) fetchCommand(include []string) string {
	cmd := "pipeline fetch "
	if id.kind() != Model {
		cmd += "--repo-type " + string(id.kind()) + " "
	}
	cmd += id.Repo
	if id.Revision != "" {
		cmd += "@" + id.Revision
	}
	for _, p := range include {
		cmd += " --include '" + p + "'"
	}
	return cmd
}

// isCommit reports whether rev is a full commit hash (40 lowercase hex).
func isCommit(rev string) bool {
	return len(rev) == 40 && isHex(rev)
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return s != ""
}
