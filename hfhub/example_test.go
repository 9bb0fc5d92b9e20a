package hfhub_test

import (
	"fmt"
	"os"
	"path/filepath"

	"mohawk/hfhub"
)

func ExampleParseID() {
	id, err := hfhub.ParseID("microsoft/phi-1_5@refs/pr/12")
	fmt.Println(id.Repo, id.Rev(), err)
	_, err = hfhub.ParseID("teacher")
	fmt.Println(err)
	// Output:
	// microsoft/phi-1_5 refs/pr/12 <nil>
	// "teacher" is not a Hugging Face id: want org/name or org/name@revision
}

// A cache as huggingface_hub leaves it: refs/main names the commit whose
// snapshot folder holds the files.
func ExampleCache_Snapshot() {
	dir, _ := os.MkdirTemp("", "hub")
	defer os.RemoveAll(dir)
	commit := "0123456789abcdef0123456789abcdef01234567"
	repo := filepath.Join(dir, "models--org--name")
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.MkdirAll(filepath.Join(repo, "snapshots", commit), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)

	snap, got, err := hfhub.Cache{Dir: dir}.Snapshot(hfhub.ID{Repo: "org/name"})
	fmt.Println(filepath.Base(snap) == commit, got == commit, err)
	_, _, err = hfhub.Cache{Dir: dir}.Snapshot(hfhub.ID{Repo: "org/name", Revision: "v2"})
	fmt.Println(err != nil)
	// Output:
	// true true <nil>
	// true
}
