// A client app of auth-host, in plain JavaScript: what any browser front end does.
//
// 1. Ask `/auth/check` who is logged in. Not logged in: it answers a login link per provider,
//    each carrying `next` (this page), which auth-host sends the browser back to.
// 2. Back from a login, the address bar holds `?jwt=<client token>` (or `?error=<why>`): take
//    it off at once (history API) and keep the token in sessionStorage, for this tab only —
//    but only when this tab started that login with this auth-host (a one-time value the app
//    put in `next` and remembered): a link that lands here with a token, or that names
//    another auth-host, hands nothing over.
// 3. Send the token in the `auth-token` header (never in a URL) to /auth/check,
//    /auth/update, /auth/authorize and /auth/logout. Calls cross origins: auth-host must list
//    this page's origin in `cors_origins`, and in `allowed_redirects` for `next`.
"use strict";

/// auth-host's base URL: `?auth=<url>`, else this page's own origin. (A real app fixes its
/// auth-host's address; this one takes it from its own, to run beside any auth-host.)
const authBase = (new URL(location.href).searchParams.get("auth") || location.origin)
  .replace(/\/+$/, "");

/// The token is kept per auth-host and only ever sent back to the auth-host whose login gave
/// it: a link to this app with another `?auth=` must not carry it off elsewhere.
const TOKEN_KEY = `auth-host.jwt@${authBase}`;

/// The login this tab started: `{ base, nonce }`, the nonce also in `next` as `login=`.
const PENDING_KEY = "auth-host.pending-login";

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/// Takes `jwt`, `error` and `login` off the address bar, keeping the token only if this tab
/// started that login with this auth-host; returns the error to show, if any.
function takeLanding() {
  const url = new URL(location.href);
  const jwt = url.searchParams.get("jwt");
  const error = url.searchParams.get("error");
  const nonce = url.searchParams.get("login");
  if (jwt === null && error === null) {
    return null;
  }
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  } catch {
    pending = null;
  }
  // Single use, whatever comes of it.
  sessionStorage.removeItem(PENDING_KEY);
  const ours = pending !== null && pending.base === authBase && pending.nonce === nonce;
  url.searchParams.delete("jwt");
  url.searchParams.delete("error");
  url.searchParams.delete("login");
  history.replaceState(history.state, "", url);
  if (jwt && !ours) {
    return "This login was not started from this page with this auth-host; its token was not kept.";
  }
  if (jwt) {
    sessionStorage.setItem(TOKEN_KEY, jwt);
  }
  return error;
}

/// Starts the login behind a provider's link: remembers a one-time value for this
/// auth-host, and adds it to `next`, so that only the answer to this login is taken.
function startLogin(event) {
  event.preventDefault();
  const nonce = crypto.randomUUID();
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ base: authBase, nonce }));
  const login = new URL(event.currentTarget.href);
  const next = new URL(login.searchParams.get("next") || thisPage());
  next.searchParams.set("login", nonce);
  login.searchParams.set("next", next.toString());
  location.assign(login.toString());
}

/// This page, as the place a login comes back to.
function thisPage() {
  const url = new URL(location.href);
  url.hash = "";
  return url.toString();
}

