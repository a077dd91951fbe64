// <limen-vm-stats vm="id">: the VM's CPU, memory, disk and network use as small sparklines, from
// GET /api/vms/{id}/stats every few seconds (figures, not state: polling them is fine). The
// history is kept per VM here, so a re-render of the page by live.js does not empty the charts.
import { api } from './api.js';

const INTERVAL_MS = 3000;
const POINTS = 40;
const history = new Map();

const CHARTS = [
  ['cpu', 'CPU', (s) => s.cpu_usage_percent, (v) => `${v.toFixed(1)} %`, () => 100],
  ['memory', 'Memory', (s) => s.memory_used_bytes, (v, s) => `${mib(v)} of ${mib(s.memory_total_bytes)} MiB`, (s) => s.memory_total_bytes],
  ['disk', 'Disk I/O', (s, p) => rate(s, p, ['disk_read_bytes', 'disk_write_bytes']), (v) => `${kib(v)} KiB/s`],
  ['network', 'Network', (s, p) => rate(s, p, ['network_rx_bytes', 'network_tx_bytes']), (v) => `${kib(v)} KiB/s`],
];

const mib = (b) => Math.round(b / 1048576);
const kib = (b) => (b / 1024).toFixed(1);

// Bytes per second since the previous sample (counters only grow, except after a restart).
function rate(sample, previous, fields) {
  if (!previous) return 0;
  const seconds = (Date.parse(sample.sampled_at) - Date.parse(previous.sampled_at)) / 1000;
  const bytes = fields.reduce((sum, f) => sum + sample[f] - previous[f], 0);
  return seconds > 0 && bytes > 0 ? bytes / seconds : 0;
}

function sparkline(values, max) {
  const top = Math.max(max ?? 0, ...values, 1);
  const step = 100 / (POINTS - 1);
  const offset = POINTS - values.length;
  return values.map((v, i) => `${((offset + i) * step).toFixed(1)},${(30 - (v / top) * 28).toFixed(1)}`).join(' ');
}

class VmStats extends HTMLElement {
  connectedCallback() {
    const id = this.getAttribute('vm');
    if (!history.has(id)) history.set(id, { samples: [], series: Object.fromEntries(CHARTS.map(([key]) => [key, []])) });
    this.poll();
    this.timer = setInterval(() => this.poll(), INTERVAL_MS);
  }

  disconnectedCallback() {
    clearInterval(this.timer);
  }

  async poll() {
    if (document.hidden) return;
    const id = this.getAttribute('vm');
    const state = history.get(id);
    const response = await api('GET', `/api/vms/${encodeURIComponent(id)}/stats`);
    if (!response.ok) {
      this.textContent = response.status === 409 ? 'No figures: the VM has no domain right now.' : 'Figures are not available.';
      return;
    }
    const sample = await response.json();
    const previous = state.samples.at(-1);
    state.samples = [...state.samples.slice(-1), sample];
    for (const [key, , value] of CHARTS) state.series[key] = [...state.series[key], value(sample, previous)].slice(-POINTS);
    this.draw(sample, state);
  }

  draw(sample, state) {
    const figures = CHARTS.map(([key, label, , text, max]) => {
      const values = state.series[key];
      const now = values.at(-1) ?? 0;
      return `<figure class="spark" data-chart="${key}"><figcaption>${label} <span>${text(now, sample)}</span></figcaption>` +
        `<svg viewBox="0 0 100 30" preserveAspectRatio="none" role="img" aria-label="${label}: ${text(now, sample)}">` +
        `<polyline points="${sparkline(values, max?.(sample))}" /></svg></figure>`;
    });
    this.innerHTML = `<div class="sparks">${figures.join('')}</div>`;
  }
}

customElements.define('limen-vm-stats', VmStats);

// A disclosure the user opened (a confirmation) stays open when live.js re-renders the page in
// place: the server's HTML has it closed. A submit is the end of it.
const opened = new Set();
document.addEventListener('toggle', (e) => {
  const d = e.target;
  if (d instanceof HTMLDetailsElement && d.id) d.open ? opened.add(d.id) : opened.delete(d.id);
}, true);
document.addEventListener('submit', () => opened.clear(), true);

// Arriving on a VM's page (from the create form, say) puts the focus on its heading; a re-render
// of the same page leaves the focus where it is.
let path = location.pathname;
const arrive = () => document.querySelector('h1[data-focus-on-arrival]')?.focus();
window.Blazor?.addEventListener?.('enhancedload', () => {
  if (location.pathname !== path) {
    path = location.pathname;
    opened.clear();
    arrive();
    return;
  }
  for (const id of opened) {
    const d = document.getElementById(id);
    if (d) d.open = true;
  }
});
if (document.activeElement === document.body) arrive();
