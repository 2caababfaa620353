"""The SSRF guard: links sent by users must never make the server reach loopback, private or internal
addresses (cloud metadata at 169.254.169.254 and 100.100.100.200, the VPC, the host itself).

Checking a URL's host name up front is not enough: the name can resolve to a private address, resolve
differently a second later (DNS rebinding), or redirect to one. So the check sits where the socket is
opened. ``guarded_session`` returns a ``requests.Session`` whose connections resolve the host once, refuse
the name if any of its addresses is not permitted, connect only to an address that was checked, and check
the peer address of the connected socket again. Nothing is ever sent to a refused address, and every
redirect hop (``open_following_redirects``) opens its connection through the same check.

Proxies are never used by a guarded session: through a proxy the guard would only see the proxy.
"""

from __future__ import annotations

import http.cookiejar
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from pipeline.errors import BlockedAddressError, DownloadError, UnsupportedSourceError
from pipeline.models import UserText

if TYPE_CHECKING:
    from pipeline.config import PipelineSettings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
# (host, port) -> the addresses the host resolves to, as strings; raises socket.gaierror when it does not.
Resolver = Callable[[str, int], Sequence[str]]

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that carry credentials for one site; dropped when a redirect leaves that site.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

# Ranges that ``ipaddress`` (as of Python 3.11) does not all flag, named so a reader sees the intent.
_BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT, also Alibaba Cloud's internal services
        "100.100.100.200/32",  # Alibaba Cloud instance metadata (inside the range above; named on purpose)
        "169.254.0.0/16",  # link-local, incl. 169.254.169.254 (AWS/GCP/Azure/Alibaba metadata)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. broadcast
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo is unwrapped before this check)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local (incl. AWS's fd00:ec2::254 metadata)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ip_network("::/96")


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the forms that reach an IPv4 host
    (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo client): those are judged by the IPv4 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public_address(address: IPAddress) -> bool:
    """True when ``address`` is a public unicast address that a user's link may make us connect to."""
    if isinstance(address, IPv6Address):
        if address.is_loopback or address.is_unspecified:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
        if address.is_site_local:
            return False
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    if special or not address.is_global:
        return False
    return not any(address in network for network in _BLOCKED_NETWORKS if network.version == address.version)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if text not in found:
            found.append(text)
    return found


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class AddressGuard:
    """Which addresses connections may go to. ``allow_all`` lifts the guard (tests, closed networks);
    ``allowed_networks`` lifts it for those networks only. ``resolver`` is injectable for tests."""

    allow_all: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def from_settings(cls, settings: PipelineSettings, *, resolver: Resolver = system_resolver) -> AddressGuard:
        return cls(
            allow_all=settings.allow_private_urls,
            allowed_networks=tuple(settings.allowed_networks),
            resolver=resolver,
        )

    def permits(self, address: IPAddress) -> bool:
        if self.allow_all or is_public_address(address):
            return True
        candidates: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            c in network for c in candidates for network in self.allowed_networks if c.version == network.version
        )

    def vetted_addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` once and return its addresses, or raise ``BlockedAddressError`` if any of them
        is not permitted (with a mix, an attacker would choose which one we end up using).

        Raises ``socket.gaierror`` when the name does not resolve."""
        literal = _literal_address(host)
        addresses = [literal] if literal is not None else [ip_address(a) for a in self.resolver(host, port)]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} resolved to no address")
        for address in addresses:
            if not self.permits(address):
                raise BlockedAddressError(host, str(address))
        return addresses

    def check_connected(self, host: str, sock: socket.socket) -> None:
        """Check the address a socket is actually connected to (the last word, whatever resolved)."""
        peer = _literal_address(str(sock.getpeername()[0]))
        if peer is None or not self.permits(peer):
            raise BlockedAddressError(host, str(peer))


# --------------------------------------------------------------------------------------------------
# requests / urllib3 plumbing
# --------------------------------------------------------------------------------------------------


def _open_vetted_socket(conn: HTTPConnection, guard: AddressGuard) -> socket.socket:
    host = conn.host
    try:
        addresses = guard.vetted_addresses(host, conn.port)
    except socket.gaierror as exc:
        raise NameResolutionError(host, conn, exc) from exc
    last_error: OSError | None = None
    for address in addresses:
        try:
            sock = create_connection(
                (str(address), conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            message = f"Connection to {host} timed out. (connect timeout={conn.timeout})"
            raise ConnectTimeoutError(conn, message) from exc
        except OSError as exc:
            last_error = exc
            continue
        try:
            guard.check_connected(host, sock)
        except BaseException:
            sock.close()
            raise
        return sock
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last_error}")


class _GuardedHTTPConnection(HTTPConnection):
    address_guard: ClassVar[AddressGuard]

    def _new_conn(self) -> socket.socket:
        return _open_vetted_socket(self, self.address_guard)


class _GuardedHTTPSConnection(HTTPSConnection):
    address_guard: ClassVar[AddressGuard]

    def _new_conn(self) -> socket.socket:
        return _open_vetted_socket(self, self.address_guard)


def _guarded_pool_classes(guard: AddressGuard) -> dict[str, type[HTTPConnectionPool]]:
    # urllib3 builds connections from a pool's ConnectionCls and takes no per-pool extras for it,
    # so each guard gets its own small subclasses carrying it.
    http_conn = type("GuardedHTTPConnection", (_GuardedHTTPConnection,), {"address_guard": guard})
    https_conn = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), {"address_guard": guard})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class GuardedAdapter(HTTPAdapter):
    """A transport adapter whose every connection goes through ``AddressGuard``; proxies are ignored."""

    __attrs__ = [*HTTPAdapter.__attrs__, "address_guard"]  # noqa: RUF012 - requests' pickling list

    def __init__(self, guard: AddressGuard, **kwargs: Any) -> None:
        self.address_guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _guarded_pool_classes(self.address_guard)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,  # noqa: ARG002 - ignored on purpose, see the class
    ) -> requests.Response:
        # An empty mapping, not None: importing yt-dlp replaces requests' select_proxy with one that
        # cannot take None.
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies={})


def guarded_session(guard: AddressGuard) -> requests.Session:
    """A session for fetching user-supplied links. It keeps no cookies between requests (links from
    different users share it); ``open_following_redirects`` carries cookies within one fetch."""
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc credentials from the environment
    session.max_redirects = MAX_REDIRECTS
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = GuardedAdapter(guard, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def is_guarded(session: requests.Session) -> bool:
    return all(isinstance(session.get_adapter(f"{scheme}://x"), GuardedAdapter) for scheme in ("http", "https"))


def require_http_url(url: str) -> str:
    """Return ``url`` if it is an http(s) URL with a host, else raise ``UnsupportedSourceError``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsupportedSourceError(f"{scheme}:// link" if scheme else "a link without http(s)://")
    if not parts.hostname:
        raise UnsupportedSourceError("a link without a host name")
    return url.strip()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _redirected_method(method: str, status: int) -> str:
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


def open_following_redirects(
    session: requests.Session,
    url: str,
    *,
    timeout: tuple[float, float],
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: Any = None,
    cookies: http.cookiejar.CookieJar | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> requests.Response:
    """Send a request through a guarded session, following redirects one hop at a time: each hop must
    be http(s), opens its own guarded connection, and loses credential headers when it changes site.

    Returns the first response that is not a redirect, body unread (``stream=True``). ``cookies``, when
    given, is sent with each hop and receives the cookies the hops set."""
    if not is_guarded(session):
        raise TypeError("open_following_redirects needs a session from netguard.guarded_session()")
    current = require_http_url(url)
    sent_headers = dict(headers or {})
    for hop in range(max_redirects + 1):
        response = session.request(
            method,
            current,
            headers=sent_headers,
            data=data,
            # requests takes any CookieJar here at run time (it copies it into its own jar).
            cookies=cast("RequestsCookieJar | None", cookies),
            timeout=timeout,
            stream=True,
            allow_redirects=False,
        )
        if cookies is not None:
            extract_cookies_to_jar(cookies, response.request, response.raw)
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response
        response.close()
        if hop == max_redirects:
            break
        target = urljoin(current, location)
        require_http_url(target)
        if _origin(target) != _origin(current):
            sent_headers = _without(sent_headers, _CREDENTIAL_HEADERS)
        new_method = _redirected_method(method, response.status_code)
        if new_method != method:
            data = None
            sent_headers = _without(sent_headers, {"content-type", "content-length"})
        method, current = new_method, target
    raise DownloadError(
        f"more than {max_redirects} redirects from {url}",
        user_message=UserText(
            zh=f"链接跳转超过 {max_redirects} 次，无法下载。请发送视频的最终地址。",
            en=f"The link redirects more than {max_redirects} times. Send the video's final address.",
        ),
    )


def _without(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    drop = {n.lower() for n in names}
    return {k: v for k, v in headers.items() if k.lower() not in drop}
