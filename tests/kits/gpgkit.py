"""Throwaway gpg keyrings for tests, trusted the way pacman-key trusts keys.

`make_keyring(tmp)` builds two gpg homedirs:

- `homedir`: the verifying keyring, like /etc/pacman.d/gnupg. Its own master key is ultimately
  trusted (as pacman-key --init's local master key); the packager, expired and revoked keys are
  imported and locally signed by the master (as pacman-key --lsign-key does), so the packager key
  verifies TRUST_FULLY; the untrusted key is imported but not signed; the revoked key's
  revocation is imported after it was lsigned.
- `signer_home`: the secret keys of the packager, untrusted, expired, revoked and stranger keys.
  The stranger key is not in the verifying keyring at all (NO_PUBKEY).

Call `keyring.cleanup()` when done: it stops the gpg-agents and removes a directory that
make_keyring had to create itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# gpg-agent's socket path must fit in sun_path (108 bytes): "<homedir>/S.gpg-agent.browser".
_MAX_BASE_LEN = 60
# The expired key lives in 2020: valid for a day from this faked time, long expired now.
_EXPIRED_KEY_TIME = "20200101T000000"
_EXPIRED_SIGN_TIME = "20200101T010000"


@dataclass
class Keyring:
    base: Path
    homedir: Path
    signer_home: Path
    master_fpr: str
    packager_fpr: str
    untrusted_fpr: str
    expired_fpr: str
    revoked_fpr: str
    stranger_fpr: str
    owns_base: bool = False
    _faked_times: dict[str, str] = field(default_factory=dict)

    def home_of(self, fpr: str) -> Path:
        """The homedir that holds the secret key `fpr`."""
        return self.homedir if fpr == self.master_fpr else self.signer_home

    def cleanup(self) -> None:
        for home in (self.homedir, self.signer_home):
            kill_agent(home)
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)


def gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run gpg non-interactively in `home`; raise with gpg's stderr on failure."""
    proc = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--no-permission-warning", *args],
        input=input,
        capture_output=True,
        env=_gpg_env(),
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed:\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def kill_agent(home: Path) -> None:
    if home.is_dir():
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            env=_gpg_env(),
            timeout=30,
        )


def short_dir(tmp: Path) -> tuple[Path, bool]:
    """`tmp` if gpg-agent's socket fits under it, else a fresh short dir in /tmp (owned: True)."""
    if len(str(tmp)) <= _MAX_BASE_LEN:
        return tmp, False
    return Path(tempfile.mkdtemp(prefix="g", dir="/tmp")), True


def new_home(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True)
    path.chmod(0o700)
    return path


def generate_key(home: Path, uid: str, expire: str = "never", faked_time: str | None = None) -> str:
    """A fresh ed25519 signing key without passphrase; returns its fingerprint."""
    faked = ["--faked-system-time", faked_time] if faked_time else []
    gpg(home, *faked, "--passphrase", "", "--pinentry-mode", "loopback",
        "--quick-gen-key", uid, "ed25519", "sign", expire)  # fmt: skip
    return fingerprint(home, uid)


def fingerprint(home: Path, uid: str) -> str:
    listing = gpg(home, "--with-colons", "--list-keys", "--", uid).decode()
    for line in listing.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    raise RuntimeError(f"no key {uid} in {home}")


def export_public(home: Path, fpr: str, armor: bool = True) -> bytes:
    return gpg(home, *(["--armor"] if armor else []), "--export", fpr)


def make_keyring(tmp: Path) -> Keyring:
    base, owns_base = short_dir(Path(tmp))
    ring, signer = new_home(base / "ring"), new_home(base / "signer")
    try:
        master = generate_key(ring, "Master Key <master@localhost>")
        packager = generate_key(signer, "Packager <packager@localhost>")
        untrusted = generate_key(signer, "Untrusted <untrusted@localhost>")
        revoked = generate_key(signer, "Revoked <revoked@localhost>")
        stranger = generate_key(signer, "Stranger <stranger@localhost>")
        expired = generate_key(
            signer, "Expired <expired@localhost>", expire="1d", faked_time=_EXPIRED_KEY_TIME
        )
        for fpr in (packager, untrusted, revoked, expired):
            gpg(ring, "--import", input=export_public(signer, fpr))
        gpg(ring, "--quick-lsign-key", packager)
        gpg(ring, "--quick-lsign-key", revoked)
        # gpg refuses to certify an expired key, so certify it while it was still valid.
        gpg(ring, "--faked-system-time", _EXPIRED_SIGN_TIME, "--ignore-time-conflict",
            "--quick-lsign-key", expired)  # fmt: skip
        gpg(ring, "--import", input=revocation_certificate(signer, revoked))
        gpg(ring, "--check-trustdb")  # what pacman-key --updatedb does after --lsign-key
    except BaseException:
        for home in (ring, signer):
            kill_agent(home)
        if owns_base:
            shutil.rmtree(base, ignore_errors=True)
        raise
    return Keyring(
        base=base,
        homedir=ring,
        signer_home=signer,
        master_fpr=master,
        packager_fpr=packager,
        untrusted_fpr=untrusted,
        expired_fpr=expired,
        revoked_fpr=revoked,
        stranger_fpr=stranger,
        owns_base=owns_base,
        _faked_times={expired: _EXPIRED_SIGN_TIME},
    )


def revocation_certificate(home: Path, fpr: str) -> bytes:
    """The certificate gpg stored at key generation, made importable (gpg guards it with ':')."""
    text = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text()
    return text.replace(
        ":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----"
    ).encode()


def sign(keyring: Keyring, path: Path, fpr: str, out: Path | None = None, armor: bool = False,
         textmode: bool = False) -> Path:  # fmt: skip
    """Detached signature of `path` by the key `fpr`, written to `out` (default path.sig)."""
    out = Path(str(path) + ".sig") if out is None else Path(out)
    faked_time = keyring._faked_times.get(fpr)
    options = ["--faked-system-time", faked_time] if faked_time else []
    options += ["--armor"] if armor else ["--no-armor"]
    options += ["--textmode"] if textmode else []
    gpg(keyring.home_of(fpr), *options, "--yes", "--local-user", f"{fpr}!",
        "--output", str(out), "--detach-sign", str(path))  # fmt: skip
    return out


def _gpg_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GNUPGHOME", "GPG_AGENT_INFO")}
    env.update(LANG="C", LC_ALL="C")
    return env


def copy_home(home: Path, dest: Path) -> Path:
    """A private copy of a gpg homedir (without agent sockets or locks) to change trust in."""
    shutil.copytree(home, dest, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    dest.chmod(0o700)
    return dest


def copy_ring(keyring: Keyring, dest: Path) -> Path:
    """A private copy of the verifying keyring, e.g. as <root>/etc/pacman.d/gnupg."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    return copy_home(keyring.homedir, dest)
