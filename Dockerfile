# syntax=docker/dockerfile:1
#
# bearer-sidecar image.
#   docker build -t bearer-sidecar .
#   docker run --rm IMAGE --config /config/sidecar.yaml      (config file mounted at /config)
#   docker run --rm -e BEARER_SIDECAR_... IMAGE              (one route from environment variables)
#
# Base: the official Node.js 24 LTS image on Debian 13 (trixie), pinned to an exact release.
# Node 24 is supported until April 2028 (22 ends in April 2027). The distroless
# nodejs24-debian13 image is smaller but is published without version tags (only "latest" or a
# digest), so it cannot be pinned by version; the slim image can, and the run stage removes npm,
# npx, corepack and yarn from it so that only the Node runtime is left. Raise NODE_VERSION
# deliberately (both stages use it); test/deploy/ checks that it stays an exact x.y.z version.
ARG NODE_VERSION=24.21.0

# ---- build: full toolchain, dev dependencies, TypeScript compile, then prune to production ----
FROM node:${NODE_VERSION}-trixie AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/bundle.mjs scripts/undici-slim.cjs ./scripts/
# The licences of the production dependencies the run stage ships (scripts/licenses.mjs).
COPY LICENSE THIRD_PARTY_LICENSES ./
# npm run build: tsc, then dist/main.js becomes a single-file bundle of the CLI (see src/cli.ts).
RUN npm run build && npm prune --omit=dev --no-audit --no-fund
# Node's compile cache for the bundle, so that a container's first start skips most of its
# compilation (about 60 ms of a ~450 ms start to ready, measured with Node 24). Node names the
# cache directory after the user id, so it is filled as the run stage's user (1000), then handed
# back to root and made read-only for everyone else: COPY --from keeps the owner a file has here
# (podman/buildah do; the real build showed dist/.compile-cache owned by 1000 in the run stage),
# and the process must not be able to rewrite its own code cache. Node reads a cache it cannot write.
RUN mkdir dist/.compile-cache && chown 1000:1000 dist/.compile-cache
USER 1000:1000
RUN node dist/cli.js --version > /dev/null
USER 0:0
RUN chown -R 0:0 dist/.compile-cache && chmod -R a+rX,go-w dist/.compile-cache

# ---- run: Node runtime + dist/ + production node_modules + package.json + licences, as a non-root user ----
FROM node:${NODE_VERSION}-trixie-slim AS runtime
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
# package.json sits next to dist/: it makes dist/*.js ES modules ("type": "module") and gives --version.
# dist/main.js, the CLI, is self-contained (one bundle); node_modules serves the rest of dist/.
# Files stay owned by root, so the process cannot modify its own code.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/LICENSE /app/THIRD_PARTY_LICENSES ./
# The "node" user of the base image, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# 8080: the proxy (listen.port); 9901: the admin listener with /livez and /readyz (admin.port).
EXPOSE 8080 9901
# Liveness through Node itself (the image has no curl). It asks the admin port on loopback;
# set BEARER_SIDECAR_ADMIN_PORT if your config file moves the admin listener.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.BEARER_SIDECAR_ADMIN_PORT || 9901) + '/livez', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself, drains in-flight requests and exits 0.
# Arguments after the image name replace CMD: `docker run IMAGE --config /config/sidecar.yaml`.
# Nothing of its own here: the program applies its runtime settings itself (src/runtime/settings.ts;
# `-e BEARER_SIDECAR_TUNING=lean` picks another profile), re-executing node in place with the
# flags it needs, so PID 1 stays PID 1 (/proc/1/cmdline shows them).
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
