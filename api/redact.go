package api

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// defaultSecretKeys matches argument and variable names whose values are
// secrets: password, passwd, pwd, secret, token, api_key, access-key,
// client_secret, private_key, auth, credentials, … also as the last part of
// a longer name (db-password, GITHUB_TOKEN). Matched case-insensitively.
const defaultSecretKeys = `pass|passwd|password|passphrase|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|secret[-_]?key|private[-_]?key|client[-_]?secret|auth|authorization|credentials?|session[-_]?id|cookie|signature`

// urlCredentials matches the password of scheme://user:password@host.
var urlCredentials = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s]*:)[^@/\s]+@`)

// passwordFlagTools take their password glued to -p (mysql -psecret).
var passwordFlagTools = map[string]bool{
	"mysql": true, "mysqldump": true, "mysqladmin": true, "mysqlimport": true,
	"mysqlshow": true, "mysqlcheck": true, "mariadb": true, "mariadb-dump": true,
	"mariadb-admin": true,
}

// Redactor hides the values of secret-looking arguments in command lines:
// --password=v, --token v, API_KEY=v, scheme://user:v@host, mysql -pv,
// sshpass -p v, and "Bearer v". An unauthenticated process API that serves
// command lines verbatim leaks such secrets; peers have shipped exactly that.
type Redactor struct {
	keys *regexp.Regexp // nil: redaction off
}

// NewRedactor returns a redactor; extra adds regular expressions for more
// secret names (matched against the whole name, case-insensitively).
func NewRedactor(enabled bool, extra []string) (*Redactor, error) {
	if !enabled {
		return &Redactor{}, nil
	}
	alts := defaultSecretKeys
	for _, p := range extra {
		if _, err := regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("cmdline redact pattern %q: %w", p, err)
		}
		alts += "|" + p
	}
	re, err := regexp.Compile(`(?i)^(?:.*[-_.])?(?:` + alts + `)$`)
	if err != nil {
		return nil, err
	}
	return &Redactor{keys: re}, nil
}

const redacted = "***"

// Redact returns cmdline with secret values replaced by ***.
func (r *Redactor) Redact(cmdline string) string {
	if r == nil || r.keys == nil || cmdline == "" {
		return cmdline
	}
	tokens := strings.Split(cmdline, " ")
	tool := path.Base(tokens[0])
	changed, redactNext := false, false
	for i, tok := range tokens {
		orig := tok
		switch {
		case redactNext && tok != "" && !strings.HasPrefix(tok, "-"):
			tok, redactNext = redacted, false
		case tok == "":
			// Two spaces in a row: keep waiting for the value.
		default:
			redactNext = false
			tok = urlCredentials.ReplaceAllString(tok, "${1}"+redacted+"@")
			name, value, hasValue := strings.Cut(tok, "=")
			key := strings.TrimLeft(name, "-")
			switch {
			case hasValue && value != "" && key != "" && r.keys.MatchString(key):
				tok = name + "=" + redacted
			case !hasValue && strings.HasPrefix(tok, "-") && key != "" && r.keys.MatchString(key):
				redactNext = true // --password value
			case passwordFlagTools[tool] && len(tok) > 2 && strings.HasPrefix(tok, "-p") && !strings.HasPrefix(tok, "--"):
				tok = "-p" + redacted
			case tool == "sshpass" && tok == "-p":
				redactNext = true
			case strings.EqualFold(tok, "bearer") || strings.EqualFold(tok, "basic"):
				redactNext = true
			}
		}
		if tok != orig {
			tokens[i], changed = tok, true
		}
	}
	if !changed {
		return cmdline
	}
	return strings.Join(tokens, " ")
}
