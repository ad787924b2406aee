"""SOPS-encrypted manifests: the `gitopsd` command against the real cluster, sops and keys.

Fixtures are encrypted in each test by the real `sops` (built from the Go module proxy)
for age and OpenPGP keys the test generates. The values that were encrypted are then
looked for in everything gitopsd writes or shows: logs, `diff`, `--dry-run`, `history`,
/status, /metrics, the journal and the whole state directory (the render cache
included), and in the temporary folders it could have used.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.model import DECRYPTED_ANNOTATION
from tests.e2e.conftest import Gitopsd, configmap, secret, wait_for
from tests.support.sops_tools import age_key, build_sops_tools, encrypt, gpg_key

SECRET_VALUE = "s3cr3t-PASSWORD-in-git"
CM_VALUE = "postgres://app:HUNTER2-dsn@db/app"
BY_HAND = "edited-BY-HAND-value"
REGEX = "^(data|stringData)$"


@pytest.fixture(scope="session")
def sops_bin() -> dict[str, Path]:
    return build_sops_tools()


@pytest.fixture
def private_tmp(gitopsd: Gitopsd) -> Iterator[Path]:
    """A TMPDIR for gitopsd that must stay empty, and /dev/shm left as it was."""
    temp = gitopsd.folder / "tmp"
    temp.mkdir()
    gitopsd.env["TMPDIR"] = str(temp)
    before = _shm()
    yield temp
    assert list(temp.iterdir()) == [], "gitopsd left files in its temporary folder"
    assert _shm() <= before, "gitopsd left a private folder in /dev/shm"


def _shm() -> set[str]:
    shm = Path("/dev/shm")
    return (
        {p.name for p in shm.iterdir() if p.name.startswith("gitopsd-")} if shm.is_dir() else set()
    )


def _core(api_client: object) -> Any:
    return client.CoreV1Api(api_client)


def _decryption(**keys: Path) -> dict[str, str]:
    return {"provider": "sops", **{name: str(path) for name, path in keys.items()}}


def _tools(sops_bin: dict[str, Path]) -> dict[str, str]:
    return {"sops": str(sops_bin["sops"])}


def _forms(*values: str) -> list[str]:
    return [form for v in values for form in (v, base64.b64encode(v.encode()).decode())]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_encrypted_secret_and_configmap_apply_decrypted_and_are_never_shown(
    gitopsd: Gitopsd, api_client: object, sops_bin: dict[str, Path], private_tmp: Path
) -> None:
    ns, sops = gitopsd.namespace, sops_bin["sops"]
    key = age_key(sops_bin["age-keygen"], gitopsd.folder)
    # Found on PATH here; the other tests name it with tools.sops.
    gitopsd.env["PATH"] = f"{sops.parent}{os.pathsep}{gitopsd.env['PATH']}"
    gitopsd.remote.commit(
        {
            # Whole file encrypted, apiVersion and name included.
            "manifests/creds.yaml": encrypt(
                sops, secret("creds", ns, password=SECRET_VALUE), filename="creds.yaml",
                age=[key.recipient],
            ),
            # encrypted_regex: only data is encrypted, the rest stays readable in Git.
            "manifests/settings.yaml": encrypt(
                sops, configmap("settings", ns, dsn=CM_VALUE, mode="fast"),
                filename="settings.yaml", age=[key.recipient], encrypted_regex=REGEX,
            ),
            "manifests/plain.yaml": configmap("plain", ns, color="blue"),
        }
    )  # fmt: skip
    settings_yaml = (gitopsd.remote.work / "manifests/settings.yaml").read_text()
    assert "mode: ENC[" in settings_yaml and "name: settings" in settings_yaml
    http = f"http: {{address: 127.0.0.1, port: {gitopsd.port}}}"
    gitopsd.write_config(
        gitopsd.target(decryption=_decryption(age_key_file=key.identity_file)), extra=http
    )
    outputs = []

    first = gitopsd.run("--once")
    outputs.append(first.stdout + first.stderr)
    assert first.returncode == 0, first.stderr
    core = _core(api_client)
    live_secret = core.read_namespaced_secret("creds", ns)
    assert base64.b64decode(live_secret.data["password"]).decode() == SECRET_VALUE
    live_cm = core.read_namespaced_config_map("settings", ns)
    assert live_cm.data == {"dsn": CM_VALUE, "mode": "fast"}
    assert live_cm.metadata.annotations[DECRYPTED_ANNOTATION] == "sops"
    assert DECRYPTED_ANNOTATION not in (
        core.read_namespaced_config_map("plain", ns).metadata.annotations or {}
    )
    # The decrypted render is kept in memory only.
    assert not (gitopsd.state_dir / "render" / "app.json").exists()

    core.patch_namespaced_config_map(
        "settings", ns, {"data": {"dsn": BY_HAND}}, field_manager="kubectl-edit"
    )
    diff = gitopsd.run("diff")
    outputs.append(diff.stdout + diff.stderr)
    assert diff.returncode == 3, diff.stderr
    assert "data" in diff.stdout and "<redacted " in diff.stdout
    dry_run = gitopsd.run("--once", "--dry-run")
    outputs.append(dry_run.stdout + dry_run.stderr)
    assert dry_run.returncode == 3, dry_run.stderr
    corrected = gitopsd.run("--once")
    outputs.append(corrected.stdout + corrected.stderr)
    assert corrected.returncode == 0, corrected.stderr
    assert core.read_namespaced_config_map("settings", ns).data["dsn"] == CM_VALUE
    assert "drift_detected" in corrected.stderr + corrected.stdout
    for args in (("history",), ("history", "--json")):
        history = gitopsd.run(*args)
        assert history.returncode == 0, history.stderr
        outputs.append(history.stdout + history.stderr)
    assert "converged" in outputs[-1]

    gitopsd.start()
    status = wait_for(lambda: json.loads(_get(gitopsd.url("/status"))))
    wait_for(lambda: json.loads(_get(gitopsd.url("/status")))["targets"]["app"]["in_sync"])
    outputs += [
        json.dumps(status),
        _get(gitopsd.url("/status")),
        _get(gitopsd.url("/metrics")),
        _get(gitopsd.url("/")),
        _get(gitopsd.url("/targets/app")),
    ]
    gitopsd.stop_all()
    outputs.append(gitopsd.log())
    outputs.append((gitopsd.folder / "stdout-0.log").read_text())

    state = b"".join(p.read_bytes() for p in sorted(gitopsd.state_dir.rglob("*")) if p.is_file())
    everything = "\n".join(outputs)
    for value in _forms(SECRET_VALUE, CM_VALUE, BY_HAND):
        assert value not in everything, f"{value!r} shown"
        assert value.encode() not in state, f"{value!r} in the state directory"
    assert "<redacted " in everything  # the stand-ins are there instead


def test_wrong_key_refuses_the_revision_and_prunes_nothing(
    gitopsd: Gitopsd, api_client: object, sops_bin: dict[str, Path], private_tmp: Path
) -> None:
    ns, sops, keygen = gitopsd.namespace, sops_bin["sops"], sops_bin["age-keygen"]
    ours, theirs = (
        age_key(keygen, gitopsd.folder, "ours.key"),
        age_key(keygen, gitopsd.folder, "theirs.key"),
    )
    settings = configmap("settings", ns, dsn=CM_VALUE)
    gitopsd.remote.commit(
        {
            "manifests/settings.yaml": encrypt(
                sops, settings, filename="s.yaml", age=[ours.recipient], encrypted_regex=REGEX
            ),
            "manifests/keep.yaml": configmap("keep", ns, v="1"),
        }
    )
    gitopsd.write_config(
        gitopsd.target(
            decryption=_decryption(age_key_file=ours.identity_file), tools=_tools(sops_bin)
        )
    )
    assert gitopsd.run("--once").returncode == 0

    # Encrypted for another key, and keep.yaml removed: were it applied, keep would go.
    gitopsd.remote.commit(
        {
            "manifests/settings.yaml": encrypt(
                sops, configmap("settings", ns, dsn="other"), filename="s.yaml",
                age=[theirs.recipient], encrypted_regex=REGEX,
            ),
            "manifests/keep.yaml": None,
        }
    )  # fmt: skip
    refused = gitopsd.run("--once")
    assert refused.returncode == 1
    line = next(line for line in refused.stderr.splitlines() if "settings.yaml" in line)
    assert "no key able to decrypt it" in line and theirs.recipient in line, refused.stderr
    core = _core(api_client)
    assert core.read_namespaced_config_map("keep", ns).data == {"v": "1"}
    assert core.read_namespaced_config_map("settings", ns).data == {"dsn": CM_VALUE}

    # A key file that is not there is named as such, not taken for a wrong key.
    gitopsd.write_config(
        gitopsd.target(
            decryption=_decryption(age_key_file=gitopsd.folder / "absent.key"),
            tools=_tools(sops_bin),
        )
    )
    refused = gitopsd.run("--once")
    assert refused.returncode == 1
    assert f"age_key_file {gitopsd.folder / 'absent.key'} does not exist" in refused.stderr
    gitopsd.write_config(
        gitopsd.target(
            decryption=_decryption(age_key_file=ours.identity_file), tools=_tools(sops_bin)
        )
    )

    # Tampered: a clear value changed by hand after encryption breaks the MAC.
    good = encrypt(sops, settings, filename="s.yaml", age=[ours.recipient], encrypted_regex=REGEX)
    tampered = good.replace("name: settings", "name: settings-x", 1)
    assert tampered != good
    gitopsd.remote.commit({"manifests/settings.yaml": tampered})
    refused = gitopsd.run("--once")
    assert refused.returncode == 1
    assert "settings.yaml: MAC mismatch" in refused.stderr, refused.stderr
    # The ciphertext itself edited: AES-GCM refuses it, named as such.
    start = good.index("ENC[AES256_GCM,data:") + len("ENC[AES256_GCM,data:")
    flipped = "B" if good[start] != "B" else "C"
    gitopsd.remote.commit({"manifests/settings.yaml": good[:start] + flipped + good[start + 1 :]})
    refused = gitopsd.run("--once")
    assert refused.returncode == 1
    assert "settings.yaml: an encrypted value does not authenticate" in refused.stderr, (
        refused.stderr
    )
    assert core.read_namespaced_config_map("keep", ns).data == {"v": "1"}

    # No decryption section: refused with the fix, never applied encrypted.
    gitopsd.write_config(gitopsd.target())
    refused = gitopsd.run("--once")
    assert refused.returncode == 1
    assert "settings.yaml: encrypted with SOPS; set decryption on target app" in refused.stderr
    for output in (refused.stdout, refused.stderr):
        assert CM_VALUE not in output


def test_gpg_key_and_age_key_rotation_without_spurious_drift(
    gitopsd: Gitopsd, api_client: object, sops_bin: dict[str, Path], private_tmp: Path
) -> None:
    ns, sops, keygen = gitopsd.namespace, sops_bin["sops"], sops_bin["age-keygen"]
    old, new = (
        age_key(keygen, gitopsd.folder, "old.key"),
        age_key(keygen, gitopsd.folder, "new.key"),
    )
    secret_doc = secret("creds", ns, password=SECRET_VALUE)
    with gpg_key(gitopsd.folder) as pgp:
        gitopsd.remote.commit(
            {
                "manifests/creds.yaml": encrypt(
                    sops, secret_doc, filename="c.yaml", pgp=[pgp.fingerprint],
                    gnupg_home=pgp.home, encrypted_regex=REGEX,
                ),
            }
        )  # fmt: skip
        # A GnuPG home: sops runs gpg on it (its agent is stopped with the key).
        gitopsd.write_config(
            gitopsd.target(decryption=_decryption(gpg_keyring=pgp.home), tools=_tools(sops_bin))
        )
        result = gitopsd.run("--once")
        assert result.returncode == 0, result.stderr
    core = _core(api_client)
    assert base64.b64decode(core.read_namespaced_secret("creds", ns).data["password"]) == (
        SECRET_VALUE.encode()
    )
    core.delete_namespaced_secret("creds", ns)
    # The GnuPG home is gone: sops reads the exported secret keys, without gpg.
    gitopsd.write_config(
        gitopsd.target(decryption=_decryption(gpg_keyring=pgp.exported), tools=_tools(sops_bin))
    )
    result = gitopsd.run("--once")
    assert result.returncode == 0, result.stderr
    assert base64.b64decode(core.read_namespaced_secret("creds", ns).data["password"]) == (
        SECRET_VALUE.encode()
    )

    # Rotation: encrypted for the old age key, then re-encrypted for the new one only.
    gitopsd.remote.commit(
        {"manifests/creds.yaml": encrypt(sops, secret_doc, filename="c.yaml", age=[old.recipient])}
    )
    gitopsd.write_config(
        gitopsd.target(
            decryption=_decryption(age_key_file=old.identity_file), tools=_tools(sops_bin)
        )
    )
    assert gitopsd.run("--once").returncode == 0
    gitopsd.remote.commit(
        {"manifests/creds.yaml": encrypt(sops, secret_doc, filename="c.yaml", age=[new.recipient])}
    )
    old.identity_file.unlink()  # the old key removed from the machine
    gitopsd.write_config(
        gitopsd.target(
            decryption=_decryption(age_key_file=new.identity_file), tools=_tools(sops_bin)
        )
    )
    rotated = gitopsd.run("--once")
    assert rotated.returncode == 0, rotated.stderr
    history = json.loads(gitopsd.run("history", "--json").stdout)
    assert [p["outcome"] for p in history["passes"]][-2:] == ["in_sync", "in_sync"]
    assert "drift_detected" not in rotated.stderr + rotated.stdout
