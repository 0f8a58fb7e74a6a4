// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), the
// library Flux waits on resources with, says of each object it reads: Current, InProgress,
// Failed, Terminating, and kstatus's message.
//
// It reads objects as JSON or YAML (several documents, a kind: List such as
// `kubectl get -o json` prints, or both) from the files given, or from stdin without one
// or for "-". It does not talk to a cluster: the objects must carry their status.
//
//	kubectl get fallbackpolicies -A -o json | kstatus
//	kstatus -o json policy.yaml
//
// Output: one line per object, `Kind namespace/name<TAB>Status<TAB>message`, or with
// -o json one JSON object per line: {"kind","namespace","name","status","message","conditions"}.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	APIVersion string             `json:"apiVersion,omitempty"`
	Kind       string             `json:"kind"`
	Namespace  string             `json:"namespace,omitempty"`
	Name       string             `json:"name"`
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	output := flag.String("o", "text", "output format: text or json")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: kstatus [-o text|json] [FILE|-]...\n\n"+
			"Prints kstatus's verdict (Current, InProgress, Failed, Terminating) for each object\n"+
			"read as JSON or YAML from the files, or from stdin.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *output != "text" && *output != "json" {
		fmt.Fprintf(os.Stderr, "kstatus: -o must be text or json, not %q\n", *output)
		os.Exit(2)
	}
	files := flag.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	failed := false
	for _, file := range files {
		objects, err := readObjects(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", file, err)
			failed = true
			continue
		}
		for _, obj := range objects {
			v, err := compute(obj)
			if err != nil {
				fmt.Fprintf(os.Stderr, "kstatus: %s %s: %v\n", obj.GetKind(), name(obj), err)
				failed = true
				continue
			}
			if *output == "json" {
				line, _ := json.Marshal(v)
				fmt.Fprintf(out, "%s\n", line)
			} else {
				fmt.Fprintf(out, "%s %s\t%s\t%s\n", v.Kind, name(obj), v.Status, v.Message)
			}
		}
	}
	if failed {
		out.Flush()
		os.Exit(1)
	}
}

func compute(obj *unstructured.Unstructured) (verdict, error) {
	res, err := status.Compute(obj)
	if err != nil {
		return verdict{}, err
	}
	conditions := res.Conditions
	if conditions == nil {
		conditions = []status.Condition{}
	}
	return verdict{
		APIVersion: obj.GetAPIVersion(),
		Kind:       obj.GetKind(),
		Namespace:  obj.GetNamespace(),
		Name:       obj.GetName(),
		Status:     res.Status.String(),
		Message:    res.Message,
		Conditions: conditions,
	}, nil
}

func name(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}

// readObjects decodes every document of a file (or stdin for "-"), and the items of a List.
func readObjects(file string) ([]*unstructured.Unstructured, error) {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objects []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objects, nil
			}
			return nil, err
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty YAML document
		}
		// Kubernetes' own JSON decoding: whole numbers become int64, as kstatus expects of
		// metadata.generation and status.observedGeneration.
		var content map[string]any
		if err := utiljson.Unmarshal(raw, &content); err != nil {
			return nil, err
		}
		objects = append(objects, flatten(content)...)
	}
}

func flatten(content map[string]any) []*unstructured.Unstructured {
	items, isList := content["items"].([]any)
	if !isList {
		return []*unstructured.Unstructured{{Object: content}}
	}
	var objects []*unstructured.Unstructured
	for _, item := range items {
		if m, ok := item.(map[string]any); ok {
			objects = append(objects, flatten(m)...)
		}
	}
	return objects
}
