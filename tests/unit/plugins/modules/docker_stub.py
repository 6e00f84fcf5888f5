"""A stand-in ``docker`` CLI for property tests: canned answers for the commands stack_info and
image_retag run, so generated option values never reach a real engine (the machine's engine
holds other tests' stacks). ``write_stub(directory)`` writes it as an executable and returns
its path; every call is appended to ``calls.log`` beside it, one JSON argv per line."""
from __future__ import annotations

import os
import sys

IMAGE = "sha256:" + "a" * 64
PREVIOUS = "sha256:" + "b" * 64

_SCRIPT = r'''#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as log:
    log.write(json.dumps(args) + "\n")
IMAGE, PREVIOUS = {image!r}, {previous!r}
def out(text, rc=0, err=""):
    sys.stdout.write(text)
    sys.stderr.write(err)
    sys.exit(rc)
if args[:1] == ["version"]:
    out(json.dumps({{"Client": {{"Version": "28.2.2"}}, "Server": {{"Version": "28.2.2"}}}}) + "\n")
if args[:1] == ["compose"]:
    if "config" in args:
        out(json.dumps({{"name": "fuzz", "services": {{"backend": {{}}, "frontend": {{}}}}}}))
    if "ps" in args:
        out(json.dumps({{"ID": "c1", "Name": "fuzz-backend-1", "Service": "backend"}}) + "\n")
    if "exec" in args:
        out("0003 (head)\n")
    out("", 1, "unknown compose command\n")
if args[:2] == ["container", "inspect"]:
    out(json.dumps([{{"Id": "c1", "Name": "/fuzz-backend-1", "Image": IMAGE,
                     "State": {{"Status": "running", "Running": True}}}}]))
if args[:2] == ["image", "inspect"]:
    ref = args[-1]
    if ref.endswith(":latest") or ref == IMAGE:
        out(json.dumps([{{"Id": IMAGE}}]))
    if ref.endswith(":previous") or ref == PREVIOUS:
        out(json.dumps([{{"Id": PREVIOUS}}]))
    out("[]\n", 1, "Error response from daemon: No such image: %s\n" % ref)
if args[:2] == ["image", "ls"]:
    repo = args[-1]
    out(json.dumps({{"Repository": repo, "Tag": "latest", "ID": IMAGE, "CreatedAt": "x"}}) + "\n"
        + json.dumps({{"Repository": repo, "Tag": "previous", "ID": PREVIOUS, "CreatedAt": "x"}}) + "\n")
if args[:2] == ["image", "tag"]:
    out("")
out("", 1, "docker stub: unexpected command %r\n" % (args,))
'''


def write_stub(directory) -> str:
    path = os.path.join(str(directory), "docker")
    with open(path, "w") as handle:
        handle.write(_SCRIPT.format(python=sys.executable, image=IMAGE, previous=PREVIOUS))
    os.chmod(path, 0o755)
    return path
