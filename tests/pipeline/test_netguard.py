"""The SSRF guard: the address classifier, the guard's resolution rules, and guarded connections over
real loopback HTTP (the test server is on 127.0.0.1, so tests let ``127.0.0.1/32`` through and prove
that everything else on loopback stays refused)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address, ip_network
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from pipeline.config import PipelineSettings
from pipeline.errors import BlockedAddressError, DownloadError, UnsupportedSourceError
from pipeline.netguard import (
    AddressGuard,
    guarded_session,
    is_guarded,
    is_public_address,
    open_following_redirects,
    require_http_url,
)
from tests.support.media_server import MediaServer

TIMEOUT = (5.0, 5.0)
LOOPBACK_ONLY = (ip_network("127.0.0.1/32"),)

BLOCKED = [
    # IPv4
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.5.4",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.100.100.200",  # Alibaba Cloud metadata
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    # IPv6
    "::1",
    "::",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "2001:db8::1",
    "100::1",
    # IPv6 forms that reach an IPv4 address
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::ffff:100.100.100.200",
    "::127.0.0.1",  # IPv4-compatible
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "223.5.5.5",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above it
    "172.32.0.1",  # just above 172.16.0.0/12
    "2606:4700:4700::1111",
    "2400:3200::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", BLOCKED)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ip_address(address))
    assert not AddressGuard().permits(ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ip_address(address))
    assert AddressGuard().permits(ip_address(address))


def test_guard_is_on_with_default_settings() -> None:
    settings = PipelineSettings(_env_file=None)
    guard = AddressGuard.from_settings(settings)
    assert settings.allow_private_urls is False
    assert not guard.permits(ip_address("127.0.0.1"))
    with pytest.raises(BlockedAddressError) as caught:
        guard.vetted_addresses("127.0.0.1", 80)
    assert caught.value.address == "127.0.0.1"
    assert "内网" in caught.value.user_message.zh


def test_allowed_networks_lift_the_guard_only_for_those_networks() -> None:
    settings = PipelineSettings(_env_file=None, allowed_networks="127.0.0.1/32, fd00:1::/64")
    guard = AddressGuard.from_settings(settings)
    assert guard.permits(ip_address("127.0.0.1"))
    assert guard.permits(ip_address("::ffff:127.0.0.1"))
    assert guard.permits(ip_address("fd00:1::5"))
    assert not guard.permits(ip_address("127.0.0.2"))
    assert not guard.permits(ip_address("fd00:2::5"))
    assert not guard.permits(ip_address("169.254.169.254"))


def test_allow_private_urls_lifts_the_guard_entirely() -> None:
    guard = AddressGuard.from_settings(PipelineSettings(_env_file=None, allow_private_urls=True))
    for address in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"):
        assert guard.permits(ip_address(address))


class TableResolver:
    """A resolver from a fixed table that records the names it was asked for."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def test_a_name_with_any_internal_address_is_refused() -> None:
    resolver = TableResolver({"mixed.test": ["8.8.8.8", "10.0.0.1"], "public.test": ["8.8.8.8", "2606:4700::1"]})
    guard = AddressGuard(resolver=resolver)
    with pytest.raises(BlockedAddressError) as caught:
        guard.vetted_addresses("mixed.test", 443)
    assert (caught.value.host, caught.value.address) == ("mixed.test", "10.0.0.1")
    assert [str(a) for a in guard.vetted_addresses("public.test", 443)] == ["8.8.8.8", "2606:4700::1"]


def test_literal_addresses_are_judged_without_resolving() -> None:
    resolver = TableResolver({})
    guard = AddressGuard(resolver=resolver)
    with pytest.raises(BlockedAddressError):
        guard.vetted_addresses("[::ffff:169.254.169.254]", 80)
    assert [str(a) for a in guard.vetted_addresses("8.8.8.8", 80)] == ["8.8.8.8"]
    assert resolver.asked == []
    with pytest.raises(socket.gaierror):
        guard.vetted_addresses("nowhere.test", 80)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/video.mp4", "javascript:alert(1)", "gopher://x/", "http:///path", "x"],
)
def test_only_http_links_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(UnsupportedSourceError) as caught:
        require_http_url(url)
    assert "http" in caught.value.user_message.en


