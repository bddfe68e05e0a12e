"""ClientContext: the one TLS client context (TLS 1.2 at least), rebuilt when its files change,
and the minimum version every context of the library gets."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
import trustme

from inference_metrics.net import MINIMUM_TLS_VERSION, ClientContext, TLSFileError
from inference_metrics.pool import ClientTLS
from inference_metrics.server import ServerTLS

from .clocks import FakeClock
from .server_support import TLSMaterial


def test_every_context_of_the_library_refuses_tls_below_1_2(tmp_path: Path) -> None:
    material = TLSMaterial(tmp_path / "tls")
    contexts = [
        ClientContext()(),
        ClientContext(ca_file=material.ca_file)(),
        ClientTLS(insecure_skip_verify=True).context(),
        ServerTLS(material.cert_file, material.key_file).context(),
    ]
    assert MINIMUM_TLS_VERSION is ssl.TLSVersion.TLSv1_2
    assert [c.minimum_version for c in contexts] == [ssl.TLSVersion.TLSv1_2] * len(contexts)


def write_ca(path: Path, ca: trustme.CA) -> None:
    replacement = path.with_suffix(".new")
    ca.cert_pem.write_to_path(str(replacement))
    os.replace(replacement, path)  # a new inode, as a Secret or ConfigMap volume swaps it


def trusted_subjects(context: ssl.SSLContext) -> list[object]:
    return [cert["subject"] for cert in context.get_ca_certs()]


def test_a_rotated_ca_file_is_used_by_the_next_connection(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    old, new = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "ca.pem"
    write_ca(ca_file, old)
    watched = ClientContext(ca_file=ca_file, check_interval=1.0, clock=clock)
    before = trusted_subjects(watched())
    write_ca(ca_file, new)
    assert trusted_subjects(watched()) == before  # looked at most once a second
    clock.advance(1.0)
    after = trusted_subjects(watched())
    assert after != before
    assert watched.reloads == 1


def test_a_ca_file_that_stops_loading_keeps_the_last_good_context(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    write_ca(ca_file, trustme.CA())
    watched = ClientContext(ca_file=ca_file, check_interval=0.0)
    good = watched()
    ca_file.write_text("-----BEGIN CERTIFICATE-----\nhalf written")
    assert watched() is good
    ca_file.unlink()
    assert watched() is good
    assert watched.reloads == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cert_file": "c.pem"}, "cert_file and key_file go together"),
        ({"ca_file": "/no/such/ca.pem"}, "ca_file '/no/such/ca.pem' cannot be used"),
        ({"cert_file": "/no/c.pem", "key_file": "/no/k.pem"}, "cert_file/key_file '/no/c.pem'"),
    ],
)
def test_files_that_cannot_be_used_are_errors_naming_them(
    kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(TLSFileError, match=message):
        ClientContext(**kwargs)  # type: ignore[arg-type]
