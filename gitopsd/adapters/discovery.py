"""Discovery answers -> KindInfo, in each form an API server may answer in.

Pure, so each form is table-tested. Kubernetes 1.30 and later serve aggregated discovery
v2 (two requests describe the whole server); 1.27 to 1.29 serve the same document as
v2beta1; an older server, or one with aggregation turned off, answers only the legacy
endpoints (/api and /apis list the group versions, then one request per group version).
Asking for v2 alone left the kind table empty on 1.27-1.29, and every apply failed with
"the server has no kind".
"""

from __future__ import annotations

from typing import Any

from gitopsd.adapters.base import KindInfo

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
LEGACY = "application/json"
# In order of preference: the server answers in the first form it serves.
ACCEPT = f"{AGGREGATED_V2},{AGGREGATED_V2BETA1},{LEGACY}"


def is_aggregated(listing: Any) -> bool:
    """Whether a /api or /apis answer is aggregated discovery (v2 or v2beta1)."""
    return isinstance(listing, dict) and listing.get("kind") == "APIGroupDiscoveryList"


def aggregated_kinds(listing: dict[str, Any]) -> list[KindInfo]:
    """Every kind of an aggregated document, each group's versions in preference order."""
    found = []
    for group in listing.get("items") or []:
        name = (group.get("metadata") or {}).get("name", "")
        for version in group.get("versions") or []:
            for resource in version.get("resources") or []:
                kind = (resource.get("responseKind") or {}).get("kind", "")
                if kind and resource.get("resource"):
                    found.append(
                        KindInfo(
                            group=name,
                            version=version["version"],
                            kind=kind,
                            plural=resource["resource"],
                            namespaced=resource.get("scope") == "Namespaced",
                        )
                    )
    return found


def legacy_group_versions(listing: dict[str, Any]) -> list[tuple[str, str]]:
    """(group, version) pairs of an APIVersions (/api) or APIGroupList (/apis) answer,
    each group's preferred version first."""
    if listing.get("kind") == "APIVersions":
        return [("", version) for version in listing.get("versions") or []]
    pairs = []
    for group in listing.get("groups") or []:
        preferred = str((group.get("preferredVersion") or {}).get("version", ""))
        versions = [str(v.get("version", "")) for v in group.get("versions") or []]
        ordered = [preferred] if preferred in versions else []
        ordered += [v for v in versions if v and v != preferred]
        pairs += [(str(group.get("name", "")), version) for version in ordered]
    return pairs


def legacy_path(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def legacy_kinds(group: str, version: str, resources: dict[str, Any]) -> list[KindInfo]:
    """The kinds of one APIResourceList; subresources (`deployments/scale`) left out."""
    return [
        KindInfo(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
        for r in resources.get("resources") or []
        if "/" not in r.get("name", "/") and r.get("kind")
    ]


def nothing_usable(host: str, version: Any) -> str:
    """The message when discovery gave no kinds at all, naming the server's version."""
    served = version.get("gitVersion") if isinstance(version, dict) else None
    return (
        f"the API server at {host} ({served or 'version unknown'}) described no kinds through "
        "aggregated discovery (v2, v2beta1) nor the legacy /api and /apis endpoints; "
        "gitopsd supports Kubernetes 1.27 and later"
    )
