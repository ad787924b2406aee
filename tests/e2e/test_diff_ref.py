"""`gitopsd diff --ref`: a branch previewed against the live cluster, read-only, in the three
output formats, beside a daemon, with an invalid object, and with an unsigned commit."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.lock import LOCK_NAME, StateLock
from gitopsd.source.mirror import mirror_dir
from tests.e2e.conftest import Gitopsd, configmap, secret, wait_for
from tests.e2e.test_once import live_data
from tests.support.git_remotes import SshSigningKey
from tests.support.standins import shown_as

TOKEN = "main-token-value-1"


def service(name: str, namespace: str) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        "spec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n"
    )


def deployment(name: str, namespace: str, *, selector: bool = True) -> str:
    match = "  selector: {matchLabels: {app: web}}\n" if selector else ""
    return (
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  replicas: 1\n{match}  template:\n    metadata: {{labels: {{app: web}}}}\n"
        "    spec: {containers: [{name: web, image: 'nginx:1.27'}]}\n"
    )


def main_files(ns: str) -> dict[str, str | None]:
    return {
        "manifests/app.yaml": configmap("app", ns, color="blue", size="large"),
        "manifests/other.yaml": configmap("other", ns, keep="me"),
        "manifests/web-svc.yaml": service("web", ns),
        "manifests/creds.yaml": secret("creds", ns, token=TOKEN),
    }


def feature_files(ns: str) -> dict[str, str | None]:
    """The branch under review: a ConfigMap changed, a Deployment added, a Service removed."""
    return {
        "manifests/app.yaml": configmap("app", ns, color="green", size="large"),
        "manifests/web-deploy.yaml": deployment("web", ns),
        "manifests/web-svc.yaml": None,
    }


EXPECTED = {
    ("update", "ConfigMap", "app"),
    ("create", "Deployment", "web"),
    ("prune", "Service", "web"),
}


def applied_main(gitopsd: Gitopsd, **settings: Any) -> None:
    gitopsd.remote.commit(main_files(gitopsd.namespace), "main")
    gitopsd.write_config(gitopsd.target(**settings))
    first = gitopsd.run("--once")
    assert first.returncode == 0, first.stderr


def cluster_state(api_client: object, ns: str) -> dict[str, str]:
    """Every object of the test's kinds in `ns` (the inventory ConfigMap too), by version."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    found = {}
    for kind, items in (
        ("ConfigMap", core.list_namespaced_config_map(ns).items),
        ("Secret", core.list_namespaced_secret(ns).items),
        ("Service", core.list_namespaced_service(ns).items),
        ("Deployment", apps.list_namespaced_deployment(ns).items),
    ):
        for item in items:
            found[f"{kind} {item.metadata.name}"] = item.metadata.resource_version
    return found


