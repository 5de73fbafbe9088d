"""Detached OpenPGP signatures: verify a file against a keyring the way pacman-key does, and sign.

`gpg --verify` exits 0 for a good signature by a key nobody trusts, so the exit code proves
nothing. We read gpg's machine-readable status lines and accept exactly one signature that is
GOODSIG + VALIDSIG by a key the keyring trusts fully or ultimately (TRUST_FULLY/TRUST_ULTIMATE),
which is what `pacman-key --verify` accepts and what `pacman-key --lsign-key` grants.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import queue
import re
import shutil
import signal
import stat
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from clp_alpm.atomicfile import write_atomically
from clp_alpm.errors import ConfigError, SignatureError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

SIGLEVELS = ("Required", "Optional", "Never")

# pacman's keyring on the target system (under --root); clp.conf `Keyring =` overrides it.
PACMAN_KEYRING = "/etc/pacman.d/gnupg"

MAX_SIGNATURE_BYTES = 64 * 1024
# Streaming data to gpg: pieces queued for its writer thread, and the pipe's size.
_FEED_QUEUE = 8
_PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Signing may wait for the author to type a passphrase into pinentry.
SIGN_TIMEOUT = 300.0

_STATUS_PREFIX = "[GNUPG:] "
_PUBRING_NAMES = ("pubring.gpg", "pubring.kbx")
_OPENPGP_SIGNATURE_TAG = 2
_BINARY_DOCUMENT_CLASS = "00"
_ARMOR_BLOCK = re.compile(
    r"-----BEGIN PGP SIGNATURE-----[ \t]*\r?\n(.*?)-----END PGP SIGNATURE-----[ \t]*",
    re.DOTALL,
)
_TRUST_WORDS = {"TRUST_FULLY": "full", "TRUST_ULTIMATE": "ultimate"}


@dataclass(frozen=True)
class SignatureInfo:
    """Who made a signature that verified. `fingerprint` is the primary key's."""

    fingerprint: str
    uid: str | None
    trust: str  # "full" | "ultimate"


@dataclass(frozen=True)
class _GpgRun:
    returncode: int
    status: list[tuple[str, list[str]]]
    stdout: bytes
    stderr: str


# --------------------------------------------------------------------------------------------
# Public API


def check_signature(
    data: Path,
    siglevel: str,
    keyring: StrPath,
    sig: Path | None = None,
    *,
    setting: str = "SigLevel",
    hint: str = "",
) -> SignatureInfo | None:
    """Apply `siglevel` to `data`: verify its detached signature when the level asks for it.
    `setting` names the clp.conf key the level comes from, `hint` ends the message of a
    missing signature (what the administrator can do about it).

    Returns None when nothing was verified (SigLevel Never, or Optional without a signature).
    """
    data = Path(data)
    sig = Path(str(data) + ".sig") if sig is None else Path(sig)
    if not signature_wanted(data.name, sig, siglevel, setting=setting, hint=hint):
        return None
    return verify_detached(data, sig, keyring)


def signature_wanted(
    name: str, sig: Path, siglevel: str, *, setting: str = "SigLevel", hint: str = ""
) -> bool:
    """Whether `siglevel` has the signature `sig` of the file `name` checked: False for Never
    and for Optional without a signature; SignatureError for Required without one."""
    if siglevel not in SIGLEVELS:
        raise ConfigError(f"SigLevel {siglevel!r} is not one of {', '.join(SIGLEVELS)}")
    if siglevel == "Never":
        return False
    # lexists: a dangling symlink is a signature that cannot be read, not a missing one.
    if os.path.lexists(sig):
        return True
    if siglevel == "Optional":
        return False
    raise SignatureError(
        f"{name}: no signature ({sig.name} missing) and {setting} is Required{hint}"
    )


