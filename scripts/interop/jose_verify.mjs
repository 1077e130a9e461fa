#!/usr/bin/env node
// Verify tessera access tokens with the npm `jose` package, keys fetched
// from tessera's JWKS.
//
//     node scripts/interop/jose_verify.mjs CASES.json
//
// Uses the jose installed by scripts/interop/setup.sh in
// scripts/interop/node_modules. CASES.json:
//
//     {"jwks_url": "http://127.0.0.1:PORT/.well-known/jwks.json",
//      "issuer": "http://...", "audience": "tessera",
//      "cases": [{"name": "eddsa-valid", "token": "eyJ...", "alg": "EdDSA",
//                 "expect": "accept", "sub": "<uuid>"}, ...]}
//
// Each case is verified as a relying party would: createRemoteJWKSet(new
// URL(jwks_url)) + jwtVerify(token, jwks, {issuer, audience, algorithms:
// [alg], typ: 'at+jwt', requiredClaims: exp/iat/sub}). jose compares typ
// case-insensitively and ignores an "application/" prefix, so the header
// typ is also checked to be exactly "at+jwt" (as pyjwt_verify.py does).
// When the case has "sub", an accepted token's sub must equal it. `alg` is
// one of EdDSA, ES256, RS256.
//
// Prints one JSON line per case,
//     {"name": ..., "expect": ..., "result": "accept"|"reject"|"error",
//      "ok": true|false, "error": null|"..."}
// ("error" as result means the script or the JWKS fetch failed, not the
// token: it is a failure whatever was expected), then "N passed, N failed".
// Exit 0 when every case got its expected result, 1 otherwise, 2 on usage
// errors.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const SUPPORTED_ALGS = ['EdDSA', 'ES256', 'RS256'];
const EXPECTED_TYP = 'at+jwt';

function usage(msg) {
  console.error(`jose_verify: ${msg}`);
  console.error('usage: node scripts/interop/jose_verify.mjs CASES.json');
  process.exit(2);
}

const isNonEmptyString = (v) => typeof v === 'string' && v.length > 0;

function loadSpec(path) {
  let spec;
  try {
    spec = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    usage(`cannot read ${path}: ${e.message}`);
  }
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    usage('the cases file must hold a JSON object');
  }
  for (const key of ['jwks_url', 'issuer', 'audience']) {
    if (!isNonEmptyString(spec[key])) usage(`"${key}" must be a non-empty string`);
  }
  const { cases } = spec;
  if (!Array.isArray(cases) || cases.length === 0) usage('"cases" must be a non-empty array');
  const names = new Set();
  cases.forEach((c, i) => {
    if (c === null || typeof c !== 'object' || Array.isArray(c)) usage(`case ${i} is not an object`);
    if (!isNonEmptyString(c.name)) usage(`case ${i}: "name" must be a non-empty string`);
    if (names.has(c.name)) usage(`case ${c.name}: name used twice`);
    names.add(c.name);
    if (typeof c.token !== 'string') usage(`case ${c.name}: "token" must be a string`);
    if (!SUPPORTED_ALGS.includes(c.alg)) usage(`case ${c.name}: "alg" must be one of ${SUPPORTED_ALGS.join(', ')}`);
    if (c.expect !== 'accept' && c.expect !== 'reject') usage(`case ${c.name}: "expect" must be "accept" or "reject"`);
    if ('sub' in c && typeof c.sub !== 'string') usage(`case ${c.name}: "sub" must be a string`);
  });
  let url;
  try {
    url = new URL(spec.jwks_url);
  } catch (e) {
    usage(`"jwks_url" is not a URL: ${e.message}`);
  }
  return { spec, url };
}

async function main(argv) {
  if (argv.length !== 1) usage('expected exactly one argument');
  const { spec, url } = loadSpec(argv[0]);

  const joseEntry = join(HERE, 'node_modules', 'jose', 'dist', 'webapi', 'index.js');
  if (!existsSync(joseEntry)) usage(`${join(HERE, 'node_modules', 'jose')} is missing: run scripts/interop/setup.sh first`);
  const jose = await import(pathToFileURL(joseEntry).href);
  const joseVersion = JSON.parse(readFileSync(join(HERE, 'node_modules', 'jose', 'package.json'), 'utf8')).version;

  const jwks = jose.createRemoteJWKSet(url, { timeoutDuration: 10_000 });
  // Fetch the JWKS once up front: if it cannot be had, every case fails
  // (a "reject" case must not pass just because no key could be fetched).
  let jwksError = null;
  try {
    await jwks.reload();
    const keys = jwks.jwks()?.keys;
    if (!Array.isArray(keys) || keys.length === 0) throw new Error('the JWKS holds no keys');
    console.error(
      `jose_verify: jose ${joseVersion} on node ${process.version}, ${keys.length} key(s) from ${url.href}: ` +
        keys.map((k) => `${k.kid} (${k.kty}/${k.alg ?? '-'})`).join(', '),
    );
  } catch (e) {
    jwksError = `JWKS unavailable: ${errorText(e)}`;
    console.error(`jose_verify: ${jwksError}`);
  }

  let passed = 0;
  let failed = 0;
  for (const c of spec.cases) {
    const [result, error] = jwksError !== null ? ['error', jwksError] : await verify(jose, jwks, spec, c);
    const ok = result === c.expect;
    if (ok) passed += 1;
    else failed += 1;
    console.log(JSON.stringify({ name: c.name, expect: c.expect, result, ok, error }));
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

function errorText(e) {
  const kind = e?.code ?? e?.name ?? 'Error';
  return `${kind}: ${e?.message ?? String(e)}`;
}

async function verify(jose, jwks, spec, c) {
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jose.jwtVerify(c.token, jwks, {
      issuer: spec.issuer,
      audience: spec.audience,
      algorithms: [c.alg],
      typ: EXPECTED_TYP,
      requiredClaims: ['exp', 'iat', 'sub', 'iss', 'aud'],
    }));
  } catch (e) {
    if (e instanceof jose.errors.JOSEError) return ['reject', errorText(e)];
    return ['error', `unexpected ${errorText(e)}`];
  }
  if (protectedHeader.typ !== EXPECTED_TYP) {
    return ['reject', `header typ ${JSON.stringify(protectedHeader.typ)} is not "${EXPECTED_TYP}"`];
  }
  if ('sub' in c && payload.sub !== c.sub) {
    return ['reject', `sub ${JSON.stringify(payload.sub)} is not the expected ${JSON.stringify(c.sub)}`];
  }
  return ['accept', null];
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(`jose_verify: ${e?.stack ?? e}`);
    process.exitCode = 1;
  },
);
