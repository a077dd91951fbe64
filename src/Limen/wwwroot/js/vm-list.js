// The VM list's selection. Checkboxes are form state in the DOM; a live refresh patches the rows
// by position, so a row that moved (a VM created above it) could inherit another row's tick. The
// element keeps the selected ids and puts the ticks back on their VMs after every enhanced update.
class VmList extends HTMLElement {
  connectedCallback() {
    this.selected = new Set();
    this.onChange = (e) => {
      const box = e.target;
      if (!(box instanceof HTMLInputElement) || box.type !== 'checkbox') return;
      if (box.hasAttribute('data-select-all')) {
        for (const row of this.boxes()) { row.checked = box.checked; this.note(row); }
      } else {
        this.note(box);
      }
    };
    this.restore = () => {
      for (const box of this.boxes()) box.checked = this.selected.has(box.value);
    };
    this.addEventListener('change', this.onChange);
    window.Blazor?.addEventListener?.('enhancedload', this.restore);
  }

  disconnectedCallback() {
    this.removeEventListener('change', this.onChange);
    window.Blazor?.removeEventListener?.('enhancedload', this.restore);
  }

  boxes() { return this.querySelectorAll('input[type=checkbox][name=ids]'); }

  note(box) { if (box.checked) this.selected.add(box.value); else this.selected.delete(box.value); }
}

customElements.define('limen-vm-list', VmList);
