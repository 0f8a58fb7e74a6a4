# syntax=docker/dockerfile:1.7
# fallback-operator image. The operator runs its TypeScript sources directly: Node 24 strips
# the (erasable-only) types on load, so there is no build step, only production packages.

ARG NODE_IMAGE=node:24-bookworm-slim
# At least the Go of operator/envoy-api/go.mod.
ARG GO_IMAGE=golang:1.26-bookworm

# 1. Production dependencies only, from the lockfile, without install scripts.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && npm cache clean --force

# 2. The Envoy API as a protobuf descriptor set, for the xDS server's codec: the program
#    scripts/setup.sh runs (which also checks, with `go test`, that it imports every package).
FROM ${GO_IMAGE} AS envoy-api
WORKDIR /src
COPY operator/envoy-api/ ./
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out && go run . /out/envoy-api.binpb

# 3. Runtime: the Node 24 runtime, node_modules from stage 1, the descriptors from stage 2
#    and the operator sources.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
ENV FALLBACK_ENVOY_API=/app/share/envoy-api.binpb
WORKDIR /app
# package.json carries "type": "module", which the .ts sources need.
COPY --from=deps --chown=0:0 /app/node_modules ./node_modules
COPY --from=envoy-api --chown=0:0 /out/envoy-api.binpb ./share/envoy-api.binpb
COPY --chown=0:0 package.json ./
COPY --chown=0:0 operator/ ./operator/
# Files stay owned by root and read-only to the process; it runs as an unprivileged
# numeric user so runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
EXPOSE 8080 8081
# No Node.js flags here: the bin relaunches itself with its own (operator/bin/node-flags.ts).
ENTRYPOINT ["node", "operator/bin/fallback-operator.ts"]
