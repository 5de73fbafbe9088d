#!/usr/bin/env bash
# Set up clp and run its main job end to end on a throwaway sandbox root (safe on any machine):
# build a signed sample patch, verify it, apply it, list it, roll it back; then pacman with clp's
# hooks: two transactions recorded, one diffed and undone. Nothing outside the sandbox directory
# is touched. PowerShell is not packaged for Debian, so the sandbox gets a
# stand-in interpreter that runs the scripts' bodies with /bin/sh (busybox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
clp=$PWD/.venv/bin/clp

sandbox=$(mktemp -d /tmp/clp-demo.XXXXXX)
root=$sandbox/root
echo ":: Sandbox root: $root"

# A minimal system: busybox for /bin/sh and the usual tools, a stand-in /usr/bin/pwsh.
busybox=$(command -v busybox || echo /bin/busybox)
mkdir -p "$root"/{usr/bin,etc/CLP,etc/pacman.d,var/lib/pacman,var/log,opt,tmp}
cp "$busybox" "$root/usr/bin/busybox"
ln -s usr/bin "$root/bin"
for applet in sh cat cp rm mkdir echo printf sed grep test; do ln -s busybox "$root/usr/bin/$applet"; done
cat > "$root/usr/bin/pwsh" <<'PWSH'
#!/bin/sh
# stand-in for PowerShell: pwsh -NoProfile -NonInteractive -File SCRIPT -> sh SCRIPT
[ "$1" = -NoProfile ] && [ "$2" = -NonInteractive ] && [ "$3" = -File ] || exit 64
shift 3; exec /bin/sh "$@"
PWSH
chmod 755 "$root/usr/bin/pwsh"
printf 'MACs hmac-sha1\n' > "$root/etc/demo.conf"

# A packager key, trusted by the sandbox's pacman keyring the way pacman-key --lsign-key does.
gnupg=$sandbox/gnupg; keyring=$root/etc/pacman.d/gnupg
mkdir -m 700 "$gnupg" "$keyring"
# gpg's chatter (trustdb checks, the key it signs) is shown only when a step fails.
quietly() { local out; out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }; }
quietly gpg --homedir "$gnupg" --batch --passphrase '' --quick-gen-key 'Demo Packager <demo@localhost>' ed25519 sign never
fpr=$(gpg --homedir "$gnupg" --batch --with-colons --list-keys 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
gpg --homedir "$gnupg" --batch --export "$fpr" > "$sandbox/packager.pub"
quietly gpg --homedir "$keyring" --batch --import "$sandbox/packager.pub"
quietly gpg --homedir "$keyring" --batch --passphrase '' --quick-gen-key 'Keyring Master <master@localhost>' ed25519 sign never
quietly gpg --homedir "$keyring" --batch --yes --quick-lsign-key "$fpr"

# The patch an author writes: metadata declaring the file it changes, and the two scripts.
"$clp" new CLPR261125 -C "$sandbox"
patch=$sandbox/CLPR261125
cat > "$patch/PKGINFO.meta" <<'META'
<Package>
  <Name>CLPR261125</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Description>Demo: stronger MACs in /etc/demo.conf</Description>
  <Severity>high</Severity>
  <Files><File path="/etc/demo.conf"/></Files>
  <HealthCheck timeout="10">grep -q hmac-sha2-512 /etc/demo.conf</HealthCheck>
</Package>
META
printf 'echo "patching /etc/demo.conf"\nsed -i s/hmac-sha1/hmac-sha2-512/ /etc/demo.conf\n' > "$patch/Install-Script.ps1"
printf 'echo "nothing to do: clp restores /etc/demo.conf from its snapshot"\n' > "$patch/Remove-Script.ps1"

echo; echo ":: clp build --sign"
"$clp" build "$patch" -o "$sandbox/CLPR261125.clp" --sign "$fpr" --gpg-homedir "$gnupg"
echo; echo ":: clp verify"
"$clp" --root "$root" verify "$sandbox/CLPR261125.clp"
echo; echo ":: clp apply"
"$clp" --root "$root" apply "$sandbox/CLPR261125.clp" --noconfirm
echo "   /etc/demo.conf now: $(cat "$root/etc/demo.conf")"
echo; echo ":: clp list"
"$clp" --root "$root" list
echo; echo ":: clp rollback"
"$clp" --root "$root" rollback CLPR261125 --noconfirm
echo "   /etc/demo.conf now: $(cat "$root/etc/demo.conf")"
echo; echo ":: clp list"
"$clp" --root "$root" list

# pacman with clp's hooks in the sandbox: every transaction recorded, diffed, undone. pacman runs
# the hooks chrooted into the root, so this part runs in a private mount namespace in which the
# host's libraries and this checkout are visible read-only (tests/kits/hookkit.py).
.venv/bin/python - "$root" <<'PY'  # from the checkout: tests.kits is importable
import sys
from pathlib import Path

from tests.kits.hookkit import HookRoot
from tests.kits.pkgkit import CACHE, make_package

root = HookRoot(Path(sys.argv[1]))


def show(title, result):
    print(f"\n:: {title}")
    print((result.stdout + result.stderr).rstrip())
    if result.returncode != 0:
        sys.exit(result.returncode)


for version, port in (("1.0-1", "22"), ("2.0-1", "2222")):
    package = make_package(root.root / CACHE, "demo-app", version,
                           {"etc/demo-app.conf": f"Port {port}\n".encode()})
    show(f"pacman -U demo-app {version} (clp's hooks record it)", root.pacman("-U", package))
show("clp transactions", root.clp("transactions"))
show("clp diff 2", root.clp("diff", "2"))
show("clp undo-transaction 2", root.clp("undo-transaction", "2", "--noconfirm"))
print(f"   /etc/demo-app.conf now: {(root.root / 'etc/demo-app.conf').read_text().strip()}")
show("clp transactions", root.clp("transactions"))
PY

gpgconf --homedir "$gnupg" --kill gpg-agent 2>/dev/null || true
gpgconf --homedir "$keyring" --kill gpg-agent 2>/dev/null || true
echo; echo ":: Done. The sandbox is $sandbox (remove it with: rm -rf $sandbox)"
