package artifact

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// ent is one entry of a crafted archive.
type ent struct {
	typ    byte
	name   string
	body   string // file content
	link   string // symlink or hard link target
	mode   int64
	sizeOf int64 // header size if body is empty (for bombs)
}

func file(name, body string) ent       { return ent{typ: tar.TypeReg, name: name, body: body, mode: 0o644} }
func dir(name string) ent              { return ent{typ: tar.TypeDir, name: name, mode: 0o755} }
func symlink(name, target string) ent  { return ent{typ: tar.TypeSymlink, name: name, link: target} }
func hardlink(name, target string) ent { return ent{typ: tar.TypeLink, name: name, link: target} }

// craftTar writes entries as they are, however unsafe: archive/tar checks none of this.
func craftTar(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.sizeOf > 0 {
			hdr.Size = e.sizeOf
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		if e.sizeOf > 0 {
			if _, err := io.CopyN(tw, zeros{}, e.sizeOf); err != nil {
				t.Fatal(err)
			}
		} else if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, data ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		enc.Write(d)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// unpackIn unpacks into a fresh dest inside a fresh parent, with a file beside it that an
// escape would reach, and checks that nothing outside dest changed.
func unpackIn(t *testing.T, archive []byte, lim Limits) (string, Ref, error) {
	t.Helper()
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(parent, "dest")
	ref, err := Unpack(context.Background(), bytes.NewReader(archive), dest, lim)
	names, _ := os.ReadDir(parent)
	if len(names) != 2 {
		t.Errorf("something appeared beside dest: %v", names)
	}
	if data, _ := os.ReadFile(filepath.Join(parent, "outside")); string(data) != "untouched" {
		t.Errorf("the file beside dest now holds %q", data)
	}
	return dest, ref, err
}

func TestUnpackRefusesUnsafeEntries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		entries []ent
		path    string // the entry the error must name
		reason  string // a part of the reason
	}{
		{"absolute", []ent{file("/outside", "x")}, "/outside", "absolute"},
		{"dotdot", []ent{file("../outside", "x")}, "../outside", ".."},
		{"dotdot inside", []ent{file("a/../../outside", "x")}, "a/../../outside", ".."},
		{"dotdot harmless-looking", []ent{file("a/../b", "x")}, "a/../b", ".."},
		{"below a symlink", []ent{dir("b"), symlink("a", "b"), file("a/f", "x")}, "a/f", "symlink"},
		{"below a symlink to the root", []ent{symlink("a", "."), file("a/f", "x")}, "a/f", "symlink"},
		{"below a file", []ent{file("a", "x"), file("a/f", "x")}, "a/f", "is a file"},
		{"symlink absolute", []ent{symlink("l", "/etc/passwd")}, "l", "leaves"},
		{"symlink escaping", []ent{symlink("d/l", "../../outside")}, "d/l", "leaves"},
		{"symlink dotdot after a name", []ent{symlink("x", "."), symlink("l", "x/../outside")}, "l", "leaves"},
		{"symlink empty", []ent{symlink("l", "")}, "l", "leaves"},
		{"hard link out", []ent{hardlink("h", "../outside")}, "h", "hard link"},
		{"hard link absolute", []ent{hardlink("h", "/etc/passwd")}, "h", "hard link"},
		{"hard link to a later entry", []ent{hardlink("h", "f"), file("f", "x")}, "h", "hard link"},
		{"hard link to a symlink", []ent{symlink("s", "f"), hardlink("h", "s")}, "h", "hard link"},
		{"char device", []ent{{typ: tar.TypeChar, name: "null"}}, "null", "device"},
		{"block device", []ent{{typ: tar.TypeBlock, name: "sda"}}, "sda", "device"},
		{"fifo", []ent{{typ: tar.TypeFifo, name: "pipe"}}, "pipe", "fifo"},
		{"other type", []ent{{typ: tar.TypeCont, name: "cont"}}, "cont", "not supported"},
		{"duplicate file", []ent{file("a", "1"), file("a", "2")}, "a", "duplicate"},
		{"duplicate symlink", []ent{symlink("a", "b"), file("a", "2")}, "a", "duplicate"},
		{"file over a directory", []ent{file("a/b", "1"), file("a", "2")}, "a", "duplicate"},
		{"duplicate directory", []ent{dir("a"), dir("a/")}, "a/", "duplicate"},
		{"root as a file", []ent{file(".", "x")}, ".", "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := unpackIn(t, compress(t, craftTar(t, tc.entries...)), Limits{})
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Unpack = %v; want an *EntryError wrapping ErrUnsafe", err)
			}
			if ee.Path != tc.path || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Unpack = %v; want it to name %q and say %q", err, tc.path, tc.reason)
			}
		})
	}
}

