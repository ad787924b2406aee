"""Strip credentials from remote URLs before they reach a log line, an error or the journal.

Tokens are often carried as the user part of an HTTPS URL, so for HTTP(S) the whole
user-info is masked; for SSH only a password is (the user name, usually `git`, is not secret).
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@host...: userinfo stops at the first '/' so paths with '@' are left alone.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:access_token|private_token|token|password|passwd|secret)=)[^&#\s]*"
)


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match["scheme"], match["userinfo"]
    if scheme.lower().startswith(("http", "ftp")):
        return f"{scheme}{MASK}@"
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}{user}:{MASK}@" if colon else f"{scheme}{user}@"


def redact_url(url: str) -> str:
    """The URL with any password, token or HTTP(S) user-info replaced by `***`."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Redact every URL inside free text, such as an error message from libgit2."""
    text = _URL.sub(_mask_userinfo, text)
    return _SECRET_QUERY.sub(rf"\g<1>{MASK}", text)


def strip_credentials(url: str) -> str:
    """The URL with user-info removed entirely, for naming mirrors on disk."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@", r"\1", url)
