#!/usr/bin/env python3
"""A stand-in identity provider for the machine-client case: writes the JWKS of an RSA key and
prints one RS256 access token (RFC 9068 shape, as a client-credentials grant returns it) signed
with that key by openssl. Usage: mint_rs256.py KEY_PEM JWKS_OUT ISS AUD SUB SCOPE"""
import base64, json, os, subprocess, sys, time

key, jwks_out, iss, aud, sub, scope = sys.argv[1:7]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
jwk = {"kty": "RSA", "kid": "idp-1", "alg": "RS256", "use": "sig",
       "n": b64(bytes.fromhex(modulus)).decode(), "e": b64((65537).to_bytes(3, "big")).decode()}
with open(jwks_out, "w") as f:
    json.dump({"keys": [jwk]}, f)
now = int(time.time())  # valid for a day: minted once, it must outlive the longest run
head = b64(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": "idp-1"}, separators=(",", ":")).encode())
claims = {"iss": iss, "aud": aud, "sub": sub, "client_id": sub, "scope": scope,
          "jti": os.urandom(8).hex(), "iat": now, "exp": now + 86400}
signing = head + b"." + b64(json.dumps(claims, separators=(",", ":")).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing,
                     check=True, capture_output=True).stdout
print((signing + b"." + b64(sig)).decode())
