// One event stream per tab (GET /api/events, the server filters what this user may see). State
// badges change in place; regions that list things re-render through enhanced navigation when an
// event of theirs arrives; page scripts get every event as a `limen:event` DOM event. When the
// stream drops, the banner says so; when it is back, the page is fetched afresh (events missed
// while away are not replayed onto a page that may be stale).
const banner = () => document.getElementById('live-banner');
let source = null;
let lost = false;
let refreshTimer = null;

function signedIn() {
  return document.getElementById('live-banner') !== null;
}

function applyState(event) {
  const { vm_id: vmId, to } = event.data ?? {};
  if (!vmId || !to) return;
  for (const badge of document.querySelectorAll(`[data-vm-state="${CSS.escape(vmId)}"]`)) {
    badge.textContent = to;
    badge.dataset.state = to;
  }
}

function wants(region, type) {
  return (region.dataset.liveRefresh ?? '').split(/\s+/).some((t) => t && type.startsWith(t));
}

// A form that was just sent brings its own fresh page (often a redirect with a result to show,
// ?approved=…): a refresh started meanwhile would cancel that navigation and lose the result.
// Events that arrive in between wait for the form's page, and then refresh it.
let submitting = null;
let deferred = false;
document.addEventListener('submit', () => {
  clearTimeout(submitting);
  submitting = setTimeout(settled, 10000);
});

function settled() {
  clearTimeout(submitting);
  submitting = null;
  if (deferred) {
    deferred = false;
    refresh();
  }
}

// Re-renders the page in place: Blazor's enhanced navigation patches the DOM, so focus, selection
// held in inputs and the scroll position stay.
function refresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (submitting) {
      deferred = true;
      return;
    }
    const x = window.scrollX, y = window.scrollY;
    const done = () => window.scrollTo(x, y);
    if (window.Blazor?.navigateTo) {
      window.Blazor.navigateTo(location.pathname + location.search + location.hash, { replaceHistoryEntry: true, forceLoad: false });
      window.Blazor.addEventListener?.('enhancedload', done, { once: true });
      setTimeout(done, 500);
    } else {
      location.reload();
    }
  }, 300);
}

function onEvent(message) {
  // The frame's data is the envelope {id, type, at, vm_id, owner_id, server_id, data}.
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  if (event.type === 'vm.state_changed') applyState(event);
  if ([...document.querySelectorAll('[data-live-refresh]')].some((r) => wants(r, event.type))) refresh();
  document.dispatchEvent(new CustomEvent('limen:event', { detail: event }));
}

const TYPES = ['vm.created', 'vm.updated', 'vm.deleted', 'vm.state_changed', 'snapshot.created', 'snapshot.reverted',
  'snapshot.deleted', 'console.session.opened', 'console.session.closed', 'console.session.terminate_requested',
  'quota.changed', 'alert.received', 'host.up', 'host.down',
  'registration.created', 'registration.approved', 'registration.rejected', 'settings.changed'];

function connect() {
  if (source || !signedIn()) return;
  source = new EventSource('/api/events', { withCredentials: true });
  for (const type of TYPES) source.addEventListener(type, onEvent);
  // Too far behind (past retention, or cut off for not reading): what is on the page may be stale.
  source.addEventListener('reset', refresh);
  source.addEventListener('open', () => {
    document.documentElement.dataset.live = 'connected';
    if (lost) {
      lost = false;
      banner()?.setAttribute('hidden', '');
      refresh();
    }
  });
  source.addEventListener('error', () => {
    lost = true;
    document.documentElement.dataset.live = 'reconnecting';
    banner()?.removeAttribute('hidden');
    // EventSource retries by itself; a 401 (session over) closes it for good.
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      fetch('/api/auth/me', { credentials: 'same-origin' }).then((r) => {
        if (r.status === 401) location.assign('/signin?return=' + encodeURIComponent(location.pathname + location.search));
        else setTimeout(connect, 2000);
      }, () => setTimeout(connect, 2000));
    }
  });
}

connect();
// Enhanced navigation swaps the page without reloading this module: keep the stream, re-check sign-in.
window.Blazor?.addEventListener?.('enhancedload', () => {
  if (!signedIn() && source) { source.close(); source = null; }
  connect();
  if (submitting) settled();
});
document.addEventListener('DOMContentLoaded', connect);
