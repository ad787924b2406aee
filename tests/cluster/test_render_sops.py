"""SOPS-encrypted inputs of kustomize and Helm: a secretGenerator env file and a Helm values
file, decrypted by the real sops only inside a private folder on /dev/shm, removed after
the render, and applied to the real kube-apiserver (issue 16)."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.decryptconfig import DecryptionSettings
from gitopsd.model import DECRYPTED_ANNOTATION
from gitopsd.passresult import PassOutcome
from gitopsd.renderconfig import HelmSettings
from tests.cluster.render_rig import RenderRig
from tests.support.sops_tools import AgeKey, age_key, build_sops_tools, encrypt

TOKEN = "generator-TOKEN-s3cret"
DSN = "postgres://app:HELM-dsn-s3cret@db/app"
BY_HAND = "changed-BY-HAND-s3cret"


@pytest.fixture(scope="session")
def sops_bin() -> dict[str, Path]:
    return build_sops_tools()


@pytest.fixture
def key(sops_bin: dict[str, Path], tmp_path: Path) -> AgeKey:
    return age_key(sops_bin["age-keygen"], tmp_path)


def _spy(tmp_path: Path, real: str, check: str) -> tuple[str, Path]:
    """A wrapper around a renderer tool recording where it ran and what it could read there."""
    log = tmp_path / "spy.log"
    script = tmp_path / f"spy-{Path(real).name}"
    script.write_text(
        "#!/bin/sh\n"
        'work="${PWD%%/repo*}"\n'
        f'{{ echo "$work"; stat -c %a "$work"; {check}; }} >> {log}\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return str(script), log


def _shm() -> set[str]:
    return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith("gitopsd-")}


def _decrypting(target: Any, sops_bin: dict[str, Path], key: AgeKey) -> Any:
    settings = DecryptionSettings(age_key_file=key.identity_file, sops_tool=str(sops_bin["sops"]))
    return replace(target, decryption=settings)


def _leaks(rig: RenderRig, *values: str) -> list[str]:
    state = b"".join(p.read_bytes() for p in rig.state.rglob("*") if p.is_file())
    forms = [f for v in values for f in (v, base64.b64encode(v.encode()).decode())]
    return [form for form in forms if form.encode() in state]


def test_kustomize_secret_generator_with_an_encrypted_env_file(
    render_rig: RenderRig, sops_bin: dict[str, Path], key: AgeKey, tmp_path: Path, api_client: Any
) -> None:
    assert Path("/dev/shm").is_dir(), "the test needs a tmpfs at /dev/shm"
    ns, sops = render_rig.namespace, sops_bin["sops"]
    env_file = encrypt(
        sops, f"TOKEN={TOKEN}\nLEVEL=debug\n", filename="creds.env", age=[key.recipient]
    )
    conn_file = encrypt(sops, f"DSN={DSN}\n", filename="conn.env", age=[key.recipient])
    render_rig.commit(
        {
            "app/kustomization.yaml": (
                "generatorOptions:\n  disableNameSuffixHash: true\n"
                "secretGenerator:\n  - name: creds\n    envs: [creds.enc.env]\n"
                "configMapGenerator:\n  - name: conn\n    envs: [conn.enc.env]\n"
            ),
            "app/creds.enc.env": env_file,
            "app/conn.enc.env": conn_file,
        }
    )
    spy, log = _spy(tmp_path, render_rig.tools["kustomize"], 'grep -c "ENC\\[" creds.enc.env')
    render_rig.tools["kustomize"] = spy
    target = _decrypting(render_rig.target("app", "app"), sops_bin, key)
    before = _shm()
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.CONVERGED, result.error

    core = client.CoreV1Api(api_client)
    secret = core.read_namespaced_secret("creds", ns)
    assert base64.b64decode(secret.data["TOKEN"]).decode() == TOKEN
    assert secret.metadata.annotations[DECRYPTED_ANNOTATION] == "sops"
    # A render holding decrypted values is kept in memory only, never in the cache file.
    assert not (render_rig.state / "render" / f"{target.name}.json").exists()
    conn = core.read_namespaced_config_map("conn", ns)
    assert conn.data == {"DSN": DSN}
    # Generated from a decrypted file: found by the value it carries, marked sensitive.
    assert conn.metadata.annotations[DECRYPTED_ANNOTATION] == "sops"

    work, mode, encrypted_lines = log.read_text().split()
    assert work.startswith("/dev/shm/gitopsd-render-") and mode == "700"
    assert encrypted_lines == "0"  # kustomize read the env file decrypted
    assert not os.path.exists(work) and _shm() <= before

    core.patch_namespaced_config_map("conn", ns, {"data": {"DSN": BY_HAND}})
    preview = render_rig.run(target, dry_run=True, previews=True)
    shown = "".join(p.diff_text for p in preview.previews)
    assert "DSN" in shown and "<redacted " in shown
    assert DSN not in shown and BY_HAND not in shown
    assert render_rig.run(target).outcome is PassOutcome.CONVERGED
    assert _leaks(render_rig, TOKEN, DSN, BY_HAND) == []

    # Re-encrypted for a key this target lacks: kustomize would put the ciphertext,
    # base64-encoded, into the Secret; the revision is refused instead, nothing pruned.
    other = age_key(sops_bin["age-keygen"], tmp_path, "other.key")
    render_rig.commit(
        {
            "app/creds.enc.env": encrypt(
                sops, f"TOKEN={TOKEN}\n", filename="creds.env", age=[other.recipient]
            ),
            "app/kustomization.yaml": (
                "generatorOptions:\n  disableNameSuffixHash: true\n"
                "secretGenerator:\n  - name: creds\n    envs: [creds.enc.env]\n"
            ),
        }
    )
    refused = render_rig.run(target)
    assert refused.outcome is PassOutcome.FAILED
    assert "app/creds.enc.env: no key able to decrypt it" in str(refused.error)
    assert core.read_namespaced_config_map("conn", ns).data == {"DSN": DSN}


def test_a_whole_encrypted_file_in_a_secret_generator_never_reaches_the_render_cache(
    render_rig: RenderRig, sops_bin: dict[str, Path], key: AgeKey
) -> None:
    # `files: [creds.yaml]` puts the whole decrypted file, base64-encoded, in the Secret:
    # no single decrypted value matches it, so the object went unmarked and the render
    # was cached on disk with it (review finding).
    creds = encrypt(
        sops_bin["sops"], f"token: {TOKEN}\n", filename="creds.yaml", age=[key.recipient]
    )
    render_rig.commit(
        {
            "app/kustomization.yaml": (
                "generatorOptions:\n  disableNameSuffixHash: true\n"
                "secretGenerator:\n  - name: whole\n    files: [creds.yaml]\n"
            ),
            "app/creds.yaml": creds,
        }
    )
    target = _decrypting(render_rig.target("app", "app"), sops_bin, key)

    result = render_rig.run(target)

    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert not (render_rig.state / "render" / f"{target.name}.json").exists()
    assert _leaks(render_rig, TOKEN, f"token: {TOKEN}\n") == []


def test_a_charts_error_quoting_a_decrypted_value_shows_a_stand_in(
    render_rig: RenderRig, helm_tool: Path, sops_bin: dict[str, Path], key: AgeKey
) -> None:
    # The chart's own values.yaml is encrypted (not a helm.values_files entry), and a
    # template's `fail` quotes a value from it: helm's error line carried it (review finding).
    render_rig.commit(
        {
            "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
            "chart/values.yaml": encrypt(
                sops_bin["sops"], f"dsn: {DSN}\n", filename="values.yaml", age=[key.recipient]
            ),
            "chart/templates/config.yaml": '{{ fail (printf "bad dsn %s" .Values.dsn) }}\n',
        }
    )
    render_rig.tools["helm"] = str(helm_tool)
    target = _decrypting(render_rig.target("web", "chart"), sops_bin, key)

    result = render_rig.run(target)

    assert result.outcome is PassOutcome.FAILED
    assert "bad dsn <a decrypted value>" in str(result.error), result.error
    assert DSN not in str(result.error) and "HELM-dsn" not in str(result.error)


def test_helm_values_file_encrypted_and_a_file_for_another_key_left_alone(
    render_rig: RenderRig,
    helm_tool: Path,
    sops_bin: dict[str, Path],
    key: AgeKey,
    tmp_path: Path,
    api_client: Any,
) -> None:
    ns, sops = render_rig.namespace, sops_bin["sops"]
    other = age_key(sops_bin["age-keygen"], tmp_path, "other.key")
    render_rig.commit(
        {
            "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
            "chart/values.yaml": "dsn: none\nlevel: info\n",
            "chart/templates/config.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n"
                "  dsn: {{ .Values.dsn | quote }}\n  level: {{ .Values.level | quote }}\n"
            ),
            "env/prod.enc.yaml": encrypt(
                sops, f"dsn: {DSN}\nlevel: warn\n", filename="prod.enc.yaml",
                age=[key.recipient], encrypted_regex="^dsn$",
            ),
            # Another environment's values, for a key this target does not have.
            "env/staging.enc.yaml": encrypt(
                sops, "dsn: staging\n", filename="staging.enc.yaml", age=[other.recipient]
            ),
        }
    )  # fmt: skip
    spy, log = _spy(tmp_path, str(helm_tool), 'grep -c "ENC\\[" env/prod.enc.yaml')
    render_rig.tools["helm"] = spy
    helm = HelmSettings(values_files=("../env/prod.enc.yaml",))
    target = _decrypting(render_rig.target("web", "chart", helm=helm), sops_bin, key)
    before = _shm()
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.CONVERGED, result.error

    config = client.CoreV1Api(api_client).read_namespaced_config_map("web-config", ns)
    assert config.data == {"dsn": DSN, "level": "warn"}
    assert config.metadata.annotations[DECRYPTED_ANNOTATION] == "sops"
    work, mode, encrypted_lines = log.read_text().split()
    assert work.startswith("/dev/shm/gitopsd-render-") and mode == "700"
    assert encrypted_lines == "0"
    assert _shm() <= before
    assert _leaks(render_rig, DSN) == []

    # The values file this target reads, for the other key only: refused, naming it.
    render_rig.commit(
        {
            "env/prod.enc.yaml": encrypt(
                sops, f"dsn: {DSN}\n", filename="prod.enc.yaml", age=[other.recipient]
            )
        }
    )
    refused = render_rig.run(target)
    assert refused.outcome is PassOutcome.FAILED
    assert "env/prod.enc.yaml: no key able to decrypt it" in str(refused.error)
    assert other.recipient in str(refused.error)


def test_a_value_the_api_server_refuses_is_not_quoted_in_the_error(
    render_rig: RenderRig, sops_bin: dict[str, Path], key: AgeKey
) -> None:
    bad = "s3cret-SERVICE-type"
    service = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
        f"spec:\n  type: {bad}\n  ports:\n    - port: 80\n"
    )
    render_rig.commit(
        {
            "plain/web.yaml": encrypt(
                sops_bin["sops"], service, filename="web.yaml", age=[key.recipient],
                encrypted_regex="^spec$",
            )
        }
    )  # fmt: skip
    target = _decrypting(render_rig.target("web", "plain"), sops_bin, key)
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.FAILED
    message = str(result.error) + "".join(o.error for o in result.changes.entries)
    assert "spec.type: Unsupported value" in message and "<redacted " in message, message
    assert bad not in message
    assert _leaks(render_rig, bad) == []
