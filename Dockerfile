# The kruise-manager image (the chart's default manager.image), for a container daemon:
#   docker build -t kruisectl/kruise-manager:0.1.0 .
# `make image` builds the same image without one (localcluster/image.py): these two stages on
# the minimal Debian bases it makes with mmdebstrap. tests/image/test_dockerfile.py builds this
# file with buildah from those bases (BASE, BUILD_BASE) and compares the result with make
# image's, so the two recipes cannot drift apart.
ARG BASE=docker.io/library/debian:bookworm-slim
ARG BUILD_BASE=${BASE}

# Debian's python3 and the user 65532; no pip, no compiler, no package lists or caches.
FROM ${BASE} AS runtime
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 \
        && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old; \
    fi \
    && (grep -q '^nonroot:' /etc/passwd || echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' >> /etc/passwd) \
    && (grep -q '^nonroot:' /etc/group || echo 'nonroot:x:65532:' >> /etc/group)

# Debian's pip installs the locked dependencies (hashes checked, wheels only) and the project
# into /usr/local. The wheels come from the index; the test passes PIP_NO_INDEX and
# PIP_FIND_LINKS to build offline from make image's wheelhouse.
FROM ${BUILD_BASE} AS build
RUN if ! python3 -m pip --version >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends python3-pip; \
    fi
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ARG SOURCE_DATE_EPOCH
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore
COPY requirements-lock.txt /src/
RUN python3 -m pip install --require-hashes --only-binary=:all: -r /src/requirements-lock.txt
COPY pyproject.toml README.md /src/
COPY kruisectl /src/kruisectl
COPY manager /src/manager
COPY kubekit /src/kubekit
RUN python3 -m pip install --no-deps /src

FROM runtime
COPY --from=build /usr/local /usr/local
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kruise-manager" \
      org.opencontainers.image.description="kruisectl's packaged kruise-manager: webhook and leader-elected SidecarSet controller" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"
# 65532: the chart's runAsUser. The root filesystem may be read-only: nothing is written
# outside the cert dir (an emptyDir) and there is no home to write to.
USER 65532:65532
WORKDIR /
EXPOSE 9876 8000 8080
ENTRYPOINT ["kruise-manager"]
