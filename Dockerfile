# syntax=docker/dockerfile:1
# One image for switchd (the default command), tap-agent and switchctl.
#
#   docker build -t tapswitch .
#   docker run --rm -p 8080:8080 -v "$PWD/my-config:/etc/tapswitch:ro" tapswitch
#
# deploy/compose/compose.yaml runs a whole lab from it, deploy/k8s/ a cluster.
# test/deploy/containers.test.ts lints this file and runs switchd from
# exactly what the final stage copies, HEALTHCHECK included.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
# The full image has python3, make and g++, which node-gyp needs for the addon,
# and this node's own headers under /usr/local/include/node: node-gyp uses
# those instead of downloading a header tarball.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json binding.gyp tsconfig.json tsconfig.build.json ./
COPY native/ native/
COPY src/ src/
COPY scripts/ scripts/
# npm ci runs the package's own scripts, as on a developer's machine: "install"
# compiles native/ into build/Release/tap.node, "prepare" compiles src/ into dist/.
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
# Dev dependencies (TypeScript, node-gyp, test tools) stay behind in this stage.
RUN npm prune --omit=dev --no-audit --no-fund

# Same Debian release as the build stage, so the addon finds the glibc and
# libstdc++ it was linked against.
FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/tapswitch
# native/index.js finds the addon through package.json's directory, and the
# metrics read the version from package.json.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules/ node_modules/
COPY --from=build /src/build/Release/tap.node build/Release/
# The launcher of a gateway's QEMU child (docs/GATEWAY.md "Running it"), built beside the addon.
COPY --from=build /src/build/Release/tapswitch-sandbox build/Release/
COPY --from=build /src/dist/ dist/
COPY native/index.js native/
COPY bin/ bin/
COPY docs/ docs/
# Numeric, so Kubernetes' runAsNonRoot can check it; uid 1000 is the image's
# "node" user. switchd needs no capability at all (its port is above 1024).
# tap-agent containers start as root with only CAP_NET_ADMIN and drop to this
# user once the TAP is open (see deploy/compose/compose.yaml).
USER 1000:1000
EXPOSE 8080
# Plain HTTP to port 8080, where the compose lab and the Kubernetes manifests
# listen: the slim image has no curl, node's fetch does. Override it for
# another port or TLS (docker run --health-cmd, or healthcheck: in compose).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "bin/switchd.js", "--config", "/etc/tapswitch/switchd.json"]
