#!/usr/bin/env python3
"""Mint a token exactly as the old service (dgp-oauth2 1.3.4) did.

Usage: mint_legacy_token.py KEY_FILE CLAIMS_JSON [--raw-key]

The old service signed with PyJWT, `jwt.encode(claims, key)`: HS256, header
{"alg": "HS256", "typ": "JWT"}, where key is the raw SHA-256 digest of the PRIVATE_KEY
setting's text exactly as given. KEY_FILE holds that text (every byte counts, a trailing
newline too). With --raw-key the file's bytes are the HMAC key themselves (to forge a token
keyed with the public PEM, as an attacker would: PyJWT itself refuses a PEM as an HMAC key,
so that token is assembled by hand). Prints the token.
"""
import base64
import hashlib
import hmac
import json
import sys

import jwt


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs256(claims: dict, key: bytes) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{b64url(hmac.digest(key, signing_input, 'sha256'))}"


def main() -> int:
    key_file, claims = sys.argv[1], json.loads(sys.argv[2])
    with open(key_file, "rb") as f:
        text = f.read()
    if "--raw-key" in sys.argv[3:]:
        print(forged_hs256(claims, text))
    else:
        print(jwt.encode(claims, hashlib.sha256(text).digest()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
