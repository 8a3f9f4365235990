// Command ociarchive turns one root filesystem tarball into an OCI image archive holding one
// or more images that share that base layer and differ by their configuration (entrypoint,
// command, environment, user) and by optional layers of their own on top, ready for
// `ctr images import`. The local cluster has no registry to pull from, so its images are
// made here from Debian packages.
//
// Usage: ociarchive -layer rootfs.tar -spec images.json -out archive.tar
//
// images.json is a list of {"name": "localhost/x:tag", "entrypoint": [...], "cmd": [...],
// "env": [...], "user": "999", "workingDir": "/", "layers": ["extra.tar"]}; layers are
// uncompressed tarballs applied over the base in order.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
)

type imageSpec struct {
	Name       string   `json:"name"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	Layers     []string `json:"layers,omitempty"`
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func main() {
	layerPath := flag.String("layer", "", "root filesystem as an uncompressed tar")
	specPath := flag.String("spec", "", "JSON list of the images to describe")
	outPath := flag.String("out", "", "the OCI archive to write")
	flag.Parse()
	if *layerPath == "" || *specPath == "" || *outPath == "" {
		log.Fatal("usage: ociarchive -layer rootfs.tar -spec images.json -out archive.tar")
	}
	var specs []imageSpec
	raw, err := os.ReadFile(*specPath)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(raw, &specs); err != nil {
		log.Fatalf("%s: %v", *specPath, err)
	}

	tmp := *outPath + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		log.Fatal(err)
	}
	w := tar.NewWriter(out)
	must(addBytes(w, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)))
	// Each layer file is written once, however many images use it.
	layers := map[string]descriptor{}
	layer := func(path string) descriptor {
		if d, ok := layers[path]; ok {
			return d
		}
		digest, size := must2(digestFile(path))
		must(addFile(w, blobPath(digest), path, size))
		d := descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest, Size: size}
		layers[path] = d
		return d
	}

	var manifests []descriptor
	for _, s := range specs {
		imageLayers := []descriptor{layer(*layerPath)}
		for _, path := range s.Layers {
			imageLayers = append(imageLayers, layer(path))
		}
		// Layers are uncompressed, so each one's diff ID is its digest.
		var diffIDs []string
		for _, l := range imageLayers {
			diffIDs = append(diffIDs, l.Digest)
		}
		config := map[string]any{
			"architecture": "amd64",
			"os":           "linux",
			"config": map[string]any{
				"Entrypoint": s.Entrypoint,
				"Cmd":        s.Cmd,
				"Env":        s.Env,
				"User":       s.User,
				"WorkingDir": s.WorkingDir,
			},
			"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
		}
		configDesc := must1(addJSON(w, "application/vnd.oci.image.config.v1+json", config))
		manifest := map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        configDesc,
			"layers":        imageLayers,
		}
		desc := must1(addJSON(w, "application/vnd.oci.image.manifest.v1+json", manifest))
		tag := s.Name[strings.LastIndex(s.Name, ":")+1:]
		desc.Annotations = map[string]string{
			"io.containerd.image.name":          s.Name,
			"org.opencontainers.image.ref.name": tag,
		}
		manifests = append(manifests, desc)
	}
	index := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     manifests,
	}
	indexJSON, err := json.Marshal(index)
	must(err)
	must(addBytes(w, "index.json", indexJSON))
	must(w.Close())
	must(out.Close())
	must(os.Rename(tmp, *outPath))
}

func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

func digestFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

func addJSON(w *tar.Writer, mediaType string, v any) (descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return descriptor{}, err
	}
	sum := sha256.Sum256(b)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if err := addBytes(w, blobPath(digest), b); err != nil {
		return descriptor{}, err
	}
	return descriptor{MediaType: mediaType, Digest: digest, Size: int64(len(b))}, nil
}

func addBytes(w *tar.Writer, name string, b []byte) error {
	if err := w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func addFile(w *tar.Writer, name, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func must1[T any](v T, err error) T {
	must(err)
	return v
}

func must2[T, U any](v T, u U, err error) (T, U) {
	must(err)
	return v, u
}
