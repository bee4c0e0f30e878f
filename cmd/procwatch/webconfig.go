package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// webConfig is what procwatch takes from a --web.config.file: the format of
// prometheus/exporter-toolkit (the one node_exporter users know), read with
// its types and validated and turned into TLS by it. Basic auth is checked
// by the API itself rather than by exporter-toolkit's handler, because that
// handler authenticates every path and /healthz must stay open to health
// checkers.
type webConfig struct {
	users map[string]string // user → bcrypt hash
	tls   *tls.Config       // nil: plain HTTP
}

func loadWebConfig(path string) (webConfig, error) {
	var wc webConfig
	if path == "" {
		return wc, nil
	}
	if err := web.Validate(path); err != nil {
		return wc, fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return wc, fmt.Errorf("--web.config.file: %w", err)
	}
	var c web.Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return wc, fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	c.TLSConfig.SetDirectory(filepath.Dir(path))
	if len(c.Users) > 0 {
		wc.users = make(map[string]string, len(c.Users))
		for u, h := range c.Users {
			wc.users[u] = string(h)
		}
	}
	if c.TLSConfig.IsEnabled() {
		if wc.tls, err = web.ConfigToTLSConfig(&c.TLSConfig); err != nil {
			return wc, fmt.Errorf("--web.config.file %s: %w", path, err)
		}
	}
	return wc, nil
}
