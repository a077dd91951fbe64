// The create form explains a request that would exceed the quota before it is sent: the page
// renders what is left into data- attributes; this compares the fields with it. The server
// checks again (and refuses with the same quota problem when scripts are off).
const RESOURCES = [
  ['vms', () => 1, (n) => `This needs 1 VM; ${n} are left`],
  ['vcpus', (f) => f.vcpus, (n, want) => `This needs ${want} vCPUs; ${n} are left`],
  ['memory', (f) => f.memory, (n, want) => `This needs ${want} MiB of memory; ${n} MiB are left`],
  ['disk', (f) => f.disk, (n, want) => `This needs ${want} GB of disk; ${n} GB are left`],
];

class CreateVm extends HTMLElement {
  connectedCallback() {
    this.check = () => this.update();
    this.addEventListener('input', this.check);
    this.update();
  }

  disconnectedCallback() {
    this.removeEventListener('input', this.check);
  }

  update() {
    const fields = {};
    for (const input of this.querySelectorAll('[data-quota]')) fields[input.dataset.quota] = Number(input.value) || 0;
    const over = RESOURCES.flatMap(([name, want, say]) => {
      const left = Number(this.dataset[`${name}Left`]);
      return want(fields) > left ? [say(left, want(fields))] : [];
    });
    const message = this.querySelector('#quota-check');
    const submit = this.querySelector('#create-submit');
    if (message) message.textContent = over.join('. ');
    if (submit) submit.disabled = over.length > 0;
  }
}

customElements.define('limen-create-vm', CreateVm);
// An enhanced re-render (a refused post) patches the form back to the server's HTML: check again.
window.Blazor?.addEventListener?.('enhancedload', () => document.querySelectorAll('limen-create-vm').forEach((e) => e.update()));