def local_state(gitopsd: Gitopsd) -> dict[str, str]:
    """The state directory as the daemon keeps it: journal, applied marker, render cache,
    and every ref of the mirror; not the lock file (it holds the last holder's pid)."""
    state = gitopsd.state_dir
    found = {
        str(path.relative_to(state)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(state.rglob("*"))
        if path.is_file() and path.name != LOCK_NAME and "mirrors" not in path.parts
    }
    mirror = mirror_dir(state, gitopsd.server.url(gitopsd.remote))
    refs = subprocess.run(
        ["git", "--git-dir", str(mirror), "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found["mirror refs"] = refs
    return found


def outputs(gitopsd: Gitopsd, *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
    return {
        fmt: gitopsd.run("diff", *args, "--output", fmt) for fmt in ("text", "markdown", "json")
    }


def text_objects(text: str) -> set[tuple[str, str, str]]:
    """(action, kind, name) of each unified diff: a prune removes every line, a create adds."""
    found = set()
    for block in re.split(r"^(?=--- live/)", text, flags=re.M)[1:]:
        name = re.match(r"--- live/(\S+) \S+/(\S+)", block)
        assert name, block
        body = [line for line in block.splitlines()[3:] if line[:1] in "+- "]
        added = any(line.startswith("+") for line in body)
        removed = any(line.startswith("-") for line in body)
        action = "update" if added and removed else "create" if added else "prune"
        found.add((action, name[1].split(".")[0], name[2]))
    return found


def markdown_objects(markdown: str) -> set[tuple[str, str, str]]:
    found = set()
    for action, key in re.findall(r"<summary><b>(\w+)</b> <code>([^<]+)</code>", markdown):
        kind, where = key.split(" ")
        found.add((action, kind.split(".")[0], where.split("/")[-1]))
    return found


def json_objects(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    (target,) = document["targets"]
    return {(o["action"], o["kind"], o["name"]) for o in target["objects"]}


def test_branch_preview_shows_exactly_its_three_changes_and_changes_nothing(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    applied_main(gitopsd)
    head = gitopsd.remote.commit(feature_files(ns), "review me", branch="feature")
    before = cluster_state(api_client, ns), local_state(gitopsd)
    history = gitopsd.run("history", "--json").stdout

    shown = outputs(gitopsd, "--ref", "feature")

    for fmt, result in shown.items():
        assert result.returncode == 3, (fmt, result.stderr)
    assert text_objects(shown["text"].stdout) == EXPECTED
    assert "-  color: blue" in shown["text"].stdout and "+  color: green" in shown["text"].stdout
    markdown = shown["markdown"].stdout
    assert markdown_objects(markdown) == EXPECTED
    assert "| create | update | prune | unchanged |" in markdown
    assert "| 1 | 1 | 1 | 2 |" in markdown  # the other ConfigMap and the Secret: unchanged
    assert f"Revision `{head[:12]}` from `refs/heads/feature`: review me" in markdown
    document = json.loads(shown["json"].stdout)
    assert document["version"] == 1
    assert json_objects(document) == EXPECTED
    (target,) = document["targets"]
    assert target["revision"] == {
        "commit": head,
        "ref": "refs/heads/feature",
        "message": "review me",
    }
    assert target["outcome"] == "would_change" and target["error"] is None
    update = next(o for o in target["objects"] if o["action"] == "update")
    assert update["fields"] == ["data.color"] and update["namespace"] == ns
    # Nothing written: cluster (inventory included), journal, applied marker, mirror refs.
    assert (cluster_state(api_client, ns), local_state(gitopsd)) == before
    assert gitopsd.run("history", "--json").stdout == history
    # The daemon's next pass applies nothing from the branch.
    after = gitopsd.run("--once")
    assert after.returncode == 0, after.stderr
    assert live_data(api_client, ns, "app") == {"color": "blue", "size": "large"}
    assert client.CoreV1Api(api_client).read_namespaced_service("web", ns).metadata.name == "web"
    assert client.AppsV1Api(api_client).list_namespaced_deployment(ns).items == []


def test_branch_preview_beside_a_running_daemon(gitopsd: Gitopsd, api_client: object) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit(main_files(ns), "main")
    gitopsd.write_config(interval="1h")
    daemon = gitopsd.start()
    wait_for(lambda: "pass_completed" in gitopsd.log(0), timeout=60)
    lock = gitopsd.state_dir / LOCK_NAME
    assert lock.read_text() == f"{daemon.pid}\n"
    gitopsd.remote.commit(feature_files(ns), branch="feature")
    before = cluster_state(api_client, ns)

    result = gitopsd.run("diff", "--ref", "refs/heads/feature", "--output", "json")

    assert result.returncode == 3, result.stderr
    assert json_objects(json.loads(result.stdout)) == EXPECTED
    assert "using_scratch_state_dir" in result.stderr  # the daemon keeps its lock
    assert lock.read_text() == f"{daemon.pid}\n"
    assert cluster_state(api_client, ns) == before
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert gitopsd.log(0).count('"pass_completed"') == 1  # the daemon's own first pass only


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        # Refused by the API server's dry-run (a Deployment needs a selector).
        (lambda ns: deployment("bad", ns, selector=False), "Deployment.apps {ns}/bad"),
        # Refused by render: the daemon would refuse the commit before asking the server.
        (
            lambda ns: "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
            "web-deploy.yaml document 1",
        ),
    ],
    ids=["server-refuses", "render-refuses"],
)
def test_branch_with_an_invalid_object_exits_1_naming_it(
    gitopsd: Gitopsd, api_client: object, broken: Any, named: str
) -> None:
    ns = gitopsd.namespace
    applied_main(gitopsd)
    files = {**feature_files(ns), "manifests/web-deploy.yaml": broken(ns)}
    gitopsd.remote.commit(files, branch="feature")
    before = cluster_state(api_client, ns)
    name = named.format(ns=ns)

    shown = outputs(gitopsd, "--ref", "feature")

    for fmt, result in shown.items():
        assert result.returncode == 1, (fmt, result.stdout, result.stderr)
        assert "gitopsd: target app: " in result.stderr and name in result.stderr
    assert shown["text"].stdout == ""
    assert "**Refused, nothing would be applied:**" in shown["markdown"].stdout
    assert name.replace("_", "\\_") in shown["markdown"].stdout
    (target,) = json.loads(shown["json"].stdout)["targets"]
    assert target["outcome"] == "failed" and name in target["error"] and target["objects"] == []
    assert cluster_state(api_client, ns) == before


def test_secret_change_shows_only_a_stand_in(gitopsd: Gitopsd, api_client: object) -> None:
    import base64

    ns = gitopsd.namespace
    applied_main(gitopsd)
    new = "branch-token-value-2"
    gitopsd.remote.commit(
        {"manifests/creds.yaml": secret("creds", ns, token=new)}, branch="feature"
    )

    shown = outputs(gitopsd, "--ref", "feature")

    # The inner `hmac:...`: formats may quote the angle brackets around it.
    stand_in = {v: shown_as(v, gitopsd.state_dir)[10:-1] for v in (TOKEN, new)}
    for fmt, result in shown.items():
        assert result.returncode == 3, (fmt, result.stderr)
        everything = result.stdout + result.stderr
        for value in (TOKEN, new):
            assert value not in everything, fmt
            assert base64.b64encode(value.encode()).decode() not in everything, fmt
        assert stand_in[TOKEN] in result.stdout and stand_in[new] in result.stdout, fmt
    (target,) = json.loads(shown["json"].stdout)["targets"]
    assert [(o["kind"], o["fields"]) for o in target["objects"]] == [("Secret", ["data.token"])]


def test_unsigned_branch_is_previewed_with_a_refusal_line(
    gitopsd: Gitopsd, api_client: object, tmp_path: Path
) -> None:
    ns = gitopsd.namespace
    trusted = SshSigningKey(tmp_path / "release-key", "release@x.invalid")
    allowed = trusted.allowed_signers(tmp_path / "allowed_signers")
    gitopsd.remote.commit(main_files(ns), "main", signer=trusted.signer())
    gitopsd.write_config(gitopsd.target(verify={"ssh_allowed_signers": str(allowed)}))
    assert gitopsd.run("--once").returncode == 0
    head = gitopsd.remote.commit(feature_files(ns), "unsigned", branch="feature")

    shown = outputs(gitopsd, "--ref", "feature")

    refusal = f"commit {head[:12]}: the commit is not signed"
    for fmt, result in shown.items():
        assert result.returncode == 1, (fmt, result.stderr)
        assert "gitopsd: would be refused on merge: target app, remote" in result.stderr
        assert refusal in result.stderr
    assert shown["text"].stdout.startswith("WOULD BE REFUSED ON MERGE: target app, remote ")
    assert text_objects(shown["text"].stdout) == EXPECTED
    assert "> **Would be refused on merge:** target app, remote" in shown["markdown"].stdout
    assert markdown_objects(shown["markdown"].stdout) == EXPECTED
    (target,) = json.loads(shown["json"].stdout)["targets"]
    assert refusal in target["refusal"] and json_objects({"targets": [target]}) == EXPECTED


def test_unknown_ref_exits_1_naming_it(gitopsd: Gitopsd) -> None:
    applied_main(gitopsd)
    result = gitopsd.run("diff", "--ref", "no-such-branch")
    assert result.returncode == 1
    assert "ref 'no-such-branch' not found" in result.stderr


def test_a_commit_id_and_a_pull_request_ref_are_previewed(gitopsd: Gitopsd) -> None:
    ns = gitopsd.namespace
    applied_main(gitopsd)
    head = gitopsd.remote.commit(feature_files(ns), branch="feature")
    gitopsd.remote.commit({"manifests/other.yaml": None}, branch="feature")  # head moves on
    subprocess.run(
        ["git", "-C", str(gitopsd.remote.bare), "update-ref", "refs/pull/7/head", head], check=True
    )
    for ref in (head, head[:10], "refs/pull/7/head"):
        result = gitopsd.run("diff", "--ref", ref, "--output", "json")
        assert result.returncode == 3, (ref, result.stderr)
        (target,) = json.loads(result.stdout)["targets"]
        assert target["revision"]["commit"] == head, ref
        assert json_objects({"targets": [target]}) == EXPECTED, ref


@pytest.fixture
def silent_server() -> Iterator[tuple[int, threading.Event]]:
    """A TCP port that accepts connections and never answers: an API server that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            accepted.set()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        listener.close()
        for connection in held:
            connection.close()


def test_the_state_lock_is_held_for_the_fetch_only(
    gitopsd: Gitopsd, kubeconfig: Path, silent_server: tuple[int, threading.Event]
) -> None:
    port, accepted = silent_server
    hanging = gitopsd.folder / "hanging-kubeconfig"
    hanging.write_text(
        re.sub(r"https://127\.0\.0\.1:\d+", f"https://127.0.0.1:{port}", kubeconfig.read_text())
    )
    applied_main(gitopsd)
    gitopsd.remote.commit(feature_files(gitopsd.namespace), branch="feature")
    gitopsd.write_config(gitopsd.target(kubeconfig=str(hanging)))

    preview = gitopsd.start("diff", "--ref", "feature")

    assert accepted.wait(60), gitopsd.log(0)  # fetched, now waiting on the cluster
    assert preview.poll() is None
    with StateLock(gitopsd.state_dir) as lock:
        lock.acquire()  # free: would raise LockError (exit 4 for a run) if still held
    assert preview.poll() is None
    assert "state_lock_released" in gitopsd.log(0)
