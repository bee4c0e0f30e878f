// Command benchtable reads `go test -bench` output on standard input and
// prints the comparison tables of the README (medians over -count runs), with
// the machine, kernel, Go and library versions. `make bench` runs it.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// metrics[benchmark][unit] holds every value seen (one per -count run).
var metrics = map[string]map[string][]float64{}

var nameRe = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?$`)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		m := nameRe.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		name := m[1]
		if metrics[name] == nil {
			metrics[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				metrics[name][f[i+1]] = append(metrics[name][f[i+1]], v)
			}
		}
	}
	header()
	fullSample()
	samplerFloors()
	apiTable()
	overhead()
}

func med(name, unit string) (float64, bool) {
	v := metrics[name][unit]
	if len(v) == 0 {
		return 0, false
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2], true
}

func out(cmd string, args ...string) string {
	b, err := exec.Command(cmd, args...).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func header() {
	mods := map[string]string{}
	if b, err := os.ReadFile("go.mod"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && (strings.Contains(f[0], "gopsutil") || strings.Contains(f[0], "prometheus/procfs")) {
				mods[f[0]] = f[1]
			}
		}
	}
	fmt.Printf("Measured %s on %s (%d CPUs), Linux %s, %s; gopsutil %s, prometheus/procfs %s. Medians of the runs.\n\n",
		time.Now().UTC().Format("2006-01-02"), out("uname", "-m"), runtime.NumCPU(), out("uname", "-r"), runtime.Version(),
		mods["github.com/shirou/gopsutil/v4"], mods["github.com/prometheus/procfs"])
}

func fmtUS(ns float64) string { return fmt.Sprintf("%.2f µs", ns/1000) }

func fullSample() {
	fmt.Println("One full sample yielding GET /api/processes (per process):")
	fmt.Println()
	fmt.Println("| processes | procwatch | prometheus/procfs | gopsutil v4 | open/read/close | procfs ÷ procwatch | gopsutil ÷ procwatch | procwatch ÷ floor | procwatch allocs/sample |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, extra := range []string{"0", "1000", "5000"} {
		base := "BenchmarkFullSample/extra=" + extra + "/"
		pw, ok := med(base+"procwatch", "ns/proc")
		if !ok {
			continue
		}
		procs, _ := med(base+"procwatch", "procs")
		pf, _ := med(base+"procfs", "ns/proc")
		gp, _ := med(base+"gopsutil", "ns/proc")
		fl, _ := med(base+"floor-open-read-close", "ns/proc")
		allocs, _ := med(base+"procwatch", "allocs/op")
		fmt.Printf("| %.0f | %s | %s | %s | %s | %.1f× | %.1f× | %.2f | %.0f |\n", procs, fmtUS(pw), fmtUS(pf), fmtUS(gp), fmtUS(fl), pf/pw, gp/pw, pw/fl, allocs)
	}
	fmt.Println()
}

func samplerFloors() {
	if _, ok := med("BenchmarkSample/extra=0/procwatch", "ns/proc"); !ok {
		return
	}
	fmt.Println("The sampler beside the open/read/close floors (sampler/BenchmarkSample, per process):")
	fmt.Println()
	fmt.Println("| processes | procwatch | raw-syscall open/read/close | os.Open/Read/Close | ÷ raw | ÷ os | allocs/sample |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	for _, extra := range []string{"0", "1000"} {
		base := "BenchmarkSample/extra=" + extra + "/"
		pw, ok := med(base+"procwatch", "ns/proc")
		if !ok {
			continue
		}
		procs, _ := med(base+"procwatch", "procs")
		raw, _ := med(base+"open-read-close", "ns/proc")
		osr, _ := med(base+"os-open-read-close", "ns/proc")
		allocs, _ := med(base+"procwatch", "allocs/op")
		fmt.Printf("| %.0f | %s | %s | %s | %.2f | %.2f | %.0f |\n", procs, fmtUS(pw), fmtUS(raw), fmtUS(osr), pw/raw, pw/osr, allocs)
	}
	fmt.Println()
}

func apiTable() {
	p, ok := med("BenchmarkAPI/processes", "req/s")
	if !ok {
		return
	}
	c, _ := med("BenchmarkAPI/constant", "req/s")
	fmt.Println("GET /api/processes on loopback, 16 clients, beside a handler writing the same bytes:")
	fmt.Println()
	fmt.Println("| handler | requests/s | p50 | p99 |")
	fmt.Println("|---|---:|---:|---:|")
	for _, h := range []string{"processes", "constant"} {
		r, _ := med("BenchmarkAPI/"+h, "req/s")
		p50, _ := med("BenchmarkAPI/"+h, "p50-µs")
		p99, _ := med("BenchmarkAPI/"+h, "p99-µs")
		fmt.Printf("| %s | %.0f | %.0f µs | %.0f µs |\n", h, r, p50, p99)
	}
	fmt.Printf("\nThroughput ratio (processes ÷ constant): %.2f\n\n", p/c)
}

func overhead() {
	if _, ok := med("BenchmarkAgentOverhead/extra=1000", "%core"); !ok {
		return
	}
	fmt.Println("The whole agent at a 3 s interval, over a minute after a 10 s warm-up:")
	fmt.Println()
	fmt.Println("| processes | CPU (% of one core) | resident memory |")
	fmt.Println("|---:|---:|---:|")
	for _, extra := range []string{"1000", "5000"} {
		name := "BenchmarkAgentOverhead/extra=" + extra
		cpu, ok := med(name, "%core")
		if !ok {
			continue
		}
		rss, _ := med(name, "rss-MiB")
		procs, _ := med(name, "procs")
		fmt.Printf("| %.0f | %.3f %% | %.1f MiB |\n", procs, cpu, rss)
	}
	fmt.Println()
}
