"""`gitopsd diff --path`: a local working copy, edited and not pushed, previewed."""

from __future__ import annotations

import json
import shutil

from tests.e2e.conftest import Gitopsd, configmap, secret
from tests.e2e.test_diff_ref import applied_main, cluster_state, json_objects, local_state
from tests.support.standins import shown_as


def test_a_local_copy_with_an_edit_shows_that_edit_only(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    applied_main(gitopsd)
    work = gitopsd.folder / "checkout"
    shutil.copytree(gitopsd.remote.work, work)
    (work / "manifests" / "app.yaml").write_text(configmap("app", ns, color="red", size="large"))
    before = cluster_state(api_client, ns), local_state(gitopsd)

    result = gitopsd.run("diff", "--path", str(work / "manifests"), "--output", "json")

    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert json_objects(document) == {("update", "ConfigMap", "app")}
    (target,) = document["targets"]
    assert target["source"] == "path" and target["revision"]["ref"] == str(work / "manifests")
    assert target["objects"][0]["fields"] == ["data.color"]
    assert "+  color: red" in target["objects"][0]["diff"]
    assert (cluster_state(api_client, ns), local_state(gitopsd)) == before
    # Unchanged, the copy matches the cluster.
    (work / "manifests" / "app.yaml").write_text(configmap("app", ns, color="blue", size="large"))
    assert gitopsd.run("diff", "--path", str(work / "manifests")).returncode == 0


def test_a_symlink_out_of_the_directory_is_refused_naming_it(
    gitopsd: Gitopsd, api_client: object
) -> None:
    applied_main(gitopsd)
    work = gitopsd.folder / "checkout"
    shutil.copytree(gitopsd.remote.work / "manifests", work)
    (gitopsd.folder / "elsewhere.yaml").write_text("kind: Secret\n")
    (work / "sneaky.yaml").symlink_to("../elsewhere.yaml")

    result = gitopsd.run("diff", "--path", str(work), "--output", "markdown")

    assert result.returncode == 1
    assert f"gitopsd: target app, directory {work}: symlink 'sneaky.yaml' points outside" in (
        result.stderr
    )
    assert "**Refused, nothing would be applied:**" in result.stdout


def test_path_needs_a_target_when_there_are_several(gitopsd: Gitopsd) -> None:
    applied_main(gitopsd)
    gitopsd.write_config(gitopsd.target(), gitopsd.target("api", path="api"))
    result = gitopsd.run("diff", "--path", str(gitopsd.folder))
    assert result.returncode == 2
    assert "--path is the source of one target: add --target (app, api)" in result.stderr


def test_path_stand_ins_are_the_installations_like_every_other_output(
    gitopsd: Gitopsd,
) -> None:
    # They came from a key made for each run, so a PR comment changed on every push and
    # matched nothing `diff --ref` or `history` showed (acceptance test).
    ns = gitopsd.namespace
    applied_main(gitopsd)
    work = gitopsd.folder / "checkout"
    shutil.copytree(gitopsd.remote.work, work)
    (work / "manifests" / "creds.yaml").write_text(secret("creds", ns, token="local-token-9"))

    runs = [gitopsd.run("diff", "--path", str(work / "manifests")) for _ in range(2)]

    stand_in = shown_as("local-token-9", gitopsd.state_dir)[10:-1]
    for run in runs:
        assert run.returncode == 3, run.stderr
        assert "local-token-9" not in run.stdout and stand_in in run.stdout