def test_http_links_pass() -> None:
    assert require_http_url(" https://example.com/v.mp4 ") == "https://example.com/v.mp4"
    assert require_http_url("HTTP://example.com/") == "HTTP://example.com/"


# --------------------------------------------------------------------------------------------------
# Over real connections
# --------------------------------------------------------------------------------------------------


def test_default_guard_refuses_loopback_before_connecting(media_server: MediaServer, connect_log: list[str]) -> None:
    session = guarded_session(AddressGuard.from_settings(PipelineSettings(_env_file=None)))
    with pytest.raises(BlockedAddressError):
        session.get(media_server.url("/media/clip.mp4"), timeout=TIMEOUT)
    assert connect_log == []
    assert media_server.requests == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.0.0.1", "127.1", "[::ffff:127.0.0.1]", "localhost"])
def test_obfuscated_loopback_hosts_are_refused(host: str, media_server: MediaServer, connect_log: list[str]) -> None:
    session = guarded_session(AddressGuard())
    with pytest.raises(BlockedAddressError):
        session.get(f"http://{host}:{media_server.port}/media/clip.mp4", timeout=TIMEOUT)
    assert connect_log == []
    assert media_server.requests == []


def test_allowed_network_reaches_the_server(media_server: MediaServer) -> None:
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY))
    response = session.get(media_server.url("/media/clip.mp4"), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == media_server.files["clip.mp4"].body


def test_connection_goes_to_the_address_that_was_checked(media_server: MediaServer, connect_log: list[str]) -> None:
    # The system resolver has never heard of these names: the request can only work if the socket is
    # opened to the address the guard resolved and checked, not to a second lookup.
    resolver = TableResolver({"media.test": ["127.0.0.1"], "rebind.test": ["127.0.0.1", "10.0.0.1"]})
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY, resolver=resolver))
    response = session.get(f"http://media.test:{media_server.port}/media/clip.mp4", timeout=TIMEOUT)
    assert response.status_code == 200
    assert media_server.requests_for("/media/clip.mp4")[0].headers["Host"] == f"media.test:{media_server.port}"
    assert connect_log == ["127.0.0.1"]
    with pytest.raises(BlockedAddressError) as caught:
        session.get(f"http://rebind.test:{media_server.port}/media/clip.mp4", timeout=TIMEOUT)
    assert caught.value.address == "10.0.0.1"
    assert connect_log == ["127.0.0.1"]
    assert resolver.asked == ["media.test", "rebind.test"]


def test_check_connected_judges_the_peer_of_a_real_socket(media_server: MediaServer) -> None:
    with socket.create_connection(("127.0.0.1", media_server.port), timeout=5) as sock:
        AddressGuard(allowed_networks=LOOPBACK_ONLY).check_connected("media.test", sock)
        with pytest.raises(BlockedAddressError) as caught:
            AddressGuard().check_connected("media.test", sock)
    assert caught.value.address == "127.0.0.1"


def test_proxies_are_never_used(media_server: MediaServer) -> None:
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY))
    session.proxies = {"http": "http://10.255.255.1:3128", "https": "http://10.255.255.1:3128"}
    response = session.get(media_server.url("/media/clip.mp4"), timeout=TIMEOUT)
    assert response.status_code == 200


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x"])
def test_redirect_to_an_internal_address_is_refused_before_connecting(
    target: str, media_server: MediaServer, connect_log: list[str]
) -> None:
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY))
    url = media_server.url(f"/redirect?to={quote(target, safe='')}")
    with pytest.raises(BlockedAddressError) as caught:
        open_following_redirects(session, url, timeout=TIMEOUT)
    assert caught.value.address == target.split("/")[2]
    assert media_server.hits("/redirect") == 1
    assert connect_log == ["127.0.0.1"]