func TestUnpackLimits(t *testing.T) {
	t.Parallel()
	big := craftTar(t, ent{typ: tar.TypeReg, name: "zeros", sizeOf: 64 << 20, mode: 0o644})
	bomb := compress(t, big)
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes; the test wants a high ratio", len(bomb))
	}
	small := craftTar(t, file("a", "x"))
	for _, tc := range []struct {
		name    string
		archive []byte
		lim     Limits
		path    string
	}{
		{"one entry over the limit", bomb, Limits{MaxSize: 1 << 20}, "zeros"},
		{"entries adding up", compress(t, craftTar(t, file("a", strings.Repeat("a", 3000)), file("b", strings.Repeat("b", 3000)))), Limits{MaxSize: 6000}, "b"},
		// Headers cannot tell about what follows the end of the archive: only counting does.
		{"data after the end", compress(t, small, make([]byte, 32<<20)), Limits{MaxSize: 1 << 20}, ""},
		{"too many files", compress(t, craftTar(t, file("a", ""), file("b", ""), file("c", ""))), Limits{MaxFiles: 2}, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest, _, err := unpackIn(t, tc.archive, tc.lim)
			var ee *EntryError
			if !errors.Is(err, ErrTooLarge) || (tc.path != "" && (!errors.As(err, &ee) || ee.Path != tc.path)) {
				t.Fatalf("Unpack = %v; want an error about %q wrapping ErrTooLarge", err, tc.path)
			}
			if n := du(t, dest); n > tc.lim.MaxSize && tc.lim.MaxSize > 0 {
				t.Errorf("wrote %d bytes with a limit of %d", n, tc.lim.MaxSize)
			}
		})
	}

	// Exactly at the limit is fine.
	if _, ref, err := unpackIn(t, compress(t, small), Limits{MaxSize: int64(len(small))}); err != nil || ref.Size != int64(len(small)) {
		t.Errorf("Unpack at the limit = %v, %v", ref, err)
	}
}

// A frame asking for a huge window is refused before any allocation.
func TestUnpackRefusesHugeWindow(t *testing.T) {
	t.Parallel()
	frame := []byte{
		0x28, 0xb5, 0x2f, 0xfd, // magic
		0x00,    // frame header: no content size, not single segment, no checksum, no dictionary
		30 << 3, // window: 2^(10+30) bytes = 1 TiB
		1, 0, 0, // last block, raw, empty
	}
	_, _, err := unpackIn(t, frame, Limits{})
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Errorf("Unpack = %v; want ErrCorrupt and zstd.ErrWindowSizeExceeded", err)
	}
}

func TestUnpackAcceptsOrdinaryTars(t *testing.T) {
	t.Parallel()
	// What GNU tar writes for "tar -C dir .": a root entry, directories, "./" prefixes; and
	// record padding after the end.
	archive := craftTar(t,
		dir("./"), dir("./a/"), file("./a/f", "data"), hardlink("./a/g", "./a/f"),
		symlink("./l", "a/f"), symlink("./a/b/up", "../../l"), ent{typ: tar.TypeReg, name: "./x", body: "#!", mode: 0o700})
	archive = append(archive, make([]byte, 10240-len(archive)%10240)...)
	dest, ref, err := unpackIn(t, compress(t, archive), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if ref.Size != int64(len(archive)) || ref.Files != 5 {
		t.Errorf("ref = %+v; want size %d and 5 files", ref, len(archive))
	}
	for name, want := range map[string]string{"a/f": "data", "a/g": "data", "l": "data", "a/b/up": "data", "x": "#!"} {
		if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dest, "x")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("x lost its exec bit: %v, %v", fi.Mode(), err)
	}
}

