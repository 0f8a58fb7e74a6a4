# Every target runs under the project's own Node.js 24 and tools in .local/bin.
SHELL := bash
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.local/bin:$(PATH)
export KUBECONFIG ?= $(CURDIR)/.local/kubeconfig

.PHONY: setup test lint format unit demo bench crds envoy-types cluster-up cluster-down clean

# What prettier keeps formatted: the TypeScript and the lint config (YAML and Markdown are
# data and prose: goldens, fixtures, manifests, docs).
FORMATTED := "{operator,test,bench,scripts}/**/*.ts" vitest.config.ts .dependency-cruiser.cjs

## setup: install Node.js 24, npm packages, Envoy, kubectl, helm and the control plane
setup:
	@scripts/setup.sh

## test: set up if needed, lint (types + layer rules), then the whole suite
test: setup lint
	@node scripts/run-tests.ts

## lint: types, layer rules, formatting (`make format` rewrites what the last one finds)
lint:
	@tsc --noEmit -p .
	@depcruise --config .dependency-cruiser.cjs operator/src test bench scripts
	@prettier --check --log-level warn $(FORMATTED)

format:
	@prettier --write --log-level warn $(FORMATTED)

## demo: the main job (see README)
demo: setup
	@node scripts/demo.ts

## bench: benchmarks, printed as tables
bench: setup
	@node bench/run.ts

## crds: regenerate crds/ and the chart's copy from the schema in operator/src/api
crds:
	@node operator/bin/fallbackctl.ts crd > crds/fallback.dev_fallbackpolicies.yaml
	@cp crds/fallback.dev_fallbackpolicies.yaml charts/fallback-operator/crds/

## envoy-types: regenerate operator/src/compile/envoy/api.gen.ts from the Envoy API descriptors
envoy-types:
	@node scripts/envoy-types.ts

cluster-up: setup
	@scripts/cluster.sh up

cluster-down:
	@scripts/cluster.sh down

clean: cluster-down
	rm -rf .local
