// The design notes' forward-auth check, written the way they write it:
// Express + jsonwebtoken, HS256 with JWT_SECRET. It verifies tessera's own
// access tokens (same secret, same issuer and audience), so the load script
// can put tessera's /api/auth/verify beside it in the same run.
const express = require("express");
const jwt = require("jsonwebtoken");

const secret = process.env.JWT_SECRET;
const issuer = process.env.ISSUER;
const port = Number(process.env.PORT);
const app = express();

app.get("/api/auth/verify", (req, res) => {
  const header = req.headers.authorization || "";
  if (!header.startsWith("Bearer ")) return res.status(401).json({ error: "missing_token" });
  try {
    const claims = jwt.verify(header.slice(7), secret, {
      algorithms: ["HS256"], issuer, audience: "tessera",
    });
    res.set("X-Auth-User-Id", claims.sub);
    res.json({ sub: claims.sub, sid: claims.sid, email: claims.email, role: claims.role, exp: claims.exp });
  } catch (e) {
    res.status(401).json({ error: e.name === "TokenExpiredError" ? "token_expired" : "invalid_token" });
  }
});

app.listen(port, "127.0.0.1");
