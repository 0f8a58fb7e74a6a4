// Command envoy-api writes the Envoy API, as compiled into go-control-plane, to one binary
// google.protobuf.FileDescriptorSet, so the operator (TypeScript, @bufbuild/protobuf) can
// encode xDS resources without .proto files of its own.
//
//	go run . OUT.binpb
//
// The set holds every file in protoregistry.GlobalFiles once imports.go has imported every
// package of the envoy module: Envoy's files and all they import (xds/cncf, udpa,
// validate, google/api, google/rpc, Prometheus metrics, OpenTelemetry, the well-known types).
// imports_test.go writes imports.go and fails when it no longer lists every package.
package main

import (
	"fmt"
	"os"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: envoy-api OUT.binpb")
		os.Exit(2)
	}
	set, err := descriptorSet(protoregistry.GlobalFiles)
	if err == nil {
		err = write(os.Args[1], set)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "envoy-api:", err)
		os.Exit(1)
	}
}

// descriptorSet returns every file of the registry, each after the files it imports, and
// otherwise sorted by path: a consumer may build it front to back, and the bytes depend
// only on the files, not on the order Go happened to initialise packages in.
func descriptorSet(files *protoregistry.Files) (*descriptorpb.FileDescriptorSet, error) {
	var all []protoreflect.FileDescriptor
	files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		all = append(all, f)
		return true
	})
	sort.Slice(all, func(i, j int) bool { return all[i].Path() < all[j].Path() })

	set := &descriptorpb.FileDescriptorSet{}
	done := map[string]bool{}
	var add func(f protoreflect.FileDescriptor) error
	add = func(f protoreflect.FileDescriptor) error {
		if done[f.Path()] {
			return nil
		}
		done[f.Path()] = true
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			dep := imports.Get(i)
			// A placeholder is an import no imported Go package registered: the set would
			// be incomplete, and a consumer could not resolve its types.
			if dep.IsPlaceholder() {
				return fmt.Errorf("%s imports %s, which no imported package registers", f.Path(), dep.Path())
			}
			if err := add(dep.FileDescriptor); err != nil {
				return err
			}
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
		return nil
	}
	for _, f := range all {
		if err := add(f); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// write replaces path with the set, marshalled deterministically so the file's hash is
// stable from one build to the next.
func write(path string, set *descriptorpb.FileDescriptorSet) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