// Unpack into a directory that already holds a symlink to outside cannot write through it.
func TestUnpackDoesNotFollowExistingLinks(t *testing.T) {
	t.Parallel()
	outside, dest := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dest, "evil")); err != nil {
		t.Fatal(err)
	}
	_, err := Unpack(context.Background(), bytes.NewReader(compress(t, craftTar(t, file("evil/f", "x")))), dest, Limits{})
	if err == nil {
		t.Error("Unpack wrote through a symlink to outside")
	}
	if names, _ := os.ReadDir(outside); len(names) != 0 {
		t.Errorf("outside now holds %v", names)
	}
}

func TestUnpackErrors(t *testing.T) {
	t.Parallel()
	good := compress(t, craftTar(t, file("a", strings.Repeat("data", 1000))))
	for name, archive := range map[string][]byte{
		"truncated": good[:len(good)-10],
		"garbage":   []byte("not zstd at all"),
		"not a tar": compress(t, []byte(strings.Repeat("not a tar header ", 100))),
		"trailing":  append(bytes.Clone(good), "junk"...),
	} {
		if _, _, err := unpackIn(t, archive, Limits{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Unpack = %v; want ErrCorrupt", name, err)
		}
	}

	// An error of the source is not corruption.
	failing := io.MultiReader(bytes.NewReader(good[:len(good)/2]), iotestErr{})
	_, err := Unpack(context.Background(), failing, t.TempDir(), Limits{})
	if !errors.Is(err, errSource) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Unpack from a failing source = %v; want the source's error only", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Unpack(ctx, bytes.NewReader(good), t.TempDir(), Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Unpack with a cancelled context = %v", err)
	}
}

var errSource = errors.New("connection reset")

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errSource }

func du(t *testing.T, dir string) (n int64) {
	t.Helper()
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func FuzzUnpack(f *testing.F) {
	f.Add(craftTar(f, file("a", "x"), symlink("l", "a"), hardlink("h", "a")))
	f.Add(craftTar(f, dir("./"), file("./d/f", "x"), symlink("d/l", "../d/f")))
	f.Add(craftTar(f, symlink("x", "."), symlink("l", "x/../y")))
	f.Add(craftTar(f, file("../a", "x")))
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tarData []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		Unpack(context.Background(), bytes.NewReader(enc.EncodeAll(tarData, nil)), dest, Limits{MaxSize: 1 << 20, MaxFiles: 100})
		contained(t, parent, dest)
	})
}

// FuzzUnpackZip fuzzes the unpacking of zip archives (Source/S3's objects): whatever the
// bytes, nothing is written beside dest and no symlink in dest leads out of it.
func FuzzUnpackZip(f *testing.F) {
	for _, entries := range [][][2]string{
		{{"a.txt", "x"}, {"d/b.txt", "y"}},
		{{"../escape", "x"}},
		{{"/abs", "x"}},
	} {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for _, e := range entries {
			w, err := zw.Create(e[0])
			if err != nil {
				f.Fatal(err)
			}
			w.Write([]byte(e[1]))
		}
		if err := zw.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		UnpackZip(context.Background(), bytes.NewReader(data), int64(len(data)), dest, Limits{MaxSize: 1 << 20, MaxFiles: 100})
		contained(t, parent, dest)
	})
}

// contained fails t when an unpacking into dest (alone in parent) wrote beside it or left a
// symlink that leads out of it.
func contained(t *testing.T, parent, dest string) {
	t.Helper()
	if names, _ := os.ReadDir(parent); len(names) > 1 {
		t.Fatalf("wrote beside dest: %v", names)
	}
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			rel, _ := filepath.Rel(dest, p)
			if !symlinkInside(filepath.ToSlash(rel), target) {
				t.Fatalf("symlink %s -> %s leaves dest", rel, target)
			}
		}
		return nil
	})
}