class StreamedVerification:
    """gpg checking the detached signature `sig` over bytes handed to it as they are read
    elsewhere (`gpg --verify SIG -`): the file is read once for a copy and its signature.

    `feed(chunk)` each piece in order, then `finish()` for the verdict (SignatureError, or
    who signed). gpg stopping early (a signature it cannot use) does not stop the feeding:
    its verdict comes at `finish()`."""

    def __init__(self, name: str, sig: Path, keyring: StrPath, timeout: float = 60) -> None:
        self._name = Path(name)
        self._sig = Path(sig)
        self._keyring = Path(keyring)
        self._timeout = timeout
        _require_keyring(self._keyring)
        _require_one_detached_signature(_read_signature(self._sig), self._sig)
        args = [
            "--homedir",
            str(self._keyring),
            *_VERIFY_OPTIONS,
            "--verify",
            os.path.abspath(self._sig),
            "-",
        ]
        self._gpg = _GpgProcess(args, _clean_environment(), f"{name}: verifying the signature")
        # A thread writes to gpg, so that gpg hashes while the caller reads, copies and
        # checks the next pieces; the queue bounds the memory held meanwhile.
        self._pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=_FEED_QUEUE)
        self._writer = threading.Thread(target=self._write_pieces, daemon=True)
        self._writer.start()

    def _write_pieces(self) -> None:
        open_ = True
        while (piece := self._pieces.get()) is not None:
            if open_:
                open_ = self._gpg.write(piece)

    def feed(self, chunk: bytes) -> None:
        self._pieces.put(bytes(chunk))

    def update(self, data: bytes, /) -> None:
        """`feed`, by the name the archive readers hand every byte to (a Hasher)."""
        self.feed(data)

    def _close_feed(self) -> None:
        if self._writer.is_alive():
            self._pieces.put(None)
            self._writer.join()

    def finish(self) -> SignatureInfo:
        self._close_feed()
        run = self._gpg.wait(self._timeout)
        info = _judge_verification(run, self._name, self._sig, self._keyring)
        _refuse_disabled_key(info.fingerprint, self._sig, self._keyring, self._timeout)
        return info

    def abandon(self) -> None:
        """Stop gpg (the copy failed): no verdict is wanted."""
        self._gpg.kill()  # the writer's next write fails, and it stops at the sentinel
        self._close_feed()


def verify_detached(data: Path, sig: Path, keyring: StrPath, timeout: float = 60) -> SignatureInfo:
    """Verify `sig`, a detached signature of `data`, against the gpg homedir `keyring`."""
    data, sig, keyring = Path(data), Path(sig), Path(keyring)
    _require_keyring(keyring)
    _require_regular_file(data)
    raw = _read_signature(sig)
    _require_one_detached_signature(raw, sig)
    run = _run_gpg(
        [
            "--homedir",
            str(keyring),
            *_VERIFY_OPTIONS,
            "--verify",
            "-",
            os.path.abspath(data),
        ],
        env=_clean_environment(),
        stdin=raw,
        timeout=timeout,
        what=f"{data.name}: verifying the signature",
    )
    info = _judge_verification(run, data, sig, keyring)
    _refuse_disabled_key(info.fingerprint, sig, keyring, timeout)
    return info


