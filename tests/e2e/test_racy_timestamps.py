"""The racy-file rule on a file system that keeps whole seconds (ext4 with 128-byte inodes).

A file rewritten within the second in which the previous snapshot read it keeps its ctime, and
with its size and mtime put back, every stat field its record holds. Only the racy margin
(observe.RACY_MARGIN_NS) makes the next snapshot read it again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import clp_alpm

REPO = Path(clp_alpm.__file__).resolve().parent.parent

SCENARIO = r"""
import hashlib, json, os, sys, time
from pathlib import Path
from clp_alpm.store.snapshots import SnapshotStore

mount = Path(sys.argv[1])
root = mount / "root"
(root / "etc").mkdir(parents=True)
conf = root / "etc/app.conf"
store = SnapshotStore(mount / "store")
for attempt in range(5):
    while time.time() % 1 > 0.2:  # the whole scenario within one second
        time.sleep(0.01)
    conf.write_bytes(b"first\n")
    first = store.take(root, ["/etc/app.conf"])
    old = conf.stat()
    conf.write_bytes(b"other\n")
    os.utime(conf, ns=(old.st_atime_ns, old.st_mtime_ns))
    now = conf.stat()
    if now.st_ctime_ns == old.st_ctime_ns:
        break
else:
    raise SystemExit("the rewrite never stayed within the second")
second = store.take(root, ["/etc/app.conf"], previous=first)
print(json.dumps({
    "ctime_ns": now.st_ctime_ns,
    "recorded": first.files[0].digest,
    "again": second.files[0].digest,
    "content": hashlib.sha256(b"other\n").hexdigest(),
}))
"""


def test_a_rewrite_within_the_same_second_is_read_again(tmp_path: Path) -> None:
    for tool in ("mkfs.ext4", "unshare", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    image, mount = tmp_path / "coarse.img", tmp_path / "mnt"
    mount.mkdir()
    with image.open("wb") as sparse:
        sparse.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], check=True,
                   capture_output=True)  # fmt: skip
    # mount -o loop frees its loop device when the namespace's mount goes with the process
    script = 'mount -o loop "$1" "$2" && exec "$3" -c "$4" "$2"'
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
         str(image), str(mount), sys.executable, SCENARIO],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    if done.returncode != 0 and "mount" in done.stderr and "clp_alpm" not in done.stderr:
        pytest.skip(f"no loop mount here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["ctime_ns"] % 1_000_000_000 == 0  # whole seconds: the case under test
    assert found["again"] == found["content"] != found["recorded"]
