package history

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The checkpoint file:
//
//	magic "PWHIST\x00\x00" | version u32
//	per series: pid i32 | start u64 | nameLen u8 | name | lastSeen i64 | first i64
//	            | base i64 | wrapped u8 | raw u32 | raw × (offset u32, cpu u32, rss u32)
//	            | rollups u32 | rollups × 24 bytes
//	number of series u32 (known only once they are written)
//	crc32c of everything before it, u32
//
// Integers are little-endian; raw points and rollups are written oldest first.
const (
	checkpointMagic   = "PWHIST\x00\x00"
	checkpointVersion = 1
	// CheckpointName is the file name of the checkpoint in the data directory.
	CheckpointName = "history.ckpt"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a checkpoint that cannot be trusted.
var ErrCorrupt = errors.New("history checkpoint is corrupt")

// Checkpoint writes the whole store to dir atomically: a temporary file,
// fsync, rename over the old checkpoint, fsync of the directory.
func (s *Store) Checkpoint(dir string) error {
	tmp, err := os.CreateTemp(dir, CheckpointName+".tmp-*")
	if err != nil {
		return fmt.Errorf("history checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, crc), 256<<10)
	if err := s.encode(bw); err != nil {
		tmp.Close()
		return fmt.Errorf("history checkpoint: %w", err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("history checkpoint: %w", err)
	}
	if err := binary.Write(tmp, binary.LittleEndian, crc.Sum32()); err != nil {
		tmp.Close()
		return fmt.Errorf("history checkpoint: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("history checkpoint: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("history checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, CheckpointName)); err != nil {
		return fmt.Errorf("history checkpoint: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("history checkpoint: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("history checkpoint: fsync directory: %w", err)
	}
	return nil
}

func (s *Store) encode(w *bufio.Writer) error {
	le := binary.LittleEndian
	if _, err := w.Write(le.AppendUint32([]byte(checkpointMagic), checkpointVersion)); err != nil {
		return err
	}
	var body []byte
	count := uint32(0)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, list := range sh.series {
			for _, ser := range list {
				body = appendSeries(body[:0], ser)
				count++
				if _, err := w.Write(body); err != nil {
					sh.mu.Unlock()
					return err
				}
			}
		}
		sh.mu.Unlock()
	}
	_, err := w.Write(le.AppendUint32(nil, count))
	return err
}

func appendSeries(b []byte, ser *series) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(ser.key.PID))
	b = le.AppendUint64(b, ser.key.StartTicks)
	b = append(b, ser.nameLen)
	b = append(b, ser.name[:ser.nameLen]...)
	b = le.AppendUint64(b, uint64(ser.lastSeen))
	b = le.AppendUint64(b, uint64(ser.firstMS))
	b = le.AppendUint64(b, uint64(ser.baseMS))
	wrapped := byte(0)
	if ser.wrapped {
		wrapped = 1
	}
	b = append(b, wrapped)
	n := len(ser.raw)
	b = le.AppendUint32(b, uint32(n))
	for i := range n {
		p := ser.raw[(ser.rawHead+i)%n]
		b = le.AppendUint32(b, p.offsetMS)
		b = le.AppendUint32(b, p.cpu)
		b = le.AppendUint32(b, p.rss)
	}
	m := len(ser.rolls)
	b = le.AppendUint32(b, uint32(m))
	for i := range m {
		r := ser.rolls[(ser.rollHead+i)%m]
		b = le.AppendUint32(b, r.bucket)
		b = le.AppendUint16(b, r.count)
		b = le.AppendUint16(b, r.rssSumHi)
		b = le.AppendUint32(b, r.cpuSum)
		b = le.AppendUint32(b, r.cpuMax)
		b = le.AppendUint32(b, r.rssSumLo)
		b = le.AppendUint32(b, r.rssMax)
	}
	return b
}

// Restore loads the checkpoint in dir into an empty store, dropping what is
// older than retention. A missing checkpoint is not an error. A corrupt one
// (bad checksum, truncated, wrong version) is renamed aside with the suffix
// .corrupt-<unix time>, and the error says so; the store stays empty.
func (s *Store) Restore(dir string, now time.Time) error {
	path := filepath.Join(dir, CheckpointName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("history restore: %w", err)
	}
	series, err := decodeCheckpoint(b)
	if err != nil {
		aside := path + ".corrupt-" + strconv.FormatInt(now.Unix(), 10)
		if rerr := os.Rename(path, aside); rerr != nil {
			return fmt.Errorf("history restore: %w (and setting it aside failed: %v)", err, rerr)
		}
		return fmt.Errorf("history restore: %w; set aside as %s, starting empty", err, aside)
	}
	cutoff := now.Add(-s.cfg.Retention).UnixMilli()
	for _, ser := range series {
		if ser.lastSeen < cutoff {
			continue
		}
		s.adopt(ser)
	}
	return nil
}

// adopt inserts a decoded series, trimming its rings to this store's sizes.
func (s *Store) adopt(ser *series) {
	if len(ser.raw) > s.rawCap {
		ser.raw = ser.raw[len(ser.raw)-s.rawCap:]
		ser.wrapped = true
	}
	if len(ser.rolls) > s.rollCap {
		ser.rolls = ser.rolls[len(ser.rolls)-s.rollCap:]
	}
	ser.raw = slicesClip(ser.raw)
	ser.rolls = slicesClipR(ser.rolls)
	sh := s.shard(ser.key.PID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.find(ser.key) != nil {
		return
	}
	sh.series[ser.key.PID] = append(sh.series[ser.key.PID], ser)
	s.count.Add(1)
	s.bytes.Add(ser.bytes())
}

func slicesClip(p []point) []point    { return p[:len(p):len(p)] }
func slicesClipR(r []rollup) []rollup { return r[:len(r):len(r)] }

// decodeCheckpoint parses a whole checkpoint file.
func decodeCheckpoint(b []byte) ([]*series, error) {
	if len(b) < len(checkpointMagic)+4+4+4 { // header, count, checksum
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	body, sum := b[:len(b)-4], le.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if string(body[:8]) != checkpointMagic {
		return nil, fmt.Errorf("%w: not a procwatch history checkpoint", ErrCorrupt)
	}
	if v := le.Uint32(body[8:]); v != checkpointVersion {
		return nil, fmt.Errorf("%w: version %d, this agent reads %d", ErrCorrupt, v, checkpointVersion)
	}
	count := le.Uint32(body[len(body)-4:])
	r := reader{b: body[12 : len(body)-4]}
	var out []*series
	for range count {
		ser := &series{}
		ser.key.PID = int32(r.u32())
		ser.key.StartTicks = r.u64()
		ser.nameLen = r.u8()
		if ser.nameLen > nameCap {
			return nil, fmt.Errorf("%w: name of %d bytes", ErrCorrupt, ser.nameLen)
		}
		copy(ser.name[:], r.bytes(int(ser.nameLen)))
		ser.lastSeen = int64(r.u64())
		ser.firstMS = int64(r.u64())
		ser.baseMS = int64(r.u64())
		ser.wrapped = r.u8() == 1
		n := r.u32()
		if uint64(n)*12 > uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: %d raw points do not fit", ErrCorrupt, n)
		}
		ser.raw = make([]point, n)
		for i := range ser.raw {
			ser.raw[i] = point{offsetMS: r.u32(), cpu: r.u32(), rss: r.u32()}
		}
		m := r.u32()
		if uint64(m)*24 > uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: %d rollups do not fit", ErrCorrupt, m)
		}
		ser.rolls = make([]rollup, m)
		for i := range ser.rolls {
			ser.rolls[i] = rollup{bucket: r.u32(), count: r.u16(), rssSumHi: r.u16(), cpuSum: r.u32(), cpuMax: r.u32(), rssSumLo: r.u32(), rssMax: r.u32()}
		}
		if r.err {
			return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		out = append(out, ser)
	}
	if r.err || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over", ErrCorrupt, len(r.b))
	}
	return out, nil
}

// reader reads little-endian values, remembering whether it ran out.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) bytes(n int) []byte {
	if n > len(r.b) {
		r.err, r.b = true, nil
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *reader) u8() uint8   { return r.bytes(1)[0] }
func (r *reader) u16() uint16 { return binary.LittleEndian.Uint16(r.bytes(2)) }
func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.bytes(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.bytes(8)) }
