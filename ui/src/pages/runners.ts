// Runners: every enrolled runner with its state, labels and certificate expiry, refreshed
// every few seconds; "Add a runner" creates a one-time enrollment token and shows the command
// to paste on the runner host; revoking (a runner or an unused token) asks first.
import { api, errorText, ROLE_ADMIN, Runner } from '../api';
import { ago, append, badge, clear, confirmDialog, dateTime, h, keepSecret, notice, until } from '../dom';
import type { Ctx } from '../main';
import { field } from './login';

interface Token {
  id: string;
  state: string;
  created_ms: number;
  expires_ms: number;
  created_by: string;
  used_by: string;
  labels: Record<string, string>;
}

export function runnersPage(ctx: Ctx): () => void {
  ctx.title('Runners');
  const isAdmin = ctx.who.role >= ROLE_ADMIN;
  const messages = h('div', { class: 'messages' });
  const addPanel = h('section', { class: 'panel', hidden: true, 'aria-label': 'Add a runner' });
  const list = h('section', { class: 'panel' }, h('div', { class: 'loading' }, 'Loading runners…'));
  const tokens = h('section', { class: 'panel', hidden: true });
  const addBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'add-runner' }, 'Add a runner');
  addBtn.addEventListener('click', () => {
    // A shown-once secret stays until Done: a second click must not throw it away.
    if (!addPanel.hidden && addPanel.dataset.secret) {
      keepSecret(addPanel);
      return;
    }
    addPanel.hidden = !addPanel.hidden;
    if (!addPanel.hidden) renderAdd();
  });
  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'Runners are the machines that run pods. Each holds a client certificate from this appliance.'),
      isAdmin ? addBtn : h('span', { class: 'muted' }, 'Adding runners needs the admin role.')),
    messages, addPanel, list, tokens,
  ]);

  let stopped = false;
  const showError = (e: unknown) => {
    clear(messages);
    messages.appendChild(notice('error', errorText(e), () => {}));
  };

  function renderAdd(): void {
    clear(addPanel);
    delete addPanel.dataset.secret;
    const labels = h('input', { id: 'token-labels', placeholder: 'gpu=a100 zone=lab', autocomplete: 'off' });
    const ttl = h('select', { id: 'token-ttl' },
      h('option', { value: '15m' }, '15 minutes'),
      h('option', { value: '1h', selected: true }, '1 hour'),
      h('option', { value: '1d' }, '1 day'),
      h('option', { value: '7d' }, '7 days'));
    const err = h('div', { class: 'form-error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create enrollment token');
    const form = h('form', { class: 'form-grid' },
      h('h2', null, 'Add a runner'),
      h('p', { class: 'muted span-all' }, 'A one-time token lets one machine enroll. Run the command it gives on that machine, with airmesh-runner installed.'),
      field('Labels', labels, 'Optional key=value pairs, separated by spaces or commas. Pods can ask for runners by label.'),
      field('Token valid for', ttl),
      err,
      h('div', { class: 'actions span-all' },
        h('button', { type: 'button', class: 'btn', onclick: () => { addPanel.hidden = true; } }, 'Cancel'),
        submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const parsed = parsePairs(labels.value);
      if (typeof parsed === 'string') {
        err.textContent = parsed;
        return;
      }
      submit.disabled = true;
      try {
        const t = await api<{ token: string; id: string; expires_ms: number; ca_sha256: string; command: string }>(
          'POST', '/runner-tokens', { ttl: ttl.value, labels: parsed });
        showCommand(t);
        void refresh();
      } catch (e2) {
        err.textContent = errorText(e2);
      } finally {
        submit.disabled = false;
      }
    });
    addPanel.appendChild(form);
    labels.focus();
  }

  function showCommand(t: { token: string; id: string; expires_ms: number; ca_sha256: string; command: string }): void {
    clear(addPanel);
    addPanel.dataset.secret = '1';
    const cmd = h('pre', { class: 'command', id: 'enroll-command', tabindex: '0' }, t.command);
    const copied = h('span', { class: 'muted', role: 'status' });
    const copy = h('button', { type: 'button', class: 'btn' }, 'Copy');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(t.command);
        copied.textContent = 'Copied.';
      } catch {
        const r = document.createRange();
        r.selectNodeContents(cmd);
        getSelection()?.removeAllRanges();
        getSelection()?.addRange(r);
        copied.textContent = 'Selected: press Ctrl+C to copy.';
      }
    });
    append(addPanel, [
      h('h2', null, 'Run this on the runner host'),
      h('p', null, `The token works once and expires ${until(t.expires_ms)} (${dateTime(t.expires_ms)}). It is shown only now.`),
      cmd,
      h('p', { class: 'muted small' }, 'Then start it with ', h('code', null, 'airmesh-runner run'), '. The runner checks this appliance against the CA fingerprint ', h('code', { class: 'break' }, t.ca_sha256), '.'),
      h('div', { class: 'actions' }, copied, copy, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => { addPanel.hidden = true; delete addPanel.dataset.secret; } }, 'Done')),
    ]);
    copy.focus();
  }

  async function revokeRunner(r: Runner): Promise<void> {
    const ok = await confirmDialog(`Revoke runner ${r.hostname}?`,
      'Its connection closes at once and its certificate is refused from then on. Pods running on it stop. To use the machine again, enroll it with a new token.',
      'Revoke runner');
    if (!ok) return;
    try {
      await api('POST', `/runners/${encodeURIComponent(r.id)}/revoke`);
      clear(messages);
      messages.appendChild(notice('ok', `Runner ${r.hostname} is revoked.`, () => {}));
      void refresh();
    } catch (e) {
      showError(e);
    }
  }

  async function revokeToken(t: Token): Promise<void> {
    const ok = await confirmDialog('Revoke this enrollment token?', 'Nobody can enroll a runner with it afterwards.', 'Revoke token');
    if (!ok) return;
    try {
      await api('POST', `/runner-tokens/${encodeURIComponent(t.id)}/revoke`);
      void refresh();
    } catch (e) {
      showError(e);
    }
  }

  function renderRunners(runners: Runner[]): void {
    clear(list);
    if (runners.length === 0) {
      append(list, [h('div', { class: 'empty' },
        h('h2', null, 'No runners yet'),
        h('p', null, isAdmin
          ? 'Pods run on runners. Enroll a machine with a one-time token and it shows up here within seconds.'
          : 'Pods run on runners. An admin of your organization enrolls them; they show up here.'),
        isAdmin && addPanel.hidden ? h('button', { type: 'button', class: 'btn btn-primary', onclick: () => addBtn.click() }, 'Add a runner') : null)]);
      return;
    }
    runners.sort((a, b) => order(a.state) - order(b.state) || a.hostname.localeCompare(b.hostname));
    const rows = runners.map((r) => h('tr', { 'data-runner': r.id },
      h('td', null, h('div', { class: 'strong' }, r.hostname || '(unnamed)'), h('div', { class: 'muted mono small' }, r.id)),
      h('td', null, badge(r.state)),
      h('td', null, labelChips(r.labels)),
      h('td', null, r.version || '—'),
      h('td', { title: dateTime(r.last_heartbeat_ms) }, ago(r.last_heartbeat_ms)),
      h('td', { title: dateTime(r.cert_not_after_ms), class: certClass(r) }, r.revoked ? '—' : until(r.cert_not_after_ms)),
      h('td', { class: 'num' }, String(r.capacity || '—')),
      h('td', { class: 'row-actions' }, isAdmin && !r.revoked
        ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void revokeRunner(r) }, 'Revoke')
        : null)));
    append(list, [h('table', { class: 'table', id: 'runners-table' },
      h('thead', null, h('tr', null, ['Runner', 'State', 'Labels', 'Version', 'Last heartbeat', 'Certificate expires', 'Capacity', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows))]);
  }

  function renderTokens(ts: Token[]): void {
    clear(tokens);
    const shown = ts.filter((t) => t.state === 'active').sort((a, b) => b.created_ms - a.created_ms);
    tokens.hidden = shown.length === 0;
    if (tokens.hidden) return;
    append(tokens, [
      h('h2', null, 'Unused enrollment tokens'),
      h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['Token', 'Labels', 'Created', 'Expires', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, shown.map((t) => h('tr', null,
          h('td', { class: 'mono small' }, t.id),
          h('td', null, labelChips(t.labels)),
          h('td', { title: dateTime(t.created_ms) }, `${ago(t.created_ms)} by ${t.created_by.replace(/^user:/, '')}`),
          h('td', { title: dateTime(t.expires_ms) }, until(t.expires_ms)),
          h('td', { class: 'row-actions' }, h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void revokeToken(t) }, 'Revoke')))))),
    ]);
  }

  async function refresh(): Promise<void> {
    try {
      const r = await api<{ runners: Runner[] }>('GET', '/runners');
      if (stopped) return;
      renderRunners(r.runners);
      if (isAdmin) {
        const t = await api<{ tokens: Token[] }>('GET', '/runner-tokens');
        if (!stopped) renderTokens(t.tokens);
      }
    } catch (e) {
      if (!stopped) showError(e);
    }
  }
  void refresh();
  const timer = setInterval(() => { if (!document.hidden) void refresh(); }, 4000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function order(state: string): number {
  return state === 'online' ? 0 : state === 'offline' ? 1 : 2;
}

function certClass(r: Runner): string {
  const left = r.cert_not_after_ms - Date.now();
  return !r.revoked && left < 86400000 ? 'warn-text' : '';
}

export function labelChips(labels: Record<string, string> | undefined): HTMLElement {
  const entries = Object.entries(labels || {});
  if (entries.length === 0) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'chips' }, entries.map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`)));
}

/** "a=1 b=2, c=3" → {a:"1",b:"2",c:"3"}, or an error message. */
export function parsePairs(text: string, what = 'label'): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) return `Write each ${what} as key=value ("${part}" has no "=").`;
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}
