package sampler

import (
	"reflect"
	"testing"
)

func TestParseCapEff(t *testing.T) {
	c, err := parseCapEff([]byte("Name:\tx\nCapInh:\t0\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n"))
	if err != nil || !c.Has(CapKill) || !c.Has(CapSysPtrace) {
		t.Fatalf("caps %x, %v", c, err)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"CAP_KILL", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}) {
		t.Errorf("names %v", got)
	}
	c, _ = parseCapEff([]byte("x\nCapEff:\t0000000000000020\n"))
	if !c.Has(CapKill) || c.Has(CapSysPtrace) {
		t.Errorf("caps %x", c)
	}
	if _, err := parseCapEff([]byte("Name: x\n")); err == nil {
		t.Error("missing CapEff accepted")
	}
}

func TestProcMountOptions(t *testing.T) {
	mi := "22 1 0:5 / /proc rw,nosuid - proc proc rw,hidepid=invisible,subset=pid\n23 1 0:6 / /sys rw - sysfs sysfs rw\n"
	if got := procMountOptions([]byte(mi), "/proc"); got != "rw,hidepid=invisible,subset=pid" {
		t.Errorf("options %q", got)
	}
	if got := procMountOptions([]byte(mi), "/elsewhere"); got != "" {
		t.Errorf("options %q", got)
	}
}

func TestReadIdentity(t *testing.T) {
	id, err := ReadIdentity("../testdata/proc", 101)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "q\"uo\nte\xff\xfe" || id.Tgid != 101 || id.PPID != 1 || id.State != 'R' || id.StartTicks != 2000 || id.UIDs != [4]uint32{65534, 65534, 65534, 65534} || id.Kthread {
		t.Errorf("identity %+v", id)
	}
	if id, err := ReadIdentity("../testdata/proc", 2); err != nil || !id.Kthread {
		t.Errorf("kthreadd: %+v %v", id, err)
	}
	if _, err := ReadIdentity("../testdata/proc", 4242); err == nil {
		t.Error("a missing process has an identity")
	}
}
