#!/usr/bin/env python3
"""Verify an auth-host permission token the way downstream services do.

Usage: verify_permission_token.py PUBLIC_KEY_PEM_FILE TOKEN

Prints the claims as JSON and exits 0 when the token verifies with nothing but the PEM and
RS256 (PyJWT's `jwt.decode(token, public_key, algorithms=["RS256"])`); exits 1 otherwise.
"""
import json
import sys

import jwt


def main() -> int:
    pem_file, token = sys.argv[1], sys.argv[2]
    with open(pem_file, encoding="utf-8") as f:
        public_key = f.read()
    try:
        claims = jwt.decode(token, public_key, algorithms=["RS256"])
    except jwt.PyJWTError as error:
        print(f"refused: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
