#!/usr/bin/env python3
"""Trunk post-build hook: allow exactly Trunk's own inline bootstrap script in the page's
Content-Security-Policy, by hash.

The page's CSP forbids inline script (so nothing a model file carries can ever run), but Trunk
injects one small inline <script type="module"> that loads the wasm. This adds
'sha256-<digest>' of that script, and of nothing else, to `script-src` in dist/index.html.
"""
import base64
import hashlib
import os
import re
import sys

path = os.path.join(os.environ.get("TRUNK_STAGING_DIR", "dist"), "index.html")
html = open(path, encoding="utf-8").read()
scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
if not scripts:
    sys.exit(f"csp_hash: no inline script found in {path}")
hashes = " ".join(
    "'sha256-%s'" % base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() for s in scripts
)
new, n = re.subn(r"(script-src 'self')", r"\1 " + hashes, html, count=1)
if n != 1:
    sys.exit(f"csp_hash: no `script-src 'self'` in the Content-Security-Policy of {path}")
open(path, "w", encoding="utf-8").write(new)
