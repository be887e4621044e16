#!/usr/bin/env python3
"""Mint N distinct HS256 access tokens in Portcullis' format (RFC 9068 profile, the exact
header and claim members it accepts), one per line, so a run can defeat its verified-token
cache. Usage: mint_hs256.py SECRET_FILE N ISS AUD SUB ROLE"""
import base64, hashlib, hmac, json, os, sys, time

secret_file, n, iss, aud, sub, role = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
key = open(secret_file, "rb").read().strip()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
head = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}, separators=(",", ":")).encode())
now = int(time.time())
sid = os.urandom(16).hex()
out = sys.stdout
for i in range(n):
    claims = {"iss": iss, "aud": aud, "sub": sub, "role": role, "sid": sid,
              "jti": f"{i:x}-{os.urandom(6).hex()}", "iat": now, "nbf": now, "exp": now + 7200}
    signing = head + b"." + b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(key, signing, hashlib.sha256).digest())
    out.write((signing + b"." + sig).decode() + "\n")
