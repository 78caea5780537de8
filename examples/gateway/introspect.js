// nginx (njs) gate in front of an API: each request's bearer token is
// checked against Warden's RFC 7662 introspection endpoint, so a logout or
// a revoked API key takes effect on the next request. Used by nginx.conf
// through `auth_request`; Warden's answer is never cached here.
async function authorize(r) {
  const header = r.headersIn.Authorization || "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) {
    r.return(401);
    return;
  }
  let answer;
  try {
    const reply = await r.subrequest("/_warden_introspect", {
      method: "POST",
      body: "token=" + encodeURIComponent(match[1]),
    });
    if (reply.status !== 200) {
      // Warden down, or the gateway's own key refused: fail closed.
      r.error("introspection answered " + reply.status);
      r.return(503);
      return;
    }
    answer = JSON.parse(reply.responseText);
  } catch (e) {
    r.error("introspection failed: " + e);
    r.return(503);
    return;
  }
  if (answer.active !== true) {
    r.return(401);
    return;
  }
  // An API key acts for its owner only with the USER or ADMIN scope (an
  // INTROSPECT key, the gateway's own included, is nobody); its `role` is
  // already the one it acts with (ADMIN only with the ADMIN scope).
  const scopes = String(answer.scope || "").split(" ");
  if (answer.token_type === "api_key" && !scopes.includes("user") && !scopes.includes("admin")) {
    r.return(401);
    return;
  }
  // Handed to the API as X-User-Id, X-User-Role and X-Token-Scope.
  r.headersOut["X-Warden-Sub"] = answer.sub || "";
  r.headersOut["X-Warden-Role"] = answer.role || "";
  r.headersOut["X-Warden-Scope"] = answer.scope || "";
  r.return(204);
}

export default { authorize };
