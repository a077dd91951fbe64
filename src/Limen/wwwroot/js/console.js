// <limen-console vm="…" user="…">: noVNC on /vnc/{vm}?ticket=… inside the page the server rendered
// (Ui/Pages/Vms/VmConsole.razor). Tickets are one-time, asked with the session cookie through api();
// nothing is kept in browser storage. A dropped connection (guest reboot, stop/start, network)
// reconnects with a fresh ticket and backoff; a close by the server's policy (WebSocket 1008: idle,
// duration, admin, account disabled, ended from another tab) does not, and says why.
import { api, problem } from './api.js';

const POLICY_CLOSE = 1008;
const MAX_BACKOFF_MS = 15000;
const SESSION_LIMIT = 'urn:limen:problem:console-session-limit';
const KEYSYMS = { Control_L: [0xffe3, 'ControlLeft'], Alt_L: [0xffe9, 'AltLeft'], Delete: [0xffff, 'Delete'],
  F1: [0xffbe, 'F1'], F2: [0xffbf, 'F2'], Tab: [0xff09, 'Tab'], Escape: [0xff1b, 'Escape'], Return: [0xff0d, 'Enter'] };
// Closes after which the page reconnects by itself, and what it says meanwhile.
const RETRY = {
  vm_stopped: 'The machine stopped.',
  vm_migrated: 'The machine moved to another host.',
};
const ENDED = {
  idle_timeout: 'The session ended: nothing was typed or clicked for too long.',
  max_duration: 'The session ended: it reached the longest a console session may last.',
  admin_terminated: 'An administrator ended this session.',
  user_terminated: 'You ended this session from another window.',
  user_disabled: 'The session ended: your account was disabled.',
};

// A character as an X keysym: Latin-1 as itself, the rest as Unicode keysyms.
function keysymOf(ch) {
  if (ch === '\n') return KEYSYMS.Return[0];
  if (ch === '\t') return KEYSYMS.Tab[0];
  const code = ch.codePointAt(0);
  return code < 0x100 ? code : 0x01000000 | code;
}

class LimenConsole extends HTMLElement {
  connectedCallback() {
    this.vm = this.getAttribute('vm');
    this.rfb = null;
    this.backoff = 1000;
    this.timer = null;
    this.gone = false;
    this.status = this.querySelector('.console-status');
    this.screen = this.querySelector('.console-screen');
    this.addEventListener('click', this.onClick);
    this.querySelector('[data-action=scale]').addEventListener('change', () => this.applyScale());
    this.onEvent = (e) => {
      // The VM is back: no need to wait out the backoff.
      const { type, vm_id: vmId, data } = e.detail ?? {};
      if (type === 'vm.state_changed' && vmId === this.vm && data?.to === 'running' && this.status.dataset.state === 'reconnecting') {
        this.backoff = 1000;
        this.connect();
      }
    };
    document.addEventListener('limen:event', this.onEvent);
    this.connect();
  }

  disconnectedCallback() {
    this.gone = true;
    clearTimeout(this.timer);
    document.removeEventListener('limen:event', this.onEvent);
    this.drop();
  }

  setStatus(text, state, reason = '') {
    this.status.textContent = text;
    this.status.dataset.state = state;
    this.status.dataset.reason = reason;
    const connected = state === 'connected';
    for (const b of this.querySelectorAll('[data-keys], [data-action=ctrl-alt-del], [data-action=paste]')) b.disabled = !connected;
    this.querySelector('[data-action=connect]').hidden = state !== 'ended';
    if (state !== 'ended') this.querySelector('.console-limit').hidden = true;
  }

  drop() {
    if (this.rfb) {
      const old = this.rfb;
      this.rfb = null;
      old.disconnect();
    }
  }

