"""HTTP reachability check used by the hooks' ``test_connection`` (stdlib only)."""

from __future__ import annotations

from collections.abc import Callable


def probe(url: str, service: str, *, auth: tuple[str, str | None] | None = None,
          token: str | None = None, verify: bool = True, timeout: float = 5.0,
          describe: Callable[[bytes], str] | None = None) -> tuple[bool, str]:
    """GET ``url``; ``(True, message)`` on HTTP 2xx, else ``(False, reason)``. No secret in the text.
    ``describe(body)`` adds a summary of a 2xx response body to the message."""
    import base64
    import ssl
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method="GET")
    if auth:
        raw = f"{auth[0]}:{auth[1] or ''}".encode()
        req.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
    elif token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = None
    if url.startswith("https") and not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            message = f"{service} answered HTTP {resp.status} at {url}"
            if describe is not None:
                message += f": {describe(resp.read())}"
            return True, message
    except urllib.error.HTTPError as exc:
        return False, f"{service} answered HTTP {exc.code} at {url}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{service} is unreachable at {url}: {reason}"
