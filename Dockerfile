# gitopsd as a sidecar or a single-container Deployment, using the pod's service account.
#   docker build -t gitopsd .
#   docker run --rm gitopsd --version

# kustomize and helm for kustomize and Helm targets, and sops for targets with
# `decryption:`, built from the module versions the tests use (tests/support/tools.py,
# tests/support/sops_tools.py): kustomize v5.8.2 is the newest that builds with Go 1.26;
# no prebuilt binary is downloaded. Drop a line for a tool no target uses.
FROM golang:1.26 AS tools
ENV CGO_ENABLED=0 GOBIN=/out
RUN go install -trimpath sigs.k8s.io/kustomize/kustomize/v5@v5.8.2 \
    && go install -trimpath \
        -ldflags='-X helm.sh/helm/v3/internal/version.version=v3.22.0' \
        helm.sh/helm/v3/cmd/helm@v3.22.0 \
    && go install -trimpath github.com/getsops/sops/v3/cmd/sops@v3.13.3

FROM python:3.11-slim

# libgit2 comes inside the pygit2 wheel; git is not needed. ca-certificates for HTTPS
# remotes; gnupg (gpg) and openssh-client (ssh-keygen) verify commit signatures, and
# ssh-keyscan (openssh-client) shows an unknown SSH host key's fingerprint in the error.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gnupg openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gitopsd ./gitopsd
RUN pip install --no-cache-dir . && rm -rf /src
COPY --from=tools /out/kustomize /out/helm /out/sops /usr/local/bin/

RUN useradd --system --uid 10001 --home-dir /var/lib/gitopsd --create-home gitopsd
USER 10001:10001
WORKDIR /var/lib/gitopsd
ENV HOME=/var/lib/gitopsd PYTHONUNBUFFERED=1

# The configuration is mounted here (a ConfigMap); omit kubeconfig in it to use the
# in-cluster service account.
VOLUME ["/var/lib/gitopsd"]
EXPOSE 9100
ENTRYPOINT ["gitopsd"]
CMD ["--config", "/etc/gitopsd/config.yaml"]
