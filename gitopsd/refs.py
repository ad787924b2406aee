"""What a configured ref and path may be: pure checks, shared by the configuration loader
and the source stage, so a mistake is refused when the file is read, not at the first fetch.
"""

from __future__ import annotations

import posixpath
import re

from gitopsd import semver

_FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Characters git-check-ref-format refuses anywhere in a ref name.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def normalize_path(path: str) -> str:
    """`./deploy/prod/` -> `deploy/prod`; the repository root is ''. ValueError if it escapes."""
    cleaned = posixpath.normpath(path.strip() or ".")
    if cleaned == ".":
        return ""
    if cleaned.startswith(("/", "../")) or cleaned == "..":
        raise ValueError(path)
    return cleaned


def ref_name_problem(name: str) -> str | None:
    """Why `name` is not a valid branch or tag name (git-check-ref-format's rules), or None."""
    if not name:
        return "is empty"
    if name.startswith("refs/"):
        return "is a full ref name: give the short name, without refs/heads/ or refs/tags/"
    bad = _BAD_REF_CHARS.search(name)
    if bad:
        return f"contains {bad.group()!r}, which git does not allow in a ref name"
    if name.startswith(("-", "/")) or name.endswith(("/", ".")) or name == "@":
        return "is not a valid git ref name (it starts or ends with '-', '/' or '.', or is '@')"
    if ".." in name or "//" in name or "@{" in name:
        return "is not a valid git ref name (it contains '..', '//' or '@{')"
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return f"is not a valid git ref name (component {part!r})"
    return None


def ref_problem(kind: str, ref: str) -> str | None:
    """Why `ref` cannot be a `kind` ref (branch, tag, semver, commit), or None.

    A commit must be given in full here: an abbreviation may become ambiguous later.
    """
    if kind == "commit":
        return None if _FULL_COMMIT.fullmatch(ref) else "must be a full commit hash (40 hex digits)"
    if kind == "semver":
        try:
            semver.parse_range(ref)
        except semver.RangeError as exc:
            return f"is not a semver range: {exc} (use e.g. '>=1.2 <2', '^1.4', '1.x')"
        return None
    return ref_name_problem(ref)
