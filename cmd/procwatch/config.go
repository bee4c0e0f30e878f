package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/history"
	"github.com/rs/zerolog"
)

// maxLimit is the most a request's limit may ask for: the sampler keeps top
// lists this long.
const maxLimit = 100

// version and commit are set at build time with -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

type config struct {
	listenAddress string
	interval      time.Duration
	top           int
	procRoot      string
	logLevel      zerolog.Level
	logFormat     string
	version       bool
	redact        bool
	redactExtra   []string
	history       history.Config
	dataDir       string
	killEnabled   bool
	killGrace     time.Duration
	killProtect   []string
	killUsers     []string
	webConfigFile string
	allowedHosts  []string
	corsOrigins   []string
	maxInFlight   int
	web           webConfig // loaded from webConfigFile
	maxGroups     int
}

var errHelp = errors.New("help requested")

// flags declares every flag on fs, bound to cfg.
func flags(fs *flag.FlagSet, cfg *config) {
	fs.StringVar(&cfg.listenAddress, "web.listen-address", "127.0.0.1:8754", "where the API listens. Loopback by default: exposing it is a decision")
	fs.DurationVar(&cfg.interval, "telemetry-interval", 3*time.Second, "sampling interval, 1s..60s")
	fs.IntVar(&cfg.top, "top", 10, "length of the top lists, 1..100")
	fs.StringVar(&cfg.procRoot, "proc-root", "/proc", "the procfs to read")
	fs.Func("log.level", "log level: debug, info, warn, error (default info)", func(s string) error {
		l, err := zerolog.ParseLevel(s)
		if err != nil || s == "" {
			return fmt.Errorf("unknown level %q", s)
		}
		cfg.logLevel = l
		return nil
	})
	fs.Func("log.format", "log format: json (one object per line) or console (default json)", func(s string) error {
		if s != "json" && s != "console" {
			return fmt.Errorf("unknown format %q", s)
		}
		cfg.logFormat = s
		return nil
	})
	fs.IntVar(&cfg.history.Points, "history.points", 1000, "raw samples kept per process")
	fs.DurationVar(&cfg.history.Retention, "history.retention", 48*time.Hour, "nothing older is kept or served, 1h..48h")
	fs.IntVar(&cfg.history.MaxSeries, "history.max-series", 50000, "cap on processes with history; exited ones are evicted first, oldest first")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "where history is checkpointed (every 5 minutes and at shutdown) so a restart loses nothing; empty: memory only")
	fs.StringVar(&cfg.webConfigFile, "web.config.file", "", "exporter-toolkit web config (TLS, basic_auth_users with bcrypt hashes), as node_exporter reads it")
	fs.Func("web.allowed-hosts", "more Host header values accepted when listening on loopback only (comma-separated, repeatable)", listFlag(&cfg.allowedHosts))
	fs.Func("web.cors-origins", "origins allowed to call the API from a browser; * allows any origin for GET only (comma-separated, repeatable)", listFlag(&cfg.corsOrigins))
	fs.IntVar(&cfg.maxInFlight, "web.max-requests", 64, "concurrent requests served before answering 429")
	fs.Func("kill.users", "basic-auth users allowed to kill from a remote client; empty: every authenticated user (comma-separated, repeatable)", listFlag(&cfg.killUsers))
	fs.BoolVar(&cfg.killEnabled, "kill.enabled", true, "false makes the kill endpoint answer 403")
	fs.DurationVar(&cfg.killGrace, "kill.grace", 5*time.Second, "how long SIGTERM gets before the SIGKILL fallback, 0s..60s")
	fs.Func("kill.protect", "process names (comm) that may never be killed, beside PID 1, the agent and kernel threads (comma-separated, repeatable)", listFlag(&cfg.killProtect))
	fs.BoolVar(&cfg.redact, "cmdline.redact", true, "hide the values of secret-looking arguments (--password=…, --token …, API_KEY=…) in command lines")
	fs.Func("cmdline.redact-pattern", "a regular expression for more secret argument names, e.g. 'db-?pw' (repeatable)", func(s string) error {
		if _, err := api.NewRedactor(true, []string{s}); err != nil {
			return err
		}
		cfg.redactExtra = append(cfg.redactExtra, s)
		return nil
	})
	fs.IntVar(&cfg.maxGroups, "metrics.max-groups", 500, "name/user groups on /metrics before the rest fold into name=\"other\"")
	fs.BoolVar(&cfg.version, "version", false, "print version, commit and Go version, and exit")
}

