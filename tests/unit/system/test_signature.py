"""Detached signatures verified with real gpg against throwaway keyrings (see gpgkit.py)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clp_alpm.errors import ConfigError, SignatureError
from clp_alpm.system.signature import (
    SIGLEVELS,
    SignatureInfo,
    check_signature,
    sign_detached,
    verify_detached,
)
from tests.kits.gpgkit import (
    Keyring,
    copy_home,
    export_public,
    gpg,
    kill_agent,
    make_keyring,
    short_dir,
    sign,
)

if shutil.which("gpg") is None or shutil.which("gpgconf") is None:
    pytest.skip("gpg is not installed (Debian: gnupg)", allow_module_level=True)

PATCH = "CLPR261125.clp"


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    ring = make_keyring(tmp_path_factory.mktemp("gpg"))
    yield ring
    ring.cleanup()


@pytest.fixture
def patch(tmp_path: Path) -> Path:
    path = tmp_path / PATCH
    path.write_bytes(b"PK\x03\x04 pretend zip " + os.urandom(4096))
    return path


def refused(data: Path, sig: Path, keyring: Path) -> str:
    with pytest.raises(SignatureError) as caught:
        verify_detached(data, sig, keyring)
    return str(caught.value)


# --------------------------------------------------------------------------------------------
# Signatures that verify


def test_packager_key_lsigned_by_master_verifies_as_full(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr)
    info = verify_detached(patch, sig, keyring.homedir)
    assert info == SignatureInfo(
        fingerprint=keyring.packager_fpr, uid="Packager <packager@localhost>", trust="full"
    )


def test_ultimately_trusted_master_key_verifies(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.master_fpr)
    info = verify_detached(patch, sig, keyring.homedir)
    assert (info.fingerprint, info.trust) == (keyring.master_fpr, "ultimate")


def test_ascii_armored_signature_verifies(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr, armor=True)
    assert sig.read_bytes().startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert verify_detached(patch, sig, keyring.homedir).fingerprint == keyring.packager_fpr


def test_verification_leaves_the_keyring_files_unchanged(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr)
    verify_detached(patch, sig, keyring.homedir)  # the trustdb is fresh after this one
    before = _keyring_state(keyring.homedir)
    verify_detached(patch, sig, keyring.homedir)
    assert _keyring_state(keyring.homedir) == before


def _keyring_state(home: Path) -> dict[str, tuple[int, int]]:
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns)
        for p in home.iterdir()
        if p.is_file() and not p.name.startswith("S.")
    }


# --------------------------------------------------------------------------------------------
# Keys the keyring does not accept


def test_untrusted_key_is_refused_with_lsign_hint(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.untrusted_fpr)
    message = refused(patch, sig, keyring.homedir)
    assert message == (
        f"{PATCH}.sig: signature made by an untrusted key {keyring.untrusted_fpr} "
        "(lsign it with pacman-key --lsign-key)"
    )


def test_key_missing_from_keyring_is_refused(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.stranger_fpr)
    message = refused(patch, sig, keyring.homedir)
    assert message.startswith(f"{PATCH}.sig: signature made by an unknown key")
    assert keyring.stranger_fpr in message
    assert str(keyring.homedir) in message


def test_expired_key_is_refused(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.expired_fpr)  # made in 2020 while the key was valid
    message = refused(patch, sig, keyring.homedir)
    assert message == f"{PATCH}.sig: signature made by an expired key {keyring.expired_fpr}"


def test_revoked_key_is_refused(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.revoked_fpr)
    message = refused(patch, sig, keyring.homedir)
    assert message == f"{PATCH}.sig: signature made by a revoked key {keyring.revoked_fpr}"


def test_key_disabled_in_keyring_is_refused(keyring: Keyring, patch: Path, tmp_path: Path) -> None:
    # pacman-key --populate disables revoked distribution keys this way; gpg still says
    # TRUST_FULLY for them.
    base, owned = short_dir(tmp_path)
    ring = copy_home(keyring.homedir, base / "disabled")
    try:
        subprocess.run(
            ["gpg", "--homedir", str(ring), "--batch", "--command-fd", "0",
             "--no-auto-check-trustdb", "--edit-key", keyring.packager_fpr],
            input=b"disable\nquit\n", capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        sig = sign(keyring, patch, keyring.packager_fpr)
        message = refused(patch, sig, ring)
    finally:
        kill_agent(ring)
        if owned:
            shutil.rmtree(base, ignore_errors=True)
    assert message.startswith(f"{PATCH}.sig: signature made by a disabled key")
    assert keyring.packager_fpr in message


def test_marginally_valid_key_is_refused(keyring: Keyring, patch: Path, tmp_path: Path) -> None:
    # The untrusted key, certified by the packager whom the keyring trusts only marginally,
    # has marginal validity: gpg reports TRUST_MARGINAL, pacman's default refuses it.
    base, owned = short_dir(tmp_path)
    ring = copy_home(keyring.homedir, base / "marginal")
    try:
        signer = copy_home(keyring.signer_home, base / "s")
        gpg(signer, "--local-user", keyring.packager_fpr, "--quick-sign-key",
            keyring.untrusted_fpr)  # fmt: skip
        certified = export_public(signer, keyring.untrusted_fpr)
        gpg(ring, "--import", input=certified)
        gpg(ring, "--import-ownertrust", input=f"{keyring.packager_fpr}:4:\n".encode())
        gpg(ring, "--check-trustdb")
        status = subprocess.run(
            ["gpg", "--homedir", str(ring), "--batch", "--status-fd", "1", "--verify",
             str(sign(keyring, patch, keyring.untrusted_fpr)), str(patch)],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        message = refused(patch, Path(str(patch) + ".sig"), ring)
    finally:
        kill_agent(ring)
        kill_agent(base / "s")
        if owned:
            shutil.rmtree(base, ignore_errors=True)
    assert "TRUST_MARGINAL" in status  # the case really is the marginal one
    assert message.startswith(f"{PATCH}.sig: signature made by an untrusted key")


# --------------------------------------------------------------------------------------------
# Signatures that do not match the data


def test_tampered_data_is_refused(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr)
    with patch.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"X")
    assert refused(patch, sig, keyring.homedir) == f"{PATCH}: signature is invalid (BADSIG)"


def test_signature_of_another_file_is_refused(
    keyring: Keyring, patch: Path, tmp_path: Path
) -> None:
    other = tmp_path / "CLPR261124.clp"
    other.write_bytes(b"another patch")
    sig = sign(keyring, other, keyring.packager_fpr)
    assert refused(patch, sig, keyring.homedir) == f"{PATCH}: signature is invalid (BADSIG)"


def test_text_mode_signature_is_refused(keyring: Keyring, patch: Path) -> None:
    # A canonical-text signature also matches copies with other line endings.
    sig = sign(keyring, patch, keyring.packager_fpr, textmode=True)
    message = refused(patch, sig, keyring.homedir)
    assert message.startswith(f"{PATCH}.sig: is a text-mode signature (class 01)")


# --------------------------------------------------------------------------------------------
# Files that are not one detached signature


def _public_key(keyring: Keyring) -> bytes:
    return export_public(keyring.signer_home, keyring.packager_fpr, armor=False)


def _armored_public_key(keyring: Keyring) -> bytes:
    return export_public(keyring.signer_home, keyring.packager_fpr, armor=True)


def _clearsigned(keyring: Keyring) -> bytes:
    return gpg(keyring.signer_home, "--local-user", keyring.packager_fpr, "--clearsign",
               input=b"hello\n")  # fmt: skip


@pytest.mark.parametrize(
    "make_content",
    [
        lambda k: b"this is not a signature\n",
        lambda k: b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        lambda k: b"\x88\x05abc",  # a signature packet header announcing more than there is
        _public_key,
        _armored_public_key,
        _clearsigned,
        lambda k: (
            b"-----BEGIN PGP SIGNATURE-----\n\n!!!notbase64!!!\n-----END PGP SIGNATURE-----\n"
        ),
    ],
    ids=[
        "text",
        "binary",
        "truncated",
        "public-key",
        "armored-public-key",
        "clearsigned",
        "bad-armor",
    ],
)
def test_file_that_is_not_a_detached_signature_is_refused(
    keyring: Keyring, patch: Path, make_content
) -> None:
    sig = Path(str(patch) + ".sig")
    sig.write_bytes(make_content(keyring))
    message = refused(patch, sig, keyring.homedir)
    assert message == f"{PATCH}.sig: is not a detached OpenPGP signature"


@pytest.mark.parametrize("content", [b"", b"\n  \n"], ids=["empty", "blank"])
def test_empty_signature_file_is_refused(keyring: Keyring, patch: Path, content: bytes) -> None:
    sig = Path(str(patch) + ".sig")
    sig.write_bytes(content)
    assert refused(patch, sig, keyring.homedir) == (
        f"{PATCH}.sig: is empty, not an OpenPGP signature"
    )


def test_signature_larger_than_64_kib_is_refused(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr)
    sig.write_bytes(sig.read_bytes() + b"\0" * (1024 * 1024))
    message = refused(patch, sig, keyring.homedir)
    assert message == f"{PATCH}.sig: signature is larger than 64 KiB"


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
def test_two_concatenated_signatures_are_refused(
    keyring: Keyring, patch: Path, tmp_path: Path, armor: bool
) -> None:
    first = sign(keyring, patch, keyring.packager_fpr, out=tmp_path / "a.sig", armor=armor)
    second = sign(keyring, patch, keyring.master_fpr, out=tmp_path / "b.sig", armor=armor)
    sig = Path(str(patch) + ".sig")
    sig.write_bytes(first.read_bytes() + second.read_bytes())
    message = refused(patch, sig, keyring.homedir)
    assert message == f"{PATCH}.sig: holds 2 signatures; exactly one is accepted"


def test_fifo_as_signature_is_refused_without_hanging(keyring: Keyring, patch: Path) -> None:
    sig = Path(str(patch) + ".sig")
    os.mkfifo(sig)
    assert refused(patch, sig, keyring.homedir) == f"{PATCH}.sig: not a regular file"


def test_missing_data_file_is_refused(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr)
    patch.unlink()
    assert refused(patch, sig, keyring.homedir) == f"{PATCH}: no such file"


def test_gpg_that_hangs_is_stopped_by_the_timeout(
    keyring: Keyring, patch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in gpg first on PATH that never answers (and whose child holds the pipes).
    sig = sign(keyring, patch, keyring.packager_fpr)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "gpg"
    stand_in.write_text("#!/bin/sh\nsleep 30\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    with pytest.raises(SignatureError) as caught:
        verify_detached(patch, sig, keyring.homedir, timeout=0.5)
    assert time.monotonic() - started < 10
    assert str(caught.value) == f"{PATCH}: verifying the signature: gpg did not finish within 0.5 s"


# --------------------------------------------------------------------------------------------
# The keyring itself


def test_missing_keyring_is_named_with_init_hint(keyring: Keyring, patch: Path) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr)
    missing = patch.parent / "etc" / "pacman.d" / "gnupg"
    message = refused(patch, sig, missing)
    assert message.startswith(f"keyring {missing} does not exist")
    assert "pacman-key --init" in message


def test_empty_keyring_dir_is_refused_and_left_empty(
    keyring: Keyring, patch: Path, tmp_path: Path
) -> None:
    sig = sign(keyring, patch, keyring.packager_fpr)
    empty = tmp_path / "gnupg"
    empty.mkdir(mode=0o700)
    message = refused(patch, sig, empty)
    assert message.startswith(f"keyring {empty} holds no public keys")
    assert "pacman-key --init" in message
    assert list(empty.iterdir()) == []


# --------------------------------------------------------------------------------------------
# SigLevel


def test_siglevels_are_pacmans_words() -> None:
    assert SIGLEVELS == ("Required", "Optional", "Never")


def test_required_accepts_a_good_signature(keyring: Keyring, patch: Path) -> None:
    sign(keyring, patch, keyring.packager_fpr)
    info = check_signature(patch, "Required", keyring.homedir)
    assert info is not None and info.fingerprint == keyring.packager_fpr


def test_required_refuses_a_missing_signature(keyring: Keyring, patch: Path) -> None:
    with pytest.raises(SignatureError) as caught:
        check_signature(patch, "Required", keyring.homedir)
    assert str(caught.value) == (
        f"{PATCH}: no signature ({PATCH}.sig missing) and SigLevel is Required"
    )


def test_required_refuses_an_untrusted_signature(keyring: Keyring, patch: Path) -> None:
    sign(keyring, patch, keyring.untrusted_fpr)
    with pytest.raises(SignatureError, match="untrusted key"):
        check_signature(patch, "Required", keyring.homedir)


def test_optional_accepts_a_missing_signature(keyring: Keyring, patch: Path) -> None:
    assert check_signature(patch, "Optional", keyring.homedir) is None


def test_optional_verifies_a_present_signature(keyring: Keyring, patch: Path) -> None:
    sign(keyring, patch, keyring.master_fpr)
    info = check_signature(patch, "Optional", keyring.homedir)
    assert info is not None and info.trust == "ultimate"


def test_optional_refuses_a_present_bad_signature(keyring: Keyring, patch: Path) -> None:
    sign(keyring, patch, keyring.packager_fpr)
    patch.write_bytes(b"swapped content")
    with pytest.raises(SignatureError, match=r"signature is invalid \(BADSIG\)"):
        check_signature(patch, "Optional", keyring.homedir)


def test_optional_refuses_a_dangling_signature_symlink(keyring: Keyring, patch: Path) -> None:
    Path(str(patch) + ".sig").symlink_to(patch.parent / "gone.sig")
    with pytest.raises(SignatureError, match="cannot read signature"):
        check_signature(patch, "Optional", keyring.homedir)


def test_never_checks_nothing(keyring: Keyring, patch: Path, tmp_path: Path) -> None:
    assert check_signature(patch, "Never", tmp_path / "no-keyring") is None
    Path(str(patch) + ".sig").write_bytes(b"garbage")
    assert check_signature(patch, "Never", tmp_path / "no-keyring") is None


def test_explicit_signature_path_is_used(keyring: Keyring, patch: Path, tmp_path: Path) -> None:
    elsewhere = sign(keyring, patch, keyring.packager_fpr, out=tmp_path / "detached.bin")
    info = check_signature(patch, "Required", keyring.homedir, sig=elsewhere)
    assert info is not None and info.fingerprint == keyring.packager_fpr


@pytest.mark.parametrize("level", ["required", "TrustAll", "Optional TrustAll", ""])
def test_unknown_siglevel_is_a_config_error(keyring: Keyring, patch: Path, level: str) -> None:
    with pytest.raises(ConfigError, match="is not one of Required, Optional, Never"):
        check_signature(patch, level, keyring.homedir)


# --------------------------------------------------------------------------------------------
# Signing (clp build --sign)


def test_sign_detached_round_trip(keyring: Keyring, patch: Path) -> None:
    before = set(patch.parent.iterdir())
    out = sign_detached(patch, keyring.packager_fpr, homedir=keyring.signer_home)
    assert out == Path(str(patch) + ".sig")
    assert set(patch.parent.iterdir()) == before | {out}  # no temporary file left behind
    assert out.read_bytes()[0] & 0x80  # binary, not armored
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    info = check_signature(patch, "Required", keyring.homedir)
    assert info is not None and info.fingerprint == keyring.packager_fpr


def test_sign_detached_replaces_an_old_signature(
    keyring: Keyring, patch: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sigs" / "patch.sig"
    out.parent.mkdir()
    out.write_bytes(b"stale")
    assert sign_detached(patch, keyring.packager_fpr, keyring.signer_home, out=out) == out
    assert verify_detached(patch, out, keyring.homedir).trust == "full"


def test_sign_detached_with_unknown_key_fails_with_gpgs_reason(
    keyring: Keyring, patch: Path
) -> None:
    with pytest.raises(SignatureError) as caught:
        sign_detached(patch, "nobody@nowhere.invalid", homedir=keyring.signer_home)
    message = str(caught.value)
    assert message.startswith(f"{PATCH}: cannot sign with key nobody@nowhere.invalid:")
    assert "No secret key" in message
    assert "\n" not in message
    assert not Path(str(patch) + ".sig").exists()


def test_sign_detached_refuses_a_missing_file(keyring: Keyring, tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="no such file"):
        sign_detached(tmp_path / PATCH, keyring.packager_fpr, keyring.signer_home)


# --------------------------------------------------------------------------------------------
# A keyring made by pacman-key itself


@pytest.fixture
def pacman_keyring(keyring: Keyring, tmp_path: Path) -> Iterator[Path]:
    if shutil.which("pacman-key") is None:
        pytest.skip("pacman-key is not installed (Debian: pacman-package-manager)")
    base, owned = short_dir(tmp_path)
    home = base / "pk"
    try:
        _pacman_key(home, "--init")
        kill_agent(home)  # --init leaves an agent running; we check below that none restarts
        for fpr in (keyring.packager_fpr, keyring.untrusted_fpr):
            key_file = base / f"{fpr}.asc"
            key_file.write_bytes(export_public(keyring.signer_home, fpr))
            _pacman_key(home, "--add", str(key_file))
        _pacman_key(home, "--lsign-key", keyring.packager_fpr)
        kill_agent(home)
        yield home
    finally:
        kill_agent(home)
        if owned:
            shutil.rmtree(base, ignore_errors=True)


def _pacman_key(home: Path, *args: str) -> None:
    subprocess.run(
        ["pacman-key", "--gpgdir", str(home), *args],
        capture_output=True,
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_pacman_key_lsigned_key_verifies_and_unsigned_key_does_not(
    keyring: Keyring, pacman_keyring: Path, patch: Path, tmp_path: Path
) -> None:
    assert (pacman_keyring / "pubring.gpg").is_file()  # pacman-key's layout, not pubring.kbx
    sig = sign(keyring, patch, keyring.packager_fpr)
    info = check_signature(patch, "Required", pacman_keyring)
    assert info == SignatureInfo(keyring.packager_fpr, "Packager <packager@localhost>", "full")

    other = tmp_path / "CLPR261126.clp"
    other.write_bytes(b"second patch")
    sign(keyring, other, keyring.untrusted_fpr)
    with pytest.raises(SignatureError, match=f"untrusted key {keyring.untrusted_fpr}"):
        check_signature(other, "Required", pacman_keyring)

    assert sig.exists()
    assert not _agent_running(pacman_keyring), "verifying must not start a gpg-agent"


def _agent_running(home: Path) -> bool:
    socket_path = subprocess.run(
        ["gpgconf", "--homedir", str(home), "--list-dirs", "agent-socket"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    with socket.socket(socket.AF_UNIX) as client:
        try:
            client.connect(socket_path)
        except OSError:
            return False
    return True
