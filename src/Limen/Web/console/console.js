// The Limen browser console: signs in (the access token lives in sessionStorage, never in a URL),
// asks for a one-time ticket, and opens noVNC on /vnc/{id}?ticket=…. When the connection drops it
// reconnects with a fresh ticket (tickets are single-use), backing off up to 30 s, unless the server
// ended the session on purpose (close code 1008: idle, duration limit, admin, account disabled).
import RFB from './novnc/core/rfb.js';

const TOKEN_KEY = 'limen.access_token';
const POLICY_CLOSE = 1008;
const MAX_BACKOFF_MS = 30000;

const vmId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
const $ = (id) => document.getElementById(id);
let rfb = null;
let backoff = 1000;
let retryTimer = null;

function status(text, state) {
  $('status').textContent = text;
  $('status').dataset.state = state;
}

async function api(method, path, body, retried = false) {
  const headers = { Authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401 && !retried && await refresh()) return api(method, path, body, true);
  return response;
}

// The refresh cookie (HttpOnly, path /api/auth) renews an expired access token without a new login.
async function refresh() {
  const response = await fetch('/api/auth/refresh', { method: 'POST' });
  if (!response.ok) return false;
  sessionStorage.setItem(TOKEN_KEY, (await response.json()).access_token);
  return true;
}

async function problemText(response) {
  try { return (await response.json()).detail || response.statusText; } catch { return response.statusText; }
}

function showLogin(message) {
  $('controls').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  status('Sign in required', 'signed-out');
  $('username').focus();
}

function scheduleReconnect(why) {
  clearTimeout(retryTimer);
  status(`${why} — reconnecting in ${Math.round(backoff / 1000)} s`, 'reconnecting');
  retryTimer = setTimeout(connect, backoff);
  backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
}

async function connect() {
  clearTimeout(retryTimer);
  if (rfb) { const old = rfb; rfb = null; old.disconnect(); }
  status('Requesting a console ticket…', 'connecting');
  let response;
  try {
    response = await api('POST', `/api/vms/${encodeURIComponent(vmId)}/console`);
  } catch {
    return scheduleReconnect('Limen is unreachable');
  }
  if (response.status === 401) return showLogin('Your session expired; sign in again.');
  if (response.status === 404) return status('No such VM (or not yours).', 'error');
  if (!response.ok) return scheduleReconnect(await problemText(response));
  const { ws_url: wsUrl } = await response.json();

  // Our own socket, so the close code and reason are ours to read; noVNC takes it over.
  const socket = new WebSocket(wsUrl, ['binary']);
  let closeEvent = null;
  socket.addEventListener('close', (e) => { closeEvent = e; });
  const current = new RFB($('screen'), socket, { shared: true });
  rfb = current;
  current.scaleViewport = true;
  current.background = '#000';
  current.addEventListener('connect', () => {
    backoff = 1000;
    $('ctrl-alt-del').disabled = false;
    status('Connected', 'connected');
  });
  current.addEventListener('disconnect', () => {
    if (rfb !== current) return;            // replaced on purpose
    rfb = null;
    $('ctrl-alt-del').disabled = true;
    if (closeEvent && closeEvent.code === POLICY_CLOSE) {
      status(`Session ended by the server (${closeEvent.reason || 'policy'}). Use Reconnect to start a new one.`, 'ended');
      return;
    }
    scheduleReconnect(closeEvent && closeEvent.reason ? `Disconnected (${closeEvent.reason})` : 'Disconnected');
  });
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const response = await fetch('/api/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: $('username').value, password: $('password').value }),
  });
  if (!response.ok) { $('login-error').textContent = await problemText(response); return; }
  sessionStorage.setItem(TOKEN_KEY, (await response.json()).access_token);
  $('password').value = '';
  $('login').hidden = true;
  $('controls').hidden = false;
  await start();
});

$('ctrl-alt-del').addEventListener('click', () => rfb && rfb.sendCtrlAltDel());
$('fullscreen').addEventListener('click', () => {
  if (document.fullscreenElement) document.exitFullscreen(); else $('screen').requestFullscreen();
});
$('reconnect').addEventListener('click', () => { backoff = 1000; connect(); });
$('sign-out').addEventListener('click', async () => {
  clearTimeout(retryTimer);
  if (rfb) { const old = rfb; rfb = null; old.disconnect(); }
  await fetch('/api/auth/logout', { method: 'POST' });
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
});

async function start() {
  const vm = await api('GET', `/api/vms/${encodeURIComponent(vmId)}`);
  if (vm.status === 401) return showLogin();
  if (vm.ok) {
    const { name } = await vm.json();
    $('title').textContent = name;
    document.title = `${name} — Limen console`;
  }
  $('controls').hidden = false;
  await connect();
}

if (sessionStorage.getItem(TOKEN_KEY) || await refresh()) {
  await start();
} else {
  showLogin();
}