/// Calls auth-host; returns the HTTP status and the JSON answer.
async function call(path, { method = "GET", params = {} } = {}) {
  const url = new URL(authBase + path);
  for (const [name, value] of Object.entries(params)) {
    url.searchParams.set(name, value);
  }
  const headers = {};
  if (token()) {
    headers["auth-token"] = token();
  }
  let response;
  try {
    response = await fetch(url, { method, headers, credentials: "omit", cache: "no-store" });
  } catch {
    throw new Error(
      `auth-host at ${authBase} cannot be reached: is it running, and is ${location.origin} ` +
        "in its cors_origins?",
    );
  }
  try {
    return { status: response.status, body: await response.json() };
  } catch {
    throw new Error(`auth-host answered ${path} with status ${response.status} and no JSON`);
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function show(section) {
  $("loading").hidden = true;
  $("signed-out").hidden = section !== "signed-out";
  $("signed-in").hidden = section !== "signed-in";
}

/// A login button per provider, in the order auth-host lists them.
function showProviders(providers) {
  const list = $("providers");
  list.replaceChildren();
  for (const [name, provider] of Object.entries(providers)) {
    const link = document.createElement("a");
    link.className = "button";
    link.href = provider.url;
    link.dataset.testid = `login-${name}`;
    link.textContent = `Log in with ${provider.name || name}`;
    link.addEventListener("click", startLogin);
    const item = document.createElement("li");
    item.append(link);
    list.append(item);
  }
  $("no-providers").hidden = list.childElementCount > 0;
  show("signed-out");
}

function initials(profile) {
  const words = (profile.name || profile.username || profile.email || "?").split(/[\s@._-]+/);
  return words
    .filter(Boolean)
    .slice(0, 2)
    .map((word) => word[0].toUpperCase())
    .join("");
}

function showProfile(profile) {
  $("name").textContent = profile.name || profile.username || "Signed in";
  $("email").textContent = profile.email || "";
  $("username").textContent = profile.username || "";
  // Only web addresses become an image source.
  const avatar = /^https?:\/\//i.test(profile.avatar_url || "") ? profile.avatar_url : null;
  $("avatar").hidden = !avatar;
  $("initials").hidden = Boolean(avatar);
  if (avatar) {
    $("avatar").src = avatar;
  } else {
    $("avatar").removeAttribute("src");
    $("initials").textContent = initials(profile);
  }
  show("signed-in");
}

/// Asks auth-host who holds the stored token, and shows the profile or the login buttons.
async function refresh() {
  const { body } = await call("/auth/check", { params: { next: thisPage() } });
  if (body.authenticated) {
    showProfile(body.profile);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
    showProviders(body.providers || {});
  }
}

async function chooseUsername(event) {
  event.preventDefault();
  showError("");
  const username = $("new-username").value.trim();
  const { body } = await call("/auth/update", { method: "POST", params: { username } });
  if (body.success) {
    $("username-form").hidden = true;
    $("new-username").value = "";
    await refresh();
    return;
  }
  if (/already set/i.test(body.error || "")) {
    $("username-form").hidden = true;
  }
  showError(body.error || "The username was not saved");
}

/// The claims of a JWT, decoded (not verified: the service that receives it verifies it).
function claimsOf(jwt) {
  const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

async function authorize(event) {
  event.preventDefault();
  showError("");
  const service = $("service").value.trim();
  const { status, body } = await call("/auth/authorize", { params: { service } });
  if (status !== 200) {
    $("result").hidden = true;
    showError(`${service}: ${body.error || `auth-host answered ${status}`}`);
    return;
  }
  $("result-service").textContent = service;
  $("permissions").textContent = JSON.stringify(body.permissions || {}, null, 2);
  if (body.token) {
    const claims = claimsOf(body.token);
    $("claims").textContent = JSON.stringify(claims, null, 2);
    $("expiry").textContent = `The token expires at ${new Date(claims.exp * 1000).toLocaleString()}.`;
  } else {
    $("claims").textContent = "(no permission token)";
    $("expiry").textContent =
      `auth-host does not offer "${service}" (ALLOWED_SERVICES), or the login has expired.`;
  }
  $("result").hidden = false;
}

async function logout() {
  showError("");
  const { body } = await call("/auth/logout", { method: "POST" });
  if (!body.success) {
    showError(`Logout failed: ${body.error || "unknown error"}`);
    return;
  }
  sessionStorage.removeItem(TOKEN_KEY);
  $("result").hidden = true;
  $("username-form").hidden = false;
  await refresh();
}

/// Runs an event handler, showing what went wrong instead of failing silently.
function guarded(handler) {
  return (event) =>
    handler(event).catch((error) => {
      $("loading").hidden = true;
      showError(error.message);
    });
}

$("auth-base").textContent = authBase;
$("username-form").addEventListener("submit", guarded(chooseUsername));
$("authorize-form").addEventListener("submit", guarded(authorize));
$("logout").addEventListener("click", guarded(logout));

const loginError = takeLanding();
if (loginError) {
  showError(loginError);
}
refresh()
  .catch((error) => {
    $("loading").hidden = true;
    // Both said, when the login's answer was refused and auth-host cannot be reached.
    showError([loginError, error.message].filter(Boolean).join(" "));
  })
  .then(() => {
    // Marks the first answer shown, for scripts (and tests) that wait for the app.
    document.body.dataset.ready = "true";
  });
