// Command procwatch is the procwatch agent: it samples every process from
// /proc on a fixed interval and serves the results over an HTTP JSON API.
//
// main parses flags (and their PROCWATCH_* environment variables) into the
// config structs of the packages, builds each part, runs the sampling loop
// (sample → publish to the API) and owns start-up and shutdown.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/history"
	"github.com/procwatch/procwatch/sampler"
	"github.com/procwatch/procwatch/signals"
	"github.com/rs/zerolog"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its inputs made explicit, so tests can run the agent.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, os.LookupEnv)
	if err != nil {
		if errors.Is(err, errHelp) {
			fmt.Fprint(stdout, usage())
			return 0
		}
		fmt.Fprintf(stderr, "procwatch: %s\n", oneLine(err))
		return 2
	}
	if cfg.version {
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	// A bad web config is a bad flag value: one line, exit 2.
	if cfg.web, err = loadWebConfig(cfg.webConfigFile); err != nil {
		fmt.Fprintf(stderr, "procwatch: %s\n", oneLine(err))
		return 2
	}
	log := newLogger(cfg, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("procwatch stopped")
		return 1
	}
	return 0
}

// oneLine folds an error onto one line: start-up errors are one line each.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func newLogger(cfg config, w io.Writer) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	if cfg.logFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(cfg.logLevel).With().Timestamp().Logger()
}

