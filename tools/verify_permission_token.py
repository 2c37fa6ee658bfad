#!/usr/bin/env python3
"""Verify an auth-host permission token the way downstream services do.

Usage: verify_permission_token.py PUBLIC_KEY_PEM_FILE TOKEN
       verify_permission_token.py --jwks JWKS_FILE TOKEN

With a PEM (from /auth/public-key): PyJWT's `jwt.decode(token, public_key,
algorithms=["RS256"])`. With a JWKS (from /auth/.well-known/jwks.json): the key named by the token's
`kid`, and only that key's own algorithm (`alg` in the JWK), as a JWKS-reading service pins
it. Prints the claims as JSON and exits 0 when the token verifies; exits 1 otherwise.
"""
import json
import sys

import jwt


def decode_with_jwks(jwks_file: str, token: str) -> dict:
    with open(jwks_file, encoding="utf-8") as f:
        key_set = jwt.PyJWKSet.from_dict(json.load(f))
    kid = jwt.get_unverified_header(token).get("kid")
    keys = [key for key in key_set.keys if key.key_id == kid]
    if not keys:
        raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS")
    key = keys[0]
    algorithm = key.algorithm_name
    if algorithm not in ("RS256", "ES256", "EdDSA"):
        raise jwt.InvalidAlgorithmError(f"key {kid!r} has no accepted algorithm: {algorithm}")
    return jwt.decode(token, key.key, algorithms=[algorithm])


def main() -> int:
    try:
        if sys.argv[1] == "--jwks":
            claims = decode_with_jwks(sys.argv[2], sys.argv[3])
        else:
            with open(sys.argv[1], encoding="utf-8") as f:
                public_key = f.read()
            claims = jwt.decode(sys.argv[2], public_key, algorithms=["RS256"])
    except jwt.PyJWTError as error:
        print(f"refused: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
