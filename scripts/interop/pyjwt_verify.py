#!/usr/bin/env python3
"""Verify tessera access tokens with PyJWT, keys fetched from tessera's JWKS.

    python3 scripts/interop/pyjwt_verify.py CASES.json

Uses the PyJWT installed by scripts/interop/setup.sh in scripts/interop/.py
(never the system site-packages). CASES.json:

    {"jwks_url": "http://127.0.0.1:PORT/.well-known/jwks.json",
     "issuer": "http://...", "audience": "tessera",
     "cases": [{"name": "eddsa-valid", "token": "eyJ...", "alg": "EdDSA",
                "expect": "accept", "sub": "<uuid>"}, ...]}

Each case is verified as a relying party would: the key is picked with
PyJWKClient(jwks_url).get_signing_key_from_jwt(token), then jwt.decode with
algorithms=[alg] only, issuer and audience checked, exp/iat/sub (and iss/aud)
required; the header typ must be exactly "at+jwt"; when the case has "sub",
an accepted token's sub must equal it. `alg` is one of EdDSA, ES256, RS256.

Prints one JSON line per case,
    {"name": ..., "expect": ..., "result": "accept"|"reject"|"error",
     "ok": true|false, "error": null|"..."}
("error" as result means the script or the JWKS fetch failed, not the token:
it is a failure whatever was expected), then "N passed, N failed".
Exit 0 when every case got its expected result, 1 otherwise, 2 on usage errors.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = os.path.join(HERE, ".py")
SUPPORTED_ALGS = ("EdDSA", "ES256", "RS256")
EXPECTED_TYP = "at+jwt"


def usage(msg):
    print(f"pyjwt_verify: {msg}", file=sys.stderr)
    print("usage: python3 scripts/interop/pyjwt_verify.py CASES.json", file=sys.stderr)
    sys.exit(2)


def load_spec(path):
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        usage(f"cannot read {path}: {e}")
    if not isinstance(spec, dict):
        usage("the cases file must hold a JSON object")
    for key in ("jwks_url", "issuer", "audience"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            usage(f'"{key}" must be a non-empty string')
    cases = spec.get("cases")
    if not isinstance(cases, list) or not cases:
        usage('"cases" must be a non-empty array')
    names = set()
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            usage(f"case {i} is not an object")
        name = case.get("name")
        if not isinstance(name, str) or not name:
            usage(f'case {i}: "name" must be a non-empty string')
        if name in names:
            usage(f"case {name}: name used twice")
        names.add(name)
        if not isinstance(case.get("token"), str):
            usage(f'case {name}: "token" must be a string')
        if case.get("alg") not in SUPPORTED_ALGS:
            usage(f'case {name}: "alg" must be one of {", ".join(SUPPORTED_ALGS)}')
        if case.get("expect") not in ("accept", "reject"):
            usage(f'case {name}: "expect" must be "accept" or "reject"')
        if "sub" in case and not isinstance(case["sub"], str):
            usage(f'case {name}: "sub" must be a string')
    return spec


def main(argv):
    if len(argv) != 2:
        usage("expected exactly one argument")
    spec = load_spec(argv[1])

    if not os.path.isdir(LIBS):
        usage(f"{LIBS} is missing: run scripts/interop/setup.sh first")
    sys.path.insert(0, LIBS)
    import jwt  # noqa: E402  (the pinned PyJWT from .py)

    client = jwt.PyJWKClient(spec["jwks_url"], timeout=10)
    # Fetch the JWKS once up front: if it cannot be had, every case fails
    # (a "reject" case must not pass just because no key could be fetched).
    try:
        keys = client.get_signing_keys()
        jwks_error = None
        print(
            f"pyjwt_verify: PyJWT {jwt.__version__}, {len(keys)} signing key(s) from "
            f"{spec['jwks_url']}: "
            + ", ".join(f"{k.key_id} ({k.key_type}/{k.algorithm_name})" for k in keys),
            file=sys.stderr,
        )
    except Exception as e:  # noqa: BLE001
        jwks_error = f"JWKS unavailable: {type(e).__name__}: {e}"
        print(f"pyjwt_verify: {jwks_error}", file=sys.stderr)

    passed = failed = 0
    for case in spec["cases"]:
        result, error = verify(jwt, client, spec, case, jwks_error)
        ok = result == case["expect"]
        passed, failed = passed + ok, failed + (not ok)
        line = {
            "name": case["name"],
            "expect": case["expect"],
            "result": result,
            "ok": ok,
            "error": error,
        }
        print(json.dumps(line), flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


def verify(jwt, client, spec, case, jwks_error):
    """Return (result, error) for one case."""
    if jwks_error is not None:
        return "error", jwks_error
    token = case["token"]
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != EXPECTED_TYP:
            return "reject", f'header typ {header.get("typ")!r} is not "{EXPECTED_TYP}"'
        signing_key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key,
            algorithms=[case["alg"]],
            issuer=spec["issuer"],
            audience=spec["audience"],
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as e:
        return "reject", f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001  (not the library's verdict)
        return "error", f"unexpected {type(e).__name__}: {e}"
    if "sub" in case and claims.get("sub") != case["sub"]:
        return "reject", f"sub {claims.get('sub')!r} is not the expected {case['sub']!r}"
    return "accept", None


if __name__ == "__main__":
    sys.exit(main(sys.argv))
