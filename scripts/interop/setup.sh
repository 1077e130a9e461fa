#!/usr/bin/env bash
# Installs the third-party JWT clients that the interop checks run:
#   PyJWT (+ cryptography), pinned in requirements.txt, into scripts/interop/.py
#     with `pip install --target` (the system site-packages is never touched);
#   npm `jose`, pinned in package.json + package-lock.json, into
#     scripts/interop/node_modules with `npm ci`.
# Idempotent: each half is skipped when the pinned versions are already there
# (a stamp holding the hash of the pin file, plus an import/version check).
#
#   scripts/interop/setup.sh            # both
#   scripts/interop/setup.sh --force    # reinstall both
#
# Needs python3 (with pip) and node >= 20 + npm on PATH; PYTHON=... overrides
# the interpreter. Reaches only PyPI and the npm registry.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
PYTHON="${PYTHON:-python3}"
FORCE=0
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# ---- Python: PyJWT[crypto] ------------------------------------------------
py_want="$(hash_of requirements.txt) $("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
py_ok() {
  [[ -f .py/.interop-stamp && "$(cat .py/.interop-stamp)" == "$py_want" ]] || return 1
  # The stamp is written only after a full install; still prove it imports.
  "$PYTHON" -s -c '
import sys; sys.path.insert(0, sys.argv[1])
import jwt, cryptography
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
assert jwt.__version__ == sys.argv[2], jwt.__version__
assert cryptography.__version__ == sys.argv[3], cryptography.__version__
' "$HERE/.py" \
    "$(sed -n 's/^PyJWT\[crypto\]==//p' requirements.txt)" \
    "$(sed -n 's/^cryptography==//p' requirements.txt)" 2>/dev/null
}
if [[ $FORCE == 0 ]] && py_ok; then
  echo "interop setup: PyJWT already installed in scripts/interop/.py"
else
  echo "interop setup: installing PyJWT into scripts/interop/.py"
  rm -rf .py.tmp
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip install --quiet --no-input \
    --prefer-binary --no-warn-script-location --root-user-action=ignore --target .py.tmp -r requirements.txt
  echo "$py_want" > .py.tmp/.interop-stamp
  rm -rf .py
  mv .py.tmp .py
  py_ok || { echo "interop setup: PyJWT install does not import" >&2; exit 1; }
fi

# ---- Node: jose ------------------------------------------------------------
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "interop setup: node >= 20 needed, found $(node --version)" >&2
  exit 1
fi
node_want="$(hash_of package.json package-lock.json) node$node_major"
jose_pin="$(node -p 'require("./package-lock.json").packages["node_modules/jose"].version')"
node_ok() {
  [[ -f node_modules/.interop-stamp && "$(cat node_modules/.interop-stamp)" == "$node_want" ]] || return 1
  [[ "$(node -p 'require("./node_modules/jose/package.json").version' 2>/dev/null)" == "$jose_pin" ]]
}
if [[ $FORCE == 0 ]] && node_ok; then
  echo "interop setup: jose $jose_pin already installed in scripts/interop/node_modules"
else
  echo "interop setup: installing jose $jose_pin into scripts/interop/node_modules"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  node --input-type=module -e 'await import(process.argv[1])' "$HERE/node_modules/jose/dist/webapi/index.js" \
    || { echo "interop setup: jose does not import" >&2; exit 1; }
  echo "$node_want" > node_modules/.interop-stamp
  node_ok || { echo "interop setup: jose install does not match the lock" >&2; exit 1; }
fi
