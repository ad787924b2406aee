"""The benchmark workload: N objects of realistic size over a few namespaces.

Every tool gets the same objects in its own namespaces (a prefix), so gitopsd
and kubectl never touch each other's objects. A `Workload` remembers which
objects were changed or removed, and renders the whole tree or only the files
that differ since the last render.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("ConfigMap", "Secret", "Service", "Deployment")
WORKLOAD_LABEL = "bench.gitopsd.io/workload"
NAMESPACE_FILE = "00-namespaces.yaml"


def namespace_count(objects: int) -> int:
    return max(1, min(4, objects // 50))


@dataclass
class Workload:
    """The declared state of one tool's copy: object i lives in namespace i % namespaces."""

    objects: int
    prefix: str  # namespaces are <prefix>team-<k>
    revisions: dict[int, int] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)

    @property
    def namespaces(self) -> list[str]:
        return [f"{self.prefix}team-{k}" for k in range(namespace_count(self.objects))]

    def kind(self, index: int) -> str:
        return KINDS[index % len(KINDS)]

    def namespace(self, index: int) -> str:
        return self.namespaces[index % len(self.namespaces)]

    def name(self, index: int) -> str:
        return f"{self.kind(index).lower()}-{index:05d}"

    def path(self, index: int) -> str:
        return f"{self.namespace(index)}/{self.name(index)}.yaml"

    def tree(self) -> dict[str, str]:
        """Every file: the namespaces, then one file per present object."""
        files = {NAMESPACE_FILE: self._namespaces_yaml()}
        for index in range(self.objects):
            if index not in self.removed:
                files[self.path(index)] = self.manifest(index)
        return files

    def change(self, indexes: list[int]) -> dict[str, str | None]:
        """Bump the revision of `indexes`; the files that changed."""
        for index in indexes:
            self.revisions[index] = self.revisions.get(index, 0) + 1
        return {self.path(i): self.manifest(i) for i in indexes if i not in self.removed}

    def remove(self, indexes: list[int]) -> dict[str, str | None]:
        self.removed.update(indexes)
        return {self.path(i): None for i in indexes}

    def restore(self) -> dict[str, str | None]:
        back = sorted(self.removed)
        self.removed.clear()
        return {self.path(i): self.manifest(i) for i in back}

    def manifest(self, index: int) -> str:
        kind = self.kind(index)
        render = {
            "ConfigMap": _configmap,
            "Secret": _secret,
            "Service": _service,
            "Deployment": _deployment,
        }[kind]
        return render(self.name(index), self.namespace(index), self.revisions.get(index, 0))

    def _namespaces_yaml(self) -> str:
        return "---\n".join(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
            f'  labels:\n    {WORKLOAD_LABEL}: "yes"\n'
            for ns in self.namespaces
        )


def pick(objects: int, fraction: float, round_: int, kinds: tuple[str, ...] = KINDS) -> list[int]:
    """A spread-out `fraction` of the objects, different for each round."""
    count = max(1, int(objects * fraction))
    step = max(1, objects // count)
    start = (round_ * 7) % step
    chosen = list(range(start, objects, step))[:count]
    return [i for i in chosen if KINDS[i % len(KINDS)] in kinds]


def _meta(name: str, namespace: str, app: str) -> str:
    return (
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"  labels:\n    app.kubernetes.io/name: {app}\n    app.kubernetes.io/part-of: shop\n"
        f'    {WORKLOAD_LABEL}: "yes"\n'
    )


def _configmap(name: str, namespace: str, rev: int) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\n{_meta(name, namespace, name)}"
        "data:\n"
        f"  LOG_LEVEL: info\n  FEATURE_FLAGS: checkout,search,recommendations\n"
        f'  REVISION: "{rev}"\n'
        "  application.yaml: |\n"
        "    server:\n      port: 8080\n      shutdown: graceful\n"
        "    database:\n      pool: 20\n      timeout: 5s\n"
        f"      url: postgres://db.{namespace}.svc:5432/{name}\n"
        "    cache:\n      ttl: 300s\n      size: 10000\n"
        "    tracing:\n      sampler: 0.1\n      endpoint: http://otel-collector:4318\n"
    )


def _secret(name: str, namespace: str, rev: int) -> str:
    return (
        f"apiVersion: v1\nkind: Secret\n{_meta(name, namespace, name)}type: Opaque\n"
        "stringData:\n"
        f"  username: svc-{name}\n  password: p4ss-{name}-{rev}\n"
        f"  api-token: tok-{name}-0123456789abcdef0123456789abcdef\n"
    )


def _service(name: str, namespace: str, rev: int) -> str:
    # Headless: the test cluster's service range is a /24, too small for thousands of IPs.
    return (
        f"apiVersion: v1\nkind: Service\n{_meta(name, namespace, name)}"
        f'  annotations:\n    bench.gitopsd.io/revision: "{rev}"\n'
        "spec:\n  clusterIP: None\n"
        f"  selector:\n    app.kubernetes.io/name: {name}\n"
        "  ports:\n"
        "    - name: http\n      port: 80\n      targetPort: 8080\n      protocol: TCP\n"
        "    - name: metrics\n      port: 9090\n      targetPort: 9090\n      protocol: TCP\n"
    )


def _deployment(name: str, namespace: str, rev: int) -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\n{_meta(name, namespace, name)}"
        "spec:\n  replicas: 2\n"
        f"  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n"
        "  template:\n    metadata:\n"
        f"      labels:\n        app.kubernetes.io/name: {name}\n"
        "        app.kubernetes.io/part-of: shop\n"
        "    spec:\n      containers:\n"
        "        - name: app\n"
        f"          image: registry.example.com/shop/{name}:1.{rev}.0\n"
        "          ports:\n            - name: http\n              containerPort: 8080\n"
        "            - name: metrics\n              containerPort: 9090\n"
        "          env:\n"
        "            - name: LOG_LEVEL\n              value: info\n"
        "            - name: JAVA_OPTS\n              value: -Xms256m -Xmx512m\n"
        "            - name: DB_PASSWORD\n              valueFrom:\n"
        f"                secretKeyRef:\n                  name: db-{name}\n"
        "                  key: password\n"
        "            - name: POD_NAME\n              valueFrom:\n"
        "                fieldRef:\n                  fieldPath: metadata.name\n"
        "          resources:\n"
        "            requests:\n              cpu: 100m\n              memory: 256Mi\n"
        '            limits:\n              cpu: "1"\n              memory: 512Mi\n'
        "          livenessProbe:\n            httpGet:\n              path: /healthz\n"
        "              port: http\n            initialDelaySeconds: 10\n"
        "            periodSeconds: 10\n"
        "          readinessProbe:\n            httpGet:\n              path: /ready\n"
        "              port: http\n            periodSeconds: 5\n"
        "        - name: proxy\n          image: envoyproxy/envoy:v1.31.0\n"
        '          args: ["--config-path", "/etc/envoy/envoy.yaml"]\n'
        "          ports:\n            - name: proxy\n              containerPort: 15001\n"
        "          resources:\n"
        "            requests:\n              cpu: 50m\n              memory: 64Mi\n"
        "            limits:\n              cpu: 200m\n              memory: 128Mi\n"
        "          readinessProbe:\n            tcpSocket:\n              port: 15001\n"
        "            periodSeconds: 5\n"
    )
