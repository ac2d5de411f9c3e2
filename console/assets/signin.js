// The console's public part: it decides whether the browser may load the console
// proper (app/), and signs in when it may not. The token lives in this tab's
// sessionStorage and, for app/ alone, in a cookie (module loads cannot carry headers);
// API calls send it as the accessToken header.

const TOKEN_KEY = 'roster.token';
const COOKIE = 'roster_console_token';
const APP_PATH = '/console/app/';

function setCookie(token) {
  document.cookie = `${COOKIE}=${encodeURIComponent(token)}; path=${APP_PATH}; SameSite=Strict`;
}

export function clearSession() {
  sessionStorage.removeItem(TOKEN_KEY);
  document.cookie = `${COOKIE}=; path=${APP_PATH}; max-age=0; SameSite=Strict`;
}

// whoami answers who the token belongs to; with auth off it answers for everyone.
async function whoami(token) {
  const resp = await fetch('/roster/v1/acl/whoami', { headers: token ? { accessToken: token } : {} });
  return resp.ok ? resp.json() : null;
}

function signOut() {
  clearSession();
  // No fragment: a full load, which finds no token and shows the sign-in form.
  location.replace('/console/');
}

async function start() {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  if (await enter(token)) return;
  clearSession();
  showSignIn();
}

// enter loads the console proper for a token (blank with auth off) and reports whether
// it could.
async function enter(token) {
  if (token) setCookie(token);
  const me = await whoami(token).catch(() => null);
  if (!me) return false;
  try {
    const app = await import('./app/app.js');
    document.getElementById('signin').hidden = true;
    await app.start({ token, me, signOut });
    return true;
  } catch (err) {
    console.error('console did not load', err);
    return false;
  }
}

function showSignIn() {
  const form = document.getElementById('signin-form');
  const error = document.getElementById('signin-error');
  document.getElementById('app').hidden = true;
  document.getElementById('signin').hidden = false;
  document.getElementById('signin-username').focus();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = new URLSearchParams(new FormData(form));
    let resp;
    try {
      resp = await fetch('/nacos/v1/auth/login', { method: 'POST', body });
    } catch (err) {
      showError(error, 'The server did not answer: ' + err.message);
      return;
    }
    const text = await resp.text();
    if (!resp.ok) {
      showError(error, `${text || resp.statusText} (HTTP ${resp.status})`);
      return;
    }
    const answer = JSON.parse(text);
    sessionStorage.setItem(TOKEN_KEY, answer.accessToken);
    if (!location.hash || location.hash === '#/') history.replaceState(null, '', '/console/#/services');
    // A document that failed to load app/ before keeps that failure for the module:
    // a fresh one tries again.
    if (!(await enter(answer.accessToken))) location.reload();
  });
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = false;
}

start();
