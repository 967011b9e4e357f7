"""How the gateway reaches an upstream: the proxy the environment names, and the certificates
it trusts, read as httpx reads them (so moving from httpx to aiohttp changed neither)."""

from __future__ import annotations

import ipaddress
import os
import ssl
import urllib.request

import certifi
import yarl


def env_proxy(url: yarl.URL) -> str | None:
    """The proxy the environment names for ``url``, read as httpx reads it: ``HTTP_PROXY`` /
    ``HTTPS_PROXY`` by scheme, else ``ALL_PROXY`` (a value without a scheme is ``http://``);
    none for a host that ``NO_PROXY`` lists (``*``, a domain and its subdomains, an address
    or a CIDR range)."""
    proxies = urllib.request.getproxies()  # lower-case keys, the lower-case variable first
    if url.host is None or _no_proxy(url.host, proxies.get("no", "")):
        return None
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _no_proxy(host: str, listed: str) -> bool:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for entry in (e.strip().lower() for e in listed.split(",")):
        entry = entry.split("://")[-1]
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.split(":")[0].lstrip("*.")
        if host.lower() == domain or host.lower().endswith(f".{domain}"):
            return True
    return False


def tls_context() -> ssl.SSLContext:
    """Certificates from ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, else certifi's bundle
    (what httpx trusts), so that a slim image without system certificates still works."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return ssl.create_default_context(cafile=certifi.where())
