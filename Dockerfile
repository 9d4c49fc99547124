# The kruise-manager image (the chart's default manager.image): slim Python, non-root.
#   docker build -t kruisectl/kruise-manager:0.1.0 .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kruisectl ./kruisectl
COPY manager ./manager
COPY kubekit ./kubekit
RUN pip install . && rm -rf /src

# 65532: the chart's runAsUser; the root filesystem is read-only, certs go to an emptyDir.
USER 65532:65532
WORKDIR /
EXPOSE 9876 8000 8080
ENTRYPOINT ["kruise-manager"]
