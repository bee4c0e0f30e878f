package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryPackageHasADocComment walks the repository (bench included) and
// requires a package comment, starting "Package <name>" or "Command
// <name>", in every Go package.
func TestEveryPackageHasADocComment(t *testing.T) {
	root := "../.."
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root {
			if d.IsDir() && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			return err
		}
		for name, pkg := range pkgs {
			documented := false
			for _, f := range pkg.Files {
				if f.Doc != nil {
					text := f.Doc.Text()
					if strings.HasPrefix(text, "Package "+name+" ") || strings.HasPrefix(text, "Command ") {
						documented = true
					}
				}
			}
			if !documented {
				t.Errorf("package %s in %s has no doc comment", name, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
