"""Every hostile or broken signature of a good patch, given to `clp apply` as a user would
(SigLevel Required, the default): exit 2, one line naming the problem, nothing changed in the
root or outside it. The keys are tests/kits/gpgkit.py's: a trusted packager, an untrusted, an
expired, a revoked key, and a stranger the keyring does not hold."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import INSTALL_OK, make_patch
from tests.kits.hostilekit import Fence, assert_refused


@dataclass(frozen=True)
class SigCase:
    id: str
    make: Callable[[gpgkit.Keyring, Path, Path, Fence], None]  # (keyring, patch, sig, fence)
    naming: tuple[str, ...]


def _signed_by(who: str) -> Callable[[gpgkit.Keyring, Path, Path, Fence], None]:
    def make(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
        gpgkit.sign(keyring, patch, getattr(keyring, f"{who}_fpr"), out=sig)

    return make


def _unsigned(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    sig.unlink(missing_ok=True)


def _of_another_file(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    other = patch.parent / "other.bin"
    other.write_bytes(b"another file\n")
    gpgkit.sign(keyring, other, keyring.packager_fpr, out=sig)


def _of_another_version(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    """The signature of version 2 of the same patch, beside version 1."""
    work = patch.parent / "v2"
    work.mkdir()
    v2 = make_patch(work, keyring, INSTALL_OK + "echo v2\n", extra="<Severity>low</Severity>")
    os.replace(f"{v2}.sig", sig)


def _truncated(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    gpgkit.sign(keyring, patch, keyring.packager_fpr, out=sig)
    sig.write_bytes(sig.read_bytes()[: len(sig.read_bytes()) // 2])


def _one_byte_changed(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    gpgkit.sign(keyring, patch, keyring.packager_fpr, out=sig)
    raw = bytearray(sig.read_bytes())
    raw[-5] ^= 0xFF  # inside the signature's MPIs: a well-formed packet, a wrong value
    sig.write_bytes(bytes(raw))


def _armored_garbage(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    sig.write_text(
        "-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJlIGF0IGFsbA==\n=AAAA\n"
        "-----END PGP SIGNATURE-----\n"
    )


def _two_one_bad(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    good = gpgkit.sign(keyring, patch, keyring.packager_fpr, out=patch.parent / "good.sig")
    bad = gpgkit.sign(keyring, patch, keyring.stranger_fpr, out=patch.parent / "bad.sig")
    sig.write_bytes(good.read_bytes() + bad.read_bytes())


def _two_good(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    good = gpgkit.sign(keyring, patch, keyring.packager_fpr, out=patch.parent / "good.sig")
    sig.write_bytes(good.read_bytes() * 2)


def _symlink_out_of_root(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    """The .sig a link to a file in the canary directory: the signature of another file."""
    other = fence.canary / "etc/keep"
    target = fence.canary / "keep.sig"
    gpgkit.sign(keyring, other, keyring.packager_fpr, out=target)
    sig.unlink(missing_ok=True)
    sig.symlink_to(target)


def _symlink_to_a_device(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    sig.unlink(missing_ok=True)
    sig.symlink_to("/dev/zero")


def _huge(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    gpgkit.sign(keyring, patch, keyring.packager_fpr, out=sig)
    sig.write_bytes(sig.read_bytes() + b"\0" * (4 << 20))


def _empty(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    sig.write_bytes(b"")


def _text_mode(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    gpgkit.sign(keyring, patch, keyring.packager_fpr, out=sig, textmode=True)


def _a_public_key(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    sig.write_bytes(gpgkit.export_public(keyring.signer_home, keyring.packager_fpr))


def _binary_key_packet(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    sig.write_bytes(gpgkit.export_public(keyring.signer_home, keyring.packager_fpr, armor=False))


def _a_directory(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    sig.unlink(missing_ok=True)
    sig.mkdir()


def _armor_with_text_around(keyring: gpgkit.Keyring, patch: Path, sig: Path, fence: Fence) -> None:
    armored = gpgkit.sign(keyring, patch, keyring.packager_fpr, out=sig, armor=True)
    armored.write_bytes(b"this patch is fine, trust me\n" + armored.read_bytes())


CASES = [
    SigCase("unsigned", _unsigned, ("no signature",)),
    SigCase("untrusted-key", _signed_by("untrusted"), ("untrusted key",)),
    SigCase("expired-key", _signed_by("expired"), ("expired key",)),
    SigCase("revoked-key", _signed_by("revoked"), ("revoked key",)),
    SigCase("key-not-in-keyring", _signed_by("stranger"), ("unknown key",)),
    SigCase("signature-of-another-file", _of_another_file, ("signature is invalid",)),
    SigCase("signature-of-another-version", _of_another_version, ("signature is invalid",)),
    SigCase("truncated", _truncated, ("not a detached OpenPGP signature",)),
    SigCase("one-byte-changed", _one_byte_changed, ("signature is invalid",)),
    SigCase("armored-garbage", _armored_garbage, ("not a detached OpenPGP signature",)),
    SigCase("two-signatures-one-bad", _two_one_bad, ("holds 2 signatures",)),
    SigCase("the-same-signature-twice", _two_good, ("holds 2 signatures",)),
    SigCase("symlink-out-of-the-root", _symlink_out_of_root, ("signature is invalid",)),
    SigCase("symlink-to-a-device", _symlink_to_a_device, ("no signature",)),
    SigCase("huge", _huge, ("larger than 64 KiB",)),
    SigCase("empty", _empty, ("empty",)),
    SigCase("text-mode", _text_mode, ("text-mode signature",)),
    SigCase("a-public-key-armored", _a_public_key, ("not a detached OpenPGP signature",)),
    SigCase("a-public-key-binary", _binary_key_packet, ("not a detached OpenPGP signature",)),
    SigCase("a-directory", _a_directory, ("no signature",)),
    SigCase(
        "armor-with-text-around", _armor_with_text_around, ("not a detached OpenPGP signature",)
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_hostile_signature_is_refused_by_apply(tmp_path, sandbox, keyring, clp, fence, case):
    (sandbox / "etc/app.conf").write_text("MACs hmac-sha1\n")
    work = tmp_path / "work"
    work.mkdir()
    patch = make_patch(work, None, INSTALL_OK)
    sig = Path(f"{patch}.sig")
    case.make(keyring, patch, sig, fence)
    fence.close()

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")

    assert_refused(result, fence, naming=case.naming)
    listed = clp("--root", str(sandbox), "list", "--json")
    assert json.loads(listed.stdout) == []
