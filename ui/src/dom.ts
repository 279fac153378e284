// Small DOM helpers: build elements without innerHTML (text is always text, never markup).
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = String(v);
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function ago(ms: number): string {
  if (!ms) return 'never';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < -5) return 'in ' + span(-s);
  if (s < 5) return 'just now';
  return span(s) + ' ago';
}

export function until(ms: number): string {
  if (!ms) return '—';
  const s = Math.round((ms - Date.now()) / 1000);
  return s <= 0 ? 'expired ' + span(-s) + ' ago' : 'in ' + span(s);
}

function span(s: number): string {
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  if (s < 86400 * 2) return Math.round(s / 3600) + ' h';
  return Math.round(s / 86400) + ' days';
}

export function dateTime(ms: number): string {
  if (!ms) return '—';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function badge(text: string, kind = text): HTMLElement {
  return h('span', { class: 'badge badge-' + kind.replace(/[^a-z]/g, '') }, text);
}

/** A modal confirm built from DOM (window.confirm is unstyled and blocks tests). */
export function confirmDialog(title: string, body: string, action: string, danger = true): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
    const done = (v: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(v);
    };
    append(dialog, [
      h('h2', { id: 'confirm-title' }, title),
      h('p', null, body),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', onclick: () => done(true) }, action)),
    ]);
    dialog.addEventListener('cancel', () => done(false));
    document.body.appendChild(dialog);
    dialog.showModal();
    (dialog.querySelector('.btn-danger, .btn-primary') as HTMLElement | null)?.focus();
  });
}

/** A dismissible message strip: kind is "error", "info" or "ok". */
export function notice(kind: 'error' | 'info' | 'ok' | 'warn', text: string | Node, onClose?: () => void): HTMLElement {
  const el = h('div', { class: 'notice notice-' + kind, role: kind === 'error' ? 'alert' : 'status' }, h('span', { class: 'notice-text' }, text));
  if (onClose !== undefined) {
    el.appendChild(h('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss', onclick: () => { el.remove(); onClose(); } }, '×'));
  }
  return el;
}

/** A secret shown once (a generated password, a token): the text, a Copy button and a status
 * saying it was copied (or selected, when the clipboard is not available: plain http). The
 * caller puts `actions` (status + Copy, then its own buttons) under the text. */
export function secretBox(text: string, id: string, ...more: Node[]): { box: HTMLElement; copy: HTMLButtonElement } {
  const pre = h('pre', { class: 'command secret', id, tabindex: '0' }, text);
  const status = h('span', { class: 'muted small', role: 'status' });
  const copy = h('button', { type: 'button', class: 'btn' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = 'Copied.';
    } catch {
      const r = document.createRange();
      r.selectNodeContents(pre);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(r);
      status.textContent = 'Selected: press Ctrl+C to copy.';
    }
  });
  return { box: h('div', { class: 'secret-box' }, pre, h('div', { class: 'actions' }, status, copy, more)), copy };
}

/** A panel's list area showing "Loading…", a table, or an empty state. */
export function emptyState(title: string, text: string, action?: Node | null): HTMLElement {
  return h('div', { class: 'empty' }, h('h2', null, title), h('p', null, text), action || null);
}