// listFlag appends the comma-separated values of each use of a flag to dst.
func listFlag(dst *[]string) func(string) error {
	return func(s string) error {
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*dst = append(*dst, v)
			}
		}
		return nil
	}
}

// envName is the environment variable of a flag: PROCWATCH_ and the name in
// upper case with dots and dashes as underscores.
func envName(flagName string) string {
	return "PROCWATCH_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flagName))
}

// parseConfig parses args; a flag not given takes its environment variable.
// Every value is checked, and the first bad one is the error.
func parseConfig(args []string, lookupEnv func(string) (string, bool)) (config, error) {
	cfg := config{logLevel: zerolog.InfoLevel, logFormat: "json"}
	fs := flag.NewFlagSet("procwatch", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || envErr != nil {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %v", v, envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if cfg.interval < time.Second || cfg.interval > time.Minute {
		return cfg, fmt.Errorf("--telemetry-interval %v is out of range 1s..60s", cfg.interval)
	}
	if cfg.history.Points < 1 || cfg.history.Points > 100000 {
		return cfg, fmt.Errorf("--history.points %d is out of range 1..100000", cfg.history.Points)
	}
	if cfg.history.Retention < time.Hour || cfg.history.Retention > 48*time.Hour {
		return cfg, fmt.Errorf("--history.retention %v is out of range 1h..48h", cfg.history.Retention)
	}
	if cfg.history.MaxSeries < 1 {
		return cfg, fmt.Errorf("--history.max-series %d must be at least 1", cfg.history.MaxSeries)
	}
	for _, o := range cfg.corsOrigins {
		// The same check the API applies, here so a bad value exits 2.
		if err := http.NewCrossOriginProtection().AddTrustedOrigin(o); o != "*" && err != nil {
			return cfg, fmt.Errorf("--web.cors-origins %q: %v (want scheme://host[:port])", o, err)
		}
	}
	if cfg.maxGroups < 1 {
		return cfg, fmt.Errorf("--metrics.max-groups %d must be at least 1", cfg.maxGroups)
	}
	if cfg.maxInFlight < 1 {
		return cfg, fmt.Errorf("--web.max-requests %d must be at least 1", cfg.maxInFlight)
	}
	if cfg.killGrace < 0 || cfg.killGrace > time.Minute {
		return cfg, fmt.Errorf("--kill.grace %v is out of range 0s..60s", cfg.killGrace)
	}
	if cfg.top < 1 || cfg.top > maxLimit {
		return cfg, fmt.Errorf("--top %d is out of range 1..%d", cfg.top, maxLimit)
	}
	return cfg, nil
}

func usage() string {
	var b strings.Builder
	b.WriteString("Usage: procwatch [flags]\n\nSamples every process from /proc and serves an HTTP JSON API (README.md).\nEvery flag can also be set as PROCWATCH_<NAME> (dots and dashes as _, upper case).\n")
	fs := flag.NewFlagSet("procwatch", flag.ContinueOnError)
	var cfg config
	flags(fs, &cfg)
	groups := []struct{ prefix, title string }{
		{"web.", "Serving"}, {"telemetry-", "Sampling"}, {"top", "Sampling"}, {"proc-root", "Sampling"},
		{"history.", "History"}, {"data-dir", "History"}, {"kill.", "Killing"}, {"cmdline.", "Command lines"},
		{"metrics.", "Metrics"}, {"log.", "Logging"}, {"version", "Other"},
	}
	byTitle := map[string][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		title := "Other"
		for _, g := range groups {
			if strings.HasPrefix(f.Name, g.prefix) {
				title = g.title
				break
			}
		}
		byTitle[title] = append(byTitle[title], f)
	})
	order := []string{"Serving", "Sampling", "History", "Killing", "Command lines", "Metrics", "Logging", "Other"}
	for _, title := range order {
		if len(byTitle[title]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", title)
		for _, f := range byTitle[title] {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(&b, "  --%s\n        %s%s [%s]\n", f.Name, f.Usage, def, envName(f.Name))
		}
	}
	return b.String()
}

func versionString() string {
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	return fmt.Sprintf("procwatch %s (commit %s, %s)", version, revision(), goVersion)
}

// revision is the commit set at build time, else the one the Go tool
// recorded, else "unknown".
func revision() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