// serve runs the agent until ctx is done.
func serve(ctx context.Context, cfg config, log zerolog.Logger) error {
	smp, err := sampler.New(sampler.Config{
		ProcRoot: cfg.procRoot,
		TopN:     maxLimit,
	}, log.With().Str("component", "sampler").Logger())
	if err != nil {
		return err
	}
	defer smp.Close()

	caps, err := sampler.ReadCaps(cfg.procRoot)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the agent's capabilities; assuming none")
	}
	vis := sampler.ProbeVisibility(cfg.procRoot, caps)
	for _, reason := range vis.Reasons {
		log.Warn().Str("component", "ProcessMonitor").Msg("degraded visibility: " + reason)
	}

	hist := history.New(cfg.history, log.With().Str("component", "history").Logger())
	if cfg.dataDir != "" {
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			log.Error().Err(err).Str("data_dir", cfg.dataDir).Msg("cannot create the data directory; history will not survive a restart")
		}
		if err := hist.Restore(cfg.dataDir, time.Now()); err != nil {
			log.Warn().Err(err).Msg("history checkpoint not restored")
		} else if n := hist.Series(); n > 0 {
			log.Info().Int("series", n).Str("data_dir", cfg.dataDir).Msg("history restored")
		}
	}

	redact, err := api.NewRedactor(cfg.redact, cfg.redactExtra)
	if err != nil {
		return err
	}
	killer := signals.New(signals.Config{
		ProcRoot: cfg.procRoot,
		Inspect:  api.Inspector(cfg.procRoot),
		Grace:    cfg.killGrace,
		Protect:  cfg.killProtect,
		CapKill:  caps.Has(sampler.CapKill),
		UID:      uint32(os.Getuid()),
		EUID:     uint32(os.Geteuid()),
	}, log.With().Str("component", "signals").Logger())

	apiLog := log.With().Str("component", "api").Logger()
	srv := api.New(api.Config{
		Top:         cfg.top,
		MaxLimit:    maxLimit,
		Interval:    cfg.interval,
		Visibility:  vis,
		ProcRoot:    cfg.procRoot,
		Redact:      redact,
		History:     hist,
		Killer:      killer,
		Metrics:     api.MetricsConfig{MaxGroups: cfg.maxGroups, Version: version, Revision: revision(), Runtime: true},
		KillEnabled: cfg.killEnabled,
	}, smp, apiLog)

	wc := cfg.web
	ln, err := net.Listen("tcp", cfg.listenAddress)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	loopbackOnly := isLoopbackListener(ln.Addr())
	handler, err := srv.Secure(api.Security{
		LoopbackOnly: loopbackOnly,
		AllowedHosts: cfg.allowedHosts,
		CORSOrigins:  cfg.corsOrigins,
		Users:        wc.users,
		KillUsers:    cfg.killUsers,
		MaxInFlight:  cfg.maxInFlight,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("--web.cors-origins: %w", err)
	}
	if !loopbackOnly && len(wc.users) == 0 {
		log.Warn().Str("component", "ProcessMonitor").Str("address", ln.Addr().String()).
			Msg("THE API IS EXPOSED WITHOUT AUTHENTICATION: anyone who can reach this address can read every process's command line and details. Configure basic_auth_users (and TLS) in --web.config.file, or listen on loopback only")
	}
	if wc.tls != nil {
		ln = tls.NewListener(ln, wc.tls)
	}
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      90 * time.Second, // longer than the longest kill wait (60 s grace + 5 s)
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}

	log.Info().Str("component", "ProcessMonitor").
		Str("interval", cfg.interval.String()).
		Str("address", ln.Addr().String()).
		Bool("tls", wc.tls != nil).
		Bool("auth", len(wc.users) > 0).
		Strs("capabilities", caps.Names()).
		Bool("visibility_degraded", vis.Degraded).
		Bool("kill_enabled", cfg.killEnabled).
		Bool("kill_uses_pidfd", killer.UsesPidfd()).
		Str("version", version).
		Msg("Process monitoring enabled")

	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		loop := &sampleLoop{interval: cfg.interval, smp: smp, srv: srv, hist: hist, dataDir: cfg.dataDir,
			log: log.With().Str("component", "ProcessMonitor").Logger()}
		loop.run(ctx)
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down: finishing in-flight requests")
	shutCtx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()
	err = httpSrv.Shutdown(shutCtx)
	<-loopDone
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// isLoopbackListener reports whether the listener accepts loopback
// connections only.
func isLoopbackListener(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// checkpointEvery is how often history is checkpointed to --data-dir.
const checkpointEvery = 5 * time.Minute

// sampleLoop takes a sample every interval, appends it to history and
// publishes it to the API.
type sampleLoop struct {
	interval time.Duration
	smp      *sampler.Sampler
	srv      *api.Server
	hist     *history.Store
	dataDir  string
	log      zerolog.Logger

	pageSize   uint64
	lastErrLog time.Time
	failures   int
}

// run samples until ctx is done, then writes a last checkpoint. The first
// sample is taken at once, so the API answers within moments of start-up.
// Errors are logged once a minute at most.
func (l *sampleLoop) run(ctx context.Context) {
	l.pageSize = uint64(os.Getpagesize())
	ticker := time.NewTicker(l.interval)
	defer ticker.Stop()
	lastCheckpoint := time.Now()
	for {
		l.once()
		if l.dataDir != "" && time.Since(lastCheckpoint) >= checkpointEvery {
			l.checkpoint()
			lastCheckpoint = time.Now()
		}
		select {
		case <-ctx.Done():
			if l.dataDir != "" {
				l.checkpoint()
			}
			return
		case <-ticker.C:
		}
	}
}

func (l *sampleLoop) once() {
	w, err := l.smp.Sample()
	if err != nil {
		l.failures++
		if time.Since(l.lastErrLog) >= time.Minute {
			l.log.Error().Err(err).Int("failures", l.failures).Msg("sample failed")
			l.lastErrLog, l.failures = time.Now(), 0
		}
		return
	}
	for i := range w.Procs {
		p := &w.Procs[i]
		l.hist.Append(w.Time, history.Key{PID: p.PID, StartTicks: p.StartTicks}, p.Comm(), p.CPUPercent, p.RSS/l.pageSize)
	}
	l.hist.EndSample(w.Time)
	l.srv.Publish(w)
	m := l.srv.Metrics()
	m.Samples.Inc()
	m.SampleDuration.Observe(w.Duration.Seconds())
}

func (l *sampleLoop) checkpoint() {
	start := time.Now()
	if err := l.hist.Checkpoint(l.dataDir); err != nil {
		l.srv.Metrics().CheckpointFailures.Inc()
		l.log.Error().Err(err).Msg("history checkpoint failed")
		return
	}
	l.srv.Metrics().CheckpointWrites.Inc()
	l.log.Debug().Dur("took", time.Since(start)).Int("series", l.hist.Series()).Msg("history checkpointed")
}
