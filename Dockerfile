# The FeatureCloud app image: one Node process serves the API on 5000 (/api, /web, as the spec
# says) and where the platform's controller calls it: 9000 (the API at the root) and 9001 (the
# status string at the root). The reference images need nginx for those two; this one does not.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# A CA bundle to trust during `npm ci` (a TLS-inspecting proxy, an offline mirror): pass its path
# inside the image, e.g. --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt.
# Empty by default; as a build argument it never reaches the final image.
ARG NODE_EXTRA_CA_CERTS=
ENV npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY machines ./machines
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev \
 && find node_modules -mindepth 1 -maxdepth 1 -name '@*' -type d -empty -delete

FROM node:20-bookworm-slim
ARG VERSION=0.1.0
ARG SOURCE=
LABEL org.opencontainers.image.title="featurecloud-xstate-client" \
      org.opencontainers.image.description="A FeatureCloud app client driven by an XState machine: the app API on 9000, its status on 9001 (and /api, /web on 5000)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=5000 \
    API_PORT=9000 \
    WEB_PORT=9001 \
    INPUT_DIR=/mnt/input \
    OUTPUT_DIR=/mnt/output
WORKDIR /app
# package.json says `"type": "module"`, which the compiled ES modules need.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The platform mounts each site's data at /mnt/input and collects /mnt/output. The program runs as
# `node` (uid 1000): a mounted output folder must be writable for it; without a mount, this one is.
RUN mkdir -p /mnt/input /mnt/output && chown node:node /mnt/output
USER node
EXPOSE 9000 9001 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/api/status`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/main.js"]