def test_each_hop_is_checked_even_on_loopback(media_server: MediaServer, connect_log: list[str]) -> None:
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY))
    target = f"http://127.0.0.2:{media_server.port}/media/clip.mp4"
    with pytest.raises(BlockedAddressError) as caught:
        open_following_redirects(session, media_server.url(f"/redirect?to={quote(target, safe='')}"), timeout=TIMEOUT)
    assert caught.value.address == "127.0.0.2"
    assert "127.0.0.2" not in connect_log


def test_redirects_are_followed_up_to_the_limit(media_server: MediaServer) -> None:
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY))
    response = open_following_redirects(session, media_server.url("/chain/5"), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.url == media_server.url("/chain/0")
    with pytest.raises(DownloadError) as caught:
        open_following_redirects(session, media_server.url("/chain/6"), timeout=TIMEOUT)
    assert "redirect" in caught.value.detail
    assert media_server.hits("/chain/0") == 1  # the sixth hop of the second chain was never requested


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/a.mp4"])
def test_redirect_to_another_scheme_is_refused(target: str, media_server: MediaServer) -> None:
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY))
    with pytest.raises(UnsupportedSourceError):
        open_following_redirects(session, media_server.url(f"/redirect?to={quote(target, safe='')}"), timeout=TIMEOUT)


def test_credentials_do_not_follow_a_redirect_to_another_site(media_server: MediaServer) -> None:
    resolver = TableResolver({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY, resolver=resolver))
    port = media_server.port
    same_site = f"http://a.test:{port}/redirect?to={quote(f'http://a.test:{port}/media/clip.mp4', safe='')}"
    open_following_redirects(session, same_site, timeout=TIMEOUT, headers={"Authorization": "Bearer t0ken"}).close()
    assert media_server.requests_for("/media/clip.mp4")[-1].headers.get("Authorization") == "Bearer t0ken"
    other_site = f"http://a.test:{port}/redirect?to={quote(f'http://b.test:{port}/media/random.mp4', safe='')}"
    open_following_redirects(session, other_site, timeout=TIMEOUT, headers={"Authorization": "Bearer t0ken"}).close()
    last = media_server.requests_for("/media/random.mp4")[-1]
    assert last.headers["Host"] == f"b.test:{port}"
    assert "Authorization" not in last.headers


def test_unguarded_sessions_are_refused(media_server: MediaServer) -> None:
    plain = requests.Session()
    assert not is_guarded(plain)
    assert is_guarded(guarded_session(AddressGuard()))
    with pytest.raises(TypeError):
        open_following_redirects(plain, media_server.url("/media/clip.mp4"), timeout=TIMEOUT)
    assert media_server.requests == []


# --------------------------------------------------------------------------------------------------
# HTTPS: the socket goes to the pinned address, TLS still checks the name
# --------------------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path, speech_video: Path) -> Iterator[tuple[MediaServer, Path]]:
    cert_path, key_path = _self_signed(tmp_path, "media.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = MediaServer.start(tls=context)
    server.add_file("clip.mp4", speech_video.read_bytes())
    try:
        yield server, cert_path
    finally:
        server.close()


def test_https_connects_to_the_pinned_address_and_verifies_the_name(
    tls_server: tuple[MediaServer, Path], connect_log: list[str]
) -> None:
    server, cert_path = tls_server
    resolver = TableResolver({"media.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    session = guarded_session(AddressGuard(allowed_networks=LOOPBACK_ONLY, resolver=resolver))
    session.verify = str(cert_path)
    response = session.get(f"https://media.test:{server.port}/media/clip.mp4", timeout=TIMEOUT)
    assert response.content == server.files["clip.mp4"].body
    assert connect_log == ["127.0.0.1"]
    # Same address, a name the certificate does not cover: verification must still refuse it.
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://other.test:{server.port}/media/clip.mp4", timeout=TIMEOUT)
    assert server.hits("/media/clip.mp4") == 1
