// Admin pages: <limen-upload> sends an image file to the upload endpoint with XMLHttpRequest, whose
// upload events report progress (fetch has none), and shows it; then the page re-renders to list it.
import { signInAgain } from './api.js';

const csrf = () => document.querySelector('meta[name="limen-csrf"]')?.content ?? '';

class LimenUpload extends HTMLElement {
  connectedCallback() {
    this.form = this.querySelector('form');
    this.submit = (e) => { e.preventDefault(); this.send(); };
    this.form?.addEventListener('submit', this.submit);
  }

  disconnectedCallback() {
    this.form?.removeEventListener('submit', this.submit);
  }

  report(state, percent, text) {
    this.querySelector('progress').value = percent;
    this.querySelector('[role=status]').textContent = text;
    this.dispatchEvent(new CustomEvent('limen:upload', { bubbles: true, detail: { state, percent } }));
  }

  send() {
    const { name, kind, file } = this.form.elements;
    const chosen = file.files[0];
    if (!chosen) return;
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/admin/images/upload?name=${encodeURIComponent(name.value.trim())}&kind=${encodeURIComponent(kind.value)}`);
    xhr.setRequestHeader('X-CSRF-TOKEN', csrf());
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) {
        const percent = Math.round((e.loaded * 100) / e.total);
        this.report('uploading', percent, `Uploading… ${percent}%`);
      }
    });
    xhr.addEventListener('load', () => {
      if (xhr.status === 401) return signInAgain();
      if (xhr.status === 201) {
        this.report('done', 100, `Uploaded ${name.value.trim()}.`);
        window.Blazor?.navigateTo?.(location.pathname, { replaceHistoryEntry: true });
        return;
      }
      let detail = xhr.statusText;
      try { detail = JSON.parse(xhr.responseText).detail ?? detail; } catch { /* not problem+json */ }
      this.report('failed', 0, `Upload refused: ${detail}`);
    });
    xhr.addEventListener('error', () => this.report('failed', 0, 'Upload failed: the connection broke.'));
    this.report('uploading', 0, 'Uploading… 0%');
    xhr.send(chosen);
  }
}

customElements.define('limen-upload', LimenUpload);
