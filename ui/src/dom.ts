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

/** One line of text cut with an ellipsis when it does not fit; the full text shows on hover. */
export function trunc(text: string, cls = '', tag: 'span' | 'div' | 'a' = 'span', attrs: Record<string, string> = {}): HTMLElement {
  return h(tag, { ...attrs, class: ('trunc ' + cls).trim(), title: text }, text);
}

const SIGNALS: Record<number, [string, string]> = {
  1: ['SIGHUP', 'hung up'], 2: ['SIGINT', 'interrupted'], 3: ['SIGQUIT', 'quit'], 4: ['SIGILL', 'crashed'],
  6: ['SIGABRT', 'aborted'], 7: ['SIGBUS', 'crashed'], 8: ['SIGFPE', 'crashed'], 9: ['SIGKILL', 'killed'],
  11: ['SIGSEGV', 'crashed'], 13: ['SIGPIPE', 'broken pipe'], 14: ['SIGALRM', 'timed out'], 15: ['SIGTERM', 'terminated'],
  24: ['SIGXCPU', 'CPU limit'], 25: ['SIGXFSZ', 'file size limit'],
};

/** An exit code in words: 0 "exited normally", 137 "killed (SIGKILL)", 127 "command not found". */
export function exitWords(code: number | undefined | null): string {
  if (code === undefined || code === null) return 'exit code unknown';
  if (code === 0) return 'exited normally (code 0)';
  if (code === 126) return 'command not executable (code 126)';
  if (code === 127) return 'command not found (code 127)';
  if (code > 128 && code < 128 + 65) {
    const s = SIGNALS[code - 128];
    return s ? `${s[1]} (${s[0]})` : `killed by signal ${code - 128}`;
  }
  return `exited with code ${code} (an error)`;
}

/** The source of an audit event as one address: "ipv4:127.0.0.1:5114" (gRPC peers) and
 * "127.0.0.1" (HTTP) both read "127.0.0.1"; the raw value stays in the title. */
export function sourceAddr(src: string): string {
  if (!src) return '';
  let m = src.match(/^ipv4:([\d.]+)(?::\d+)?$/);
  if (m) return m[1];
  m = src.match(/^ipv6:\[?([0-9a-fA-F:.]+?)\]?(?::\d+)?$/) || src.match(/^ipv6:\[([^\]]+)\]/);
  if (m) return m[1];
  m = src.match(/^unix:(.*)$/);
  if (m) return 'local socket';
  return src;
}

/** An audit target as a link to its page when there is one (pod:ID → the pod). */
export function targetLink(target: string): HTMLElement {
  if (!target) return h('span', { class: 'muted' }, '—');
  const m = target.match(/^(pod|user|runner|team|org|runner_token|token|api_token):(.+)$/);
  const href = !m ? '' : m[1] === 'pod' ? '#/pods/' + encodeURIComponent(m[2]) : m[1] === 'user' ? '#/users'
    : m[1] === 'runner' || m[1] === 'runner_token' || m[1] === 'token' ? '#/runners' : m[1] === 'team' ? '#/teams' : m[1] === 'org' ? '#/orgs' : m[1] === 'api_token' ? '#/users' : '';
  return href ? trunc(target, 'target-link', 'a', { href }) : trunc(target);
}

/** A second click on "Add …" while a shown-once secret is on screen: keep it, and say why. */
export function keepSecret(panel: HTMLElement): void {
  panel.querySelector('.keep-secret')?.remove();
  const n = notice('warn', 'This is shown only once: copy it first, then press Done.');
  n.classList.add('keep-secret');
  panel.insertBefore(n, panel.firstChild);
  panel.scrollIntoView({ block: 'nearest' });
  (panel.querySelector('pre.command') as HTMLElement | null)?.focus();
}