  retry(why) {
    clearTimeout(this.timer);
    this.setStatus(`${why} Reconnecting in ${Math.round(this.backoff / 1000)} s…`, 'reconnecting');
    this.timer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  async connect() {
    clearTimeout(this.timer);
    this.drop();
    if (this.status.dataset.state !== 'reconnecting') this.setStatus('Connecting…', 'connecting');
    let response;
    try {
      response = await api('POST', `/api/vms/${encodeURIComponent(this.vm)}/console`);
    } catch {
      return this.retry('Limen is unreachable.');
    }
    if (this.gone || response.status === 401) return;
    if (response.status === 404) return this.setStatus('No such machine, or not yours.', 'ended', 'not_found');
    if (!response.ok) {
      const p = await problem(response);
      if (p.type === SESSION_LIMIT) return this.showLimit(p);
      return this.retry(`${p.detail ?? p.title ?? 'The console is not available.'}`);
    }
    const { ws_url: wsUrl } = await response.json();
    const { default: RFB } = await import('/novnc/core/rfb.js');
    if (this.gone) return;

    // Our own socket, so the close code and reason are ours to read; noVNC takes it over.
    const socket = new WebSocket(wsUrl, ['binary']);
    let closed = null;
    socket.addEventListener('close', (e) => { closed = e; });
    const rfb = new RFB(this.screen, socket, { shared: true });
    this.rfb = rfb;
    rfb.background = '#000';
    this.applyScale();
    rfb.addEventListener('connect', () => {
      this.backoff = 1000;
      this.setStatus('Connected.', 'connected');
    });
    rfb.addEventListener('disconnect', () => {
      if (this.rfb !== rfb) return;            // replaced or left on purpose
      this.rfb = null;
      if (closed?.code === POLICY_CLOSE) {
        return this.setStatus(ENDED[closed.reason] ?? `The server ended the session (${closed.reason || 'policy'}).`, 'ended', closed.reason);
      }
      this.retry(RETRY[closed?.reason] ?? 'The connection was lost.');
    });
  }

  // The limit is reached: list the user's open sessions, each with a button that ends it.
  async showLimit(p) {
    const user = encodeURIComponent(this.getAttribute('user'));
    const response = await api('GET', `/api/console/sessions?active=true&user_id=${user}&page_size=50`);
    const sessions = response.ok ? (await response.json()).items : [];
    // Status and list change together, so the message never shows without its buttons.
    this.setStatus(p.detail ?? 'Too many console sessions.', 'ended', 'session_limit');
    const list = this.querySelector('.console-limit ul');
    list.replaceChildren();
    for (const s of sessions) {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'danger';
      button.dataset.endSession = s.id;
      const where = s.vm_id === this.vm ? 'this machine' : `machine ${s.vm_id.slice(0, 8)}`;
      button.textContent = `End the session on ${where} (since ${new Date(s.started_at).toLocaleTimeString()})`;
      item.append(button);
      list.append(item);
    }
    this.querySelector('.console-limit').hidden = false;
  }

  async endSession(button) {
    button.disabled = true;
    const response = await api('DELETE', `/api/console/sessions/${encodeURIComponent(button.dataset.endSession)}`);
    if (!response.ok && response.status !== 409) {
      button.disabled = false;
      return this.setStatus((await problem(response)).detail ?? 'The session could not be ended.', 'ended', 'session_limit');
    }
    this.backoff = 1000;
    this.connect();
  }

  press(names) {
    const keys = names.split(' ').map((n) => KEYSYMS[n]);
    for (const [sym, code] of keys) this.rfb?.sendKey(sym, code, true);
    for (const [sym, code] of keys.reverse()) this.rfb?.sendKey(sym, code, false);
  }

  applyScale() {
    if (!this.rfb) return;
    const fit = this.querySelector('[data-action=scale]').value === 'fit';
    this.rfb.scaleViewport = fit;
    this.rfb.clipViewport = false;
    this.screen.dataset.scale = fit ? 'fit' : '1';
  }

  onClick = (e) => {
    const button = e.target.closest('button');
    if (!button) return;
    if (button.dataset.endSession) return this.endSession(button);
    if (button.dataset.keys) return this.press(button.dataset.keys);
    switch (button.dataset.action) {
      case 'connect': this.backoff = 1000; return this.connect();
      case 'ctrl-alt-del': return this.rfb?.sendCtrlAltDel();
      case 'paste': {
        const text = this.querySelector('#console-paste').value;
        for (const ch of text) this.rfb?.sendKey(keysymOf(ch), null);
        return this.rfb?.focus();
      }
      case 'fullscreen':
        return document.fullscreenElement ? document.exitFullscreen() : this.requestFullscreen();
    }
  };
}

customElements.define('limen-console', LimenConsole);