def sign_detached(
    data: Path, key: str, homedir: Path | None = None, out: Path | None = None
) -> Path:
    """Write a binary detached signature of `data` made with `key` to `out` (default data.sig).

    The file appears atomically: a reader sees no signature or the whole one.
    """
    data = Path(data)
    out = Path(str(data) + ".sig") if out is None else Path(out)
    if not key or any(ch in key for ch in "\0\r\n"):
        raise SignatureError(f"{data.name}: {key!r} is not a key id")
    _require_regular_file(data)
    home_args = ["--homedir", str(homedir)] if homedir is not None else []
    run = _run_gpg(
        [
            *home_args,
            "--batch",
            "--no-armor",
            "--no-textmode",
            "--local-user",
            key,
            "--detach-sign",
            "--output",
            "-",
            "--",
            os.path.abspath(data),
        ],
        env=_signing_environment(),
        stdin=None,
        timeout=SIGN_TIMEOUT,
        what=f"{data.name}: signing",
    )
    created = [args for keyword, args in run.status if keyword == "SIG_CREATED"]
    if run.returncode != 0 or not run.stdout or not created:
        raise SignatureError(
            f"{data.name}: cannot sign with key {key}: {_gpg_reason(run.stderr, run.returncode)}"
        )
    if len(created) != 1 or created[0][:1] != ["D"]:
        raise SignatureError(
            f"{data.name}: gpg made {len(created)} signatures with key {key}; expected one "
            "detached signature (check local-user in gpg.conf)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, run.stdout)
    return out


# --------------------------------------------------------------------------------------------
# Checks before gpg runs


def _require_keyring(keyring: Path) -> None:
    if not keyring.is_dir():
        raise SignatureError(
            f"keyring {keyring} does not exist; create it with pacman-key --init "
            "(and pacman-key --populate)"
        )
    # Without a public keyring gpg would create an empty one inside the system keyring dir.
    if not any((keyring / name).is_file() for name in _PUBRING_NAMES):
        raise SignatureError(
            f"keyring {keyring} holds no public keys; create it with pacman-key --init "
            "(and pacman-key --populate)"
        )


def _require_regular_file(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SignatureError(f"{path.name}: no such file") from None
    except OSError as exc:
        raise SignatureError(f"{path.name}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SignatureError(f"{path.name}: not a regular file")


def _read_signature(sig: Path) -> bytes:
    # O_NONBLOCK so that a FIFO planted as the .sig cannot hang us; we refuse it right after.
    try:
        fd = os.open(sig, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SignatureError(f"{sig.name}: cannot read signature ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SignatureError(f"{sig.name}: not a regular file")
        if st.st_size > MAX_SIGNATURE_BYTES:
            raise SignatureError(f"{sig.name}: signature is larger than 64 KiB")
        raw = handle.read(MAX_SIGNATURE_BYTES + 1)
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"{sig.name}: signature is larger than 64 KiB")
    return raw


def _require_one_detached_signature(raw: bytes, sig: Path) -> None:
    """Refuse anything but exactly one OpenPGP signature packet (binary or ASCII-armored)."""
    if not raw.strip():
        raise SignatureError(f"{sig.name}: is empty, not an OpenPGP signature")
    try:
        packets = _signature_packets(raw)
    except ValueError:
        raise SignatureError(f"{sig.name}: is not a detached OpenPGP signature") from None
    if packets != 1:
        raise SignatureError(f"{sig.name}: holds {packets} signatures; exactly one is accepted")


def _signature_packets(raw: bytes) -> int:
    """Number of signature packets in `raw`; ValueError if it holds anything else."""
    if raw[0] & 0x80:
        return _count_binary_signature_packets(raw)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("neither binary nor ASCII armor") from None
    blocks = list(_ARMOR_BLOCK.finditer(text))
    if not blocks or _ARMOR_BLOCK.sub("", text).strip():
        raise ValueError("text outside a PGP SIGNATURE block")
    return sum(_count_binary_signature_packets(_dearmor(block.group(1))) for block in blocks)


def _dearmor(body: str) -> bytes:
    lines = [line.strip() for line in body.splitlines()]
    if "" in lines:
        # Armor headers ("Comment: ...") end at the first blank line.
        blank = lines.index("")
        if all(":" in line for line in lines[:blank]):
            lines = lines[blank + 1 :]
    payload = [line for line in lines if line and not (line.startswith("=") and len(line) == 5)]
    try:
        return base64.b64decode("".join(payload), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("bad base64 in armor") from None


def _count_binary_signature_packets(raw: bytes) -> int:
    """Walk OpenPGP packet headers (RFC 4880 §4.2); every packet must be a signature."""
    if not raw:
        raise ValueError("empty")
    pos, count = 0, 0
    while pos < len(raw):
        header = raw[pos]
        if not header & 0x80:
            raise ValueError("not a packet header")
        if header & 0x40:
            tag = header & 0x3F
            length, pos = _new_format_length(raw, pos + 1)
        else:
            tag = (header >> 2) & 0x0F
            length, pos = _old_format_length(raw, pos + 1, header & 0x03)
        if tag != _OPENPGP_SIGNATURE_TAG:
            raise ValueError(f"packet tag {tag} is not a signature")
        if pos + length > len(raw):
            raise ValueError("truncated packet")
        pos += length
        count += 1
    return count


def _new_format_length(raw: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(raw):
        raise ValueError("truncated header")
    first = raw[pos]
    if first < 192:
        return first, pos + 1
    if first < 224:
        if pos + 2 > len(raw):
            raise ValueError("truncated header")
        return ((first - 192) << 8) + raw[pos + 1] + 192, pos + 2
    if first == 255:
        if pos + 5 > len(raw):
            raise ValueError("truncated header")
        return int.from_bytes(raw[pos + 1 : pos + 5], "big"), pos + 5
    # Partial body lengths are for streamed data, never for a signature packet.
    raise ValueError("partial body length")


def _old_format_length(raw: bytes, pos: int, length_type: int) -> tuple[int, int]:
    if length_type == 3:
        raise ValueError("indeterminate length")
    size = (1, 2, 4)[length_type]
    if pos + size > len(raw):
        raise ValueError("truncated header")
    return int.from_bytes(raw[pos : pos + size], "big"), pos + size


# --------------------------------------------------------------------------------------------
# Running gpg

# Options for every verification:
# - --batch --no-tty: never prompt; --no-permission-warning as pacman-key passes it.
# - No network and no key import: a signature must verify against the keyring as it is, so
#   auto-key-retrieve/locate/import and dirmngr are off even if the keyring's gpg.conf says
#   otherwise (command-line options override gpg.conf).
# - We do NOT pass --lock-never. pacman-key --init already writes lock-never into the pacman
#   keyring's gpg.conf, so there gpg behaves exactly as under pacman. For any other keyring
#   locking stays on, so a concurrent gpg cannot corrupt the trustdb; a stale lock can only make
#   gpg wait, and our timeout bounds that.
# - We do not pass --no-auto-check-trustdb: like pacman (gpgme) and pacman-key --verify we let
#   gpg refresh a stale trustdb, which is the only write gpg makes to the keyring on --verify.
_VERIFY_OPTIONS = (
    "--batch",
    "--no-tty",
    "--no-permission-warning",
    "--no-auto-key-retrieve",
    "--no-auto-key-locate",
    "--no-auto-key-import",
    "--disable-dirmngr",
)


def _clean_environment() -> dict[str, str]:
    """Just enough for gpg: a PATH, and the C locale so its messages are stable."""
    return {"PATH": os.environ.get("PATH") or os.defpath, "LANG": "C", "LC_ALL": "C"}


def _signing_environment() -> dict[str, str]:
    """The author's environment (GNUPGHOME, GPG_TTY, DISPLAY reach pinentry), C locale."""
    env = dict(os.environ)
    for name in ("GPG_AGENT_INFO", "LANGUAGE"):
        env.pop(name, None)
    env.update(LANG="C", LC_ALL="C")
    return env


def _find_gpg(env: dict[str, str]) -> str:
    gpg = shutil.which("gpg", path=env.get("PATH"))
    if gpg is None:
        raise SignatureError("gpg is not installed (install gnupg to check signatures)")
    return gpg


def _run_gpg(
    args: list[str],
    *,
    env: dict[str, str],
    stdin: bytes | None,
    timeout: float,
    what: str,
) -> _GpgRun:
    """Run gpg with its status lines on a private pipe; SignatureError on timeout."""
    gpg = _find_gpg(env)
    status_read, status_write = os.pipe()
    try:
        proc = subprocess.Popen(
            [gpg, "--status-fd", str(status_write), *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(status_write,),
            # Own process group, so that a timeout kills whatever gpg started with it too
            # (gpg-agent detaches into its own session and survives, as it should).
            start_new_session=True,
        )
    except OSError as exc:
        os.close(status_read)
        raise SignatureError(f"{what}: cannot run gpg ({exc.strerror})") from None
    finally:
        os.close(status_write)
    status_chunks: list[bytes] = []
    with os.fdopen(status_read, "rb") as status_pipe:
        reader = threading.Thread(
            target=lambda: status_chunks.append(status_pipe.read()), daemon=True
        )
        reader.start()
        try:
            stdout, stderr = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise SignatureError(f"{what}: gpg did not finish within {timeout:g} s") from None
        reader.join(timeout=5)
    return _GpgRun(
        returncode=proc.returncode,
        status=_parse_status(b"".join(status_chunks)),
        stdout=stdout,
        stderr=stderr.decode("utf-8", "replace"),
    )


class _GpgProcess:
    """gpg running with its data written to its standard input piece by piece, its status
    lines, standard output and standard error read by threads meanwhile."""

    def __init__(self, args: list[str], env: dict[str, str], what: str) -> None:
        gpg = _find_gpg(env)
        self._what = what
        status_read, status_write = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [gpg, "--status-fd", str(status_write), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                pass_fds=(status_write,),
                start_new_session=True,  # as _run_gpg: a kill takes its helpers too
            )
        except OSError as exc:
            os.close(status_read)
            raise SignatureError(f"{what}: cannot run gpg ({exc.strerror})") from None
        finally:
            os.close(status_write)
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):  # a larger pipe: fewer wake-ups (Linux)
            fcntl.fcntl(self._proc.stdin.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
        self._outputs: dict[str, bytes] = {}
        self._threads = [
            self._drain("status", os.fdopen(status_read, "rb")),
            self._drain("stdout", self._proc.stdout),
            self._drain("stderr", self._proc.stderr),
        ]

    def _drain(self, key: str, stream: IO[bytes] | None) -> threading.Thread:
        def read() -> None:
            assert stream is not None
            with stream:
                self._outputs[key] = stream.read()

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    def write(self, chunk: bytes) -> bool:
        """Hand gpg `chunk`; False once gpg has stopped reading."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            return False
        return True

    def wait(self, timeout: float) -> _GpgRun:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SignatureError(f"{self._what}: gpg did not finish within {timeout:g} s") from None
        for thread in self._threads:
            thread.join(timeout=5)
        return _GpgRun(
            returncode=self._proc.returncode,
            status=_parse_status(self._outputs.get("status", b"")),
            stdout=self._outputs.get("stdout", b""),
            stderr=self._outputs.get("stderr", b"").decode("utf-8", "replace"),
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        self._proc.wait()


def _parse_status(raw: bytes) -> list[tuple[str, list[str]]]:
    lines = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith(_STATUS_PREFIX):
            keyword, _, rest = line[len(_STATUS_PREFIX) :].partition(" ")
            lines.append((keyword, rest.split(" ") if rest else []))
    return lines


def _gpg_reason(stderr: str, returncode: int) -> str:
    """gpg's own last word, as one line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    gpg_lines = [line.removeprefix("gpg: ") for line in lines if line.startswith("gpg: ")]
    if gpg_lines:
        return gpg_lines[-1]
    return lines[-1] if lines else f"gpg exited with status {returncode}"


# --------------------------------------------------------------------------------------------
# Judging gpg's verdict


def _judge_verification(run: _GpgRun, data: Path, sig: Path, keyring: StrPath) -> SignatureInfo:
    status: dict[str, list[str]] = {}
    for keyword, args in run.status:
        status.setdefault(keyword, args)
    count = sum(1 for keyword, _ in run.status if keyword == "NEWSIG")

    if count == 0:
        if "NODATA" in status:
            raise SignatureError(f"{sig.name}: is not a detached OpenPGP signature")
        raise SignatureError(
            f"{data.name}: signature could not be checked: {_gpg_reason(run.stderr, 2)}"
        )
    if count != 1:
        raise SignatureError(f"{sig.name}: holds {count} signatures; exactly one is accepted")
    _refuse_problems(status, data, sig, keyring, run)

    good, valid = status.get("GOODSIG"), status.get("VALIDSIG")
    if good is None or valid is None or len(valid) < 9 or run.returncode != 0:
        raise SignatureError(
            f"{data.name}: signature is invalid ({_gpg_reason(run.stderr, run.returncode)})"
        )
    signing_fpr = valid[0].upper()
    primary_fpr = (valid[9] if len(valid) > 9 else valid[0]).upper()
    if not good or not signing_fpr.endswith(good[0].upper()):
        raise SignatureError(f"{data.name}: signature is invalid (GOODSIG/VALIDSIG mismatch)")
    if valid[8] != _BINARY_DOCUMENT_CLASS:
        # A text-mode signature (class 01) also matches a copy with other line endings.
        raise SignatureError(
            f"{sig.name}: is a text-mode signature (class {valid[8]}); sign the file as binary"
        )
    trust = _trust_of(status, sig, primary_fpr)
    uid = _unescape_uid(" ".join(good[1:])) if len(good) > 1 else None
    return SignatureInfo(fingerprint=primary_fpr, uid=uid, trust=trust)


def _refuse_disabled_key(fpr: str, sig: Path, keyring: StrPath, timeout: float) -> None:
    """pacman-key --populate disables the keys a distribution revoked; libalpm refuses them
    (ALPM_SIGSTATUS_KEY_DISABLED) although gpg --verify still says TRUST_FULLY."""
    run = _run_gpg(
        ["--homedir", str(keyring), *_VERIFY_OPTIONS, "--with-colons", "--fixed-list-mode",
         "--list-keys", "--", fpr],
        env=_clean_environment(),
        stdin=None,
        timeout=timeout,
        what=f"{sig.name}: looking up key {fpr}",
    )  # fmt: skip
    pub = [line.split(":") for line in run.stdout.decode("utf-8", "replace").splitlines()]
    pub = [fields for fields in pub if fields[0] == "pub" and len(fields) > 11]
    if run.returncode != 0 or len(pub) != 1:
        raise SignatureError(
            f"{sig.name}: cannot look up key {fpr} in keyring {keyring}: "
            f"{_gpg_reason(run.stderr, run.returncode)}"
        )
    if "D" in pub[0][11]:
        raise SignatureError(
            f"{sig.name}: signature made by a disabled key {fpr} (the keyring marks it revoked)"
        )


def _refuse_problems(
    status: dict[str, list[str]], data: Path, sig: Path, keyring: StrPath, run: _GpgRun
) -> None:
    key = _signing_key(status)
    if "NO_PUBKEY" in status:
        raise SignatureError(
            f"{sig.name}: signature made by an unknown key {key} (not in keyring {keyring})"
        )
    if "REVKEYSIG" in status or "KEYREVOKED" in status:
        raise SignatureError(f"{sig.name}: signature made by a revoked key {key}")
    if "EXPKEYSIG" in status:
        raise SignatureError(f"{sig.name}: signature made by an expired key {key}")
    if "EXPSIG" in status:
        raise SignatureError(f"{sig.name}: signature has expired (EXPSIG)")
    if "BADSIG" in status:
        raise SignatureError(f"{data.name}: signature is invalid (BADSIG)")
    if "ERRSIG" in status:
        raise SignatureError(
            f"{data.name}: signature cannot be checked (ERRSIG: "
            f"{_gpg_reason(run.stderr, run.returncode)})"
        )


def _signing_key(status: dict[str, list[str]]) -> str:
    """Best name gpg gave for the signing key: primary fingerprint, else a key id."""
    valid = status.get("VALIDSIG") or []
    if len(valid) > 9:
        return valid[9].upper()
    errsig = status.get("ERRSIG") or []
    if len(errsig) > 6:
        return errsig[6].upper()
    for keyword in ("VALIDSIG", "EXPKEYSIG", "REVKEYSIG", "BADSIG", "NO_PUBKEY", "ERRSIG"):
        if status.get(keyword):
            return status[keyword][0].upper()
    return "(unknown)"


def _trust_of(status: dict[str, list[str]], sig: Path, fpr: str) -> str:
    trusted = [_TRUST_WORDS[word] for word in _TRUST_WORDS if word in status]
    other = [word for word in status if word.startswith("TRUST_") and word not in _TRUST_WORDS]
    if len(trusted) == 1 and not other:
        return trusted[0]
    if "TRUST_NEVER" in other:
        raise SignatureError(f"{sig.name}: signature made by a key the keyring distrusts {fpr}")
    raise SignatureError(
        f"{sig.name}: signature made by an untrusted key {fpr} "
        "(lsign it with pacman-key --lsign-key)"
    )


def _unescape_uid(uid: str) -> str:
    """gpg %XX-escapes user ids in status lines; undo that and drop control characters."""
    raw = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), uid.encode())
    text = raw.decode("utf-8", "replace")
    return "".join(ch for ch in text if ch.isprintable())


# --------------------------------------------------------------------------------------------
# Writing
