"""A local directory as a target's source (`gitopsd diff --path`): the tree reader's rules."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from gitopsd.config import RefKind, SourceSettings
from gitopsd.errors import PathNotFoundError, UnsafeTreeError
from gitopsd.model import SourceFile
from gitopsd.source.local import read_directory, repository_root
from gitopsd.source.snapshot import Origin

SETTINGS = SourceSettings(repo="unused", ref_kind=RefKind.BRANCH, ref="main", path=".")


def tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_manifests_are_read_relative_and_sorted_others_skipped(tmp_path: Path) -> None:
    work = tree(
        tmp_path / "work",
        {"b.yaml": "b", "a/x.YML": "x", "c.json": "{}", "README.md": "no", ".git/HEAD.yaml": "no"},
    )
    snapshot = read_directory("web", work, SETTINGS)
    assert snapshot.files == (
        SourceFile("a/x.YML", b"x"),
        SourceFile("b.yaml", b"b"),
        SourceFile("c.json", b"{}"),
    )
    assert snapshot.origin is Origin.PATH and snapshot.refusal is None
    assert snapshot.revision.commit.startswith("local-") and snapshot.revision.ref == str(work)


def test_a_kustomization_without_suffix_is_read_only_at_the_top(tmp_path: Path) -> None:
    work = tree(tmp_path / "work", {"Kustomization": "k", "sub/Kustomization": "no", "a.yaml": "a"})
    snapshot = read_directory("web", work, SETTINGS)
    assert [f.path for f in snapshot.files] == ["Kustomization", "a.yaml"]


def test_the_revision_names_the_content(tmp_path: Path) -> None:
    work = tree(tmp_path / "work", {"a.yaml": "1"})
    first = read_directory("web", work, SETTINGS).revision
    assert read_directory("web", work, SETTINGS).revision == first
    (work / "a.yaml").write_text("2")
    assert read_directory("web", work, SETTINGS).revision != first


@pytest.mark.parametrize("link", ["../outside.yaml", "/etc/hostname"])
def test_a_symlink_leading_out_is_refused(tmp_path: Path, link: str) -> None:
    (tmp_path / "outside.yaml").write_text("secret: 1\n")
    work = tree(tmp_path / "work", {"a.yaml": "a"})
    (work / "evil.yaml").symlink_to(link)
    with pytest.raises(UnsafeTreeError, match=r"symlink 'evil.yaml' points outside the directory"):
        read_directory("web", work, SETTINGS)


def test_links_inside_are_followed_dangling_and_folder_links_skipped(tmp_path: Path) -> None:
    work = tree(tmp_path / "work", {"real/a.yaml": "a", "real/sub/b.yaml": "b"})
    (work / "alias.yaml").symlink_to("real/a.yaml")
    (work / "gone.yaml").symlink_to("missing.yaml")
    (work / "folder.yaml").symlink_to("real")  # a link to a folder: never walked into
    (work / "linked").symlink_to("real")
    paths = [f.path for f in read_directory("web", work, SETTINGS).files]
    assert paths == ["alias.yaml", "real/a.yaml", "real/sub/b.yaml"]


def test_a_link_into_a_linked_folder_outside_is_refused(tmp_path: Path) -> None:
    tree(tmp_path / "outside", {"s.yaml": "s"})
    work = tree(tmp_path / "work", {})
    (work / "out").symlink_to(tmp_path / "outside")
    (work / "via.yaml").symlink_to("out/s.yaml")
    with pytest.raises(UnsafeTreeError, match=r"'via\.yaml' points outside"):
        read_directory("web", work, SETTINGS)


def test_size_limits_per_file_and_in_total(tmp_path: Path) -> None:
    work = tree(tmp_path / "work", {"a.yaml": "x" * 60, "b.yaml": "y" * 60})
    small_file = dataclasses.replace(SETTINGS, max_file_bytes=50)
    with pytest.raises(UnsafeTreeError, match=r"file 'a.yaml' is 60 bytes, above the limit of 50"):
        read_directory("web", work, small_file)
    small_total = dataclasses.replace(SETTINGS, max_revision_bytes=100)
    with pytest.raises(UnsafeTreeError, match=r"the 2 manifests total 120 bytes, above max_rev"):
        read_directory("web", work, small_total)


def test_a_fifo_is_refused_never_read(tmp_path: Path) -> None:
    work = tree(tmp_path / "work", {})
    os.mkfifo(work / "pipe.yaml")
    with pytest.raises(UnsafeTreeError, match=r"'pipe\.yaml' is not a regular file"):
        read_directory("web", work, SETTINGS)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match=r"target web, directory .*/nope: not a directory"):
        read_directory("web", tmp_path / "nope", SETTINGS)


@pytest.mark.parametrize(
    ("directory", "path", "top"),
    [
        ("/w/overlays/prod", "overlays/prod", "/w"),
        ("/w/overlays/prod", "./overlays/prod/", "/w"),
        ("/w/deploy", ".", "/w/deploy"),
        ("/w/base", "overlays/prod", None),
        ("/prod", "overlays/prod", None),
    ],
)
def test_the_working_copy_top_is_the_folder_minus_the_target_path(
    directory: str, path: str, top: str | None
) -> None:
    assert repository_root(Path(directory), path) == (Path(top) if top else None)


def test_the_working_copy_is_written_out_without_git_or_links_leading_out(
    tmp_path: Path,
) -> None:
    work = tree(tmp_path / "w", {"base/a.yaml": "a", "prod/k.yaml": "k", ".git/config": "x"})
    (tmp_path / "secret").write_text("s")
    (work / "base" / "out.yaml").symlink_to("../../secret")
    (work / "base" / "in.yaml").symlink_to("a.yaml")
    settings = dataclasses.replace(SETTINGS, path="prod")
    snapshot = read_directory("web", work / "prod", settings)
    into = tmp_path / "into"
    into.mkdir()
    assert snapshot.checkout is not None
    assert snapshot.checkout(snapshot.revision, into) == frozenset({"base/out.yaml"})
    written = sorted(p.relative_to(into).as_posix() for p in into.rglob("*"))
    assert written == ["base", "base/a.yaml", "base/in.yaml", "prod", "prod/k.yaml"]
    assert (into / "base" / "in.yaml").read_text() == "a"
