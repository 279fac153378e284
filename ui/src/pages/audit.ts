// Audit log: the org's events (admins also see system events) in a time range, newest first,
// filtered by parts of the actor, the action and the target or details (the API matches actor
// and action exactly, so the page reads the range, walking next_cursor, and filters here),
// shown 100 at a time with "Load more". The filters live in
// the URL (#/audit?action=user.create&since=…) so a filtered view can be linked. Owners get the
// signed export of the chosen range (GET /api/v1/audit/export), which `airmeshctl audit verify`
// checks offline.
import { api, AuditEvent, can, errorText, toError } from '../api';
import { append, badge, clear, dateTime, emptyState, h, notice, sourceAddr, targetLink } from '../dom';
import type { Ctx } from '../main';
import { details, detailsText } from './activity';
import { field } from './login';

const PAGE = 100;
const ACTIONS = [
  'auth.login', 'auth.logout',
  'user.create', 'user.delete', 'user.disable', 'user.enable', 'user.role', 'user.password', 'user.sessions_revoke', 'user.bootstrap',
  'team.create', 'team.delete', 'team.member_add', 'team.member_remove',
  'api_token.create', 'api_token.revoke', 'org.create',
  'runner_token.create', 'runner_token.revoke', 'runner.enroll', 'runner.connect', 'runner.disconnect', 'runner.renew', 'runner.revoke',
  'pod.create', 'pod.start', 'pod.stop', 'pod.exit', 'pod.fail', 'pod.delete', 'pod.terminal.take', 'pod.terminal.release',
  'audit.export', 'server.start', 'server.stop',
];

const FETCH = 1000; // events per request while reading a range
const MAX_FETCH = 200; // requests per range (200 000 events): past that, narrow the range

interface Filters {
  actor: string;
  action: string;
  text: string;
  since: string; // datetime-local value ("2026-01-02T03:04"), local time
  until: string;
}

export function auditPage(ctx: Ctx): () => void {
  ctx.title('Audit log');
  const owner = can.exportAudit(ctx.who);
  const messages = h('div', { class: 'messages' });
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const actor = h('input', { id: 'audit-actor', type: 'search', placeholder: 'user:alice or alice', autocomplete: 'off', spellcheck: 'false', value: q.get('actor') || '' });
  const action = h('input', { id: 'audit-action', type: 'search', placeholder: 'user.create', list: 'audit-actions', autocomplete: 'off', spellcheck: 'false', value: q.get('action') || '' });
  const text = h('input', { id: 'audit-text', type: 'search', placeholder: 'pod id, user, repo…', autocomplete: 'off', spellcheck: 'false', value: q.get('text') || '' });
  const since = h('input', { id: 'audit-since', type: 'datetime-local', value: q.get('since') || '' });
  const until = h('input', { id: 'audit-until', type: 'datetime-local', value: q.get('until') || '' });
  const err = h('div', { class: 'form-error', role: 'alert' });
  const apply = h('button', { type: 'submit', class: 'btn btn-primary', id: 'audit-apply' }, 'Apply');
  const reset = h('button', { type: 'button', class: 'btn', id: 'audit-clear' }, 'Clear');
  const form = h('form', { class: 'panel filters', id: 'audit-filters', novalidate: true, role: 'search', 'aria-label': 'Filter the audit log' },
    h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a }))),
    field('Actor', actor, 'Part of it: alice, user:alice, runner:, system.'),
    field('Action', action, 'Part of it: pod. or user.create.'),
    field('Target or details', text, 'Any part of the target or details.'),
    field('From', since, 'Local time, inclusive.'),
    field('Until', until, 'Local time, exclusive.'),
    h('div', { class: 'field field-button filter-buttons' }, reset, apply),
    err);
  const summary = h('p', { class: 'muted small', id: 'audit-summary', role: 'status' });
  const list = h('div', null, h('div', { class: 'loading' }, 'Loading events…'));
  const more = h('button', { type: 'button', class: 'btn', id: 'audit-more', hidden: true }, 'Load more');
  const results = h('section', { class: 'panel', 'aria-label': 'Events' }, summary, list, h('div', { class: 'actions load-more' }, more));

  let exportBox: HTMLElement | null = null;
  const exportBtn = h('button', { type: 'button', class: 'btn', id: 'audit-export' }, 'Export (signed, offline-verifiable)');
  const exportStatus = h('span', { class: 'muted small', role: 'status' });
  if (owner) {
    exportBox = h('section', { class: 'panel export', 'aria-label': 'Export' },
      h('div', { class: 'export-text' },
        h('h2', null, 'Offline export'),
        h('p', { class: 'muted' }, 'One signed file with every organization\'s events in the From–Until range above (the actor and action filters do not apply: the hash chain is exported whole). Verify it anywhere, without the appliance: ',
          h('code', null, 'airmeshctl audit verify FILE'), '.')),
      h('div', { class: 'export-actions' }, exportBtn, exportStatus));
  }

  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'Every state change and every refused security-relevant action, from the tamper-evident audit log. Newest first.')),
    form, messages, results, exportBox,
  ]);

  let stopped = false;
  let matched: AuditEvent[] = []; // the range's events that pass the filters, newest first
  let shown = 0;
  let loadSeq = 0;
  let applied: Filters = read();
  let tbody: HTMLTableSectionElement | null = null;

  function read(): Filters {
    return { actor: actor.value.trim(), action: action.value.trim(), text: text.value.trim(), since: since.value, until: until.value };
  }

  /** The query for the list and the export; null (and a message) when a field is wrong. */
  function query(f: Filters, withFilters: boolean): URLSearchParams | null {
    const p = new URLSearchParams();
    const ms = (v: string) => (v ? new Date(v).getTime() : 0);
    if (f.since && isNaN(ms(f.since))) return bad('"From" is not a date and time.', since);
    if (f.until && isNaN(ms(f.until))) return bad('"Until" is not a date and time.', until);
    if (f.since && f.until && ms(f.since) >= ms(f.until)) return bad('"Until" must be later than "From".', until);
    if (f.since) p.set('since', String(ms(f.since)));
    if (f.until) p.set('until', String(ms(f.until)));
    // The API's action filter is exact: use it only when the text names exactly one action
    // and no other contains it (then exact and substring agree and less is read).
    if (withFilters && f.action && ACTIONS.filter((a) => a.includes(f.action)).join() === f.action) p.set('action', f.action);
    return p;
  }
  function bad(msg: string, el: HTMLElement): null {
    err.textContent = msg;
    el.focus();
    return null;
  }

  function row(e: AuditEvent): HTMLElement {
    return h('tr', { 'data-seq': String(e.seq) },
      h('td', { class: 'small nowrap' }, dateTime(e.time_ms)),
      h('td', { class: 'small actor', title: e.actor }, e.actor || '—'),
      h('td', { class: 'mono small nowrap' }, e.action),
      h('td', { class: 'small ellipsis' }, targetLink(e.target)),
      h('td', null, badge(e.result, e.result === 'ok' ? 'ok' : e.result === 'denied' ? 'denied' : 'error'), details(e)),
      h('td', { class: 'small muted nowrap', title: e.source }, sourceAddr(e.source) || '—'));
  }

  function filtered(f: Filters): boolean {
    return !!(f.actor || f.action || f.text || f.since || f.until);
  }

  function matches(f: Filters, e: AuditEvent): boolean {
    const has = (hay: string, needle: string) => hay.toLowerCase().includes(needle.toLowerCase());
    if (f.actor && !has(e.actor || '', f.actor)) return false;
    if (f.action && !has(e.action, f.action)) return false;
    if (f.text && !has((e.target || '') + ' ' + detailsText(e.details), f.text)) return false;
    return true;
  }

  /** Read the range (every page), keep what matches, newest first. */
  async function fetchAll(f: Filters): Promise<AuditEvent[] | null> {
    const p = query(f, true);
    if (!p) return null;
    const seq = ++loadSeq;
    const out: AuditEvent[] = [];
    let cursor: number | null = 1;
    for (let i = 0; i < MAX_FETCH && cursor !== null; i++) {
      p.set('limit', String(FETCH));
      p.set('cursor', String(cursor));
      const r = await api<{ events: AuditEvent[]; next_cursor: number | null }>('GET', '/audit?' + p.toString());
      if (stopped || seq !== loadSeq) return null;
      for (const e of r.events) if (matches(f, e)) out.push(e);
      cursor = r.next_cursor ?? null;
      if (cursor !== null) summary.textContent = `Reading the log… ${out.length} matching so far.`;
    }
    if (cursor !== null) {
      clear(messages);
      messages.appendChild(notice('warn', `This range holds more than ${MAX_FETCH * FETCH} events; only the oldest of them are searched. Narrow it with From and Until.`, () => {}));
    }
    return out.sort((a, b) => b.seq - a.seq);
  }

  function showMore(): void {
    if (!tbody) return;
    const start = shown;
    for (const e of matched.slice(shown, shown + PAGE)) tbody.appendChild(row(e));
    shown = Math.min(matched.length, shown + PAGE);
    const left = shown < matched.length;
    more.hidden = !left;
    summary.textContent = shown === 0 ? '' : `${shown} event${shown === 1 ? '' : 's'}${left ? ' so far: there are more' : ''}.`;
    if (start > 0) (tbody.rows[start]?.cells[0] as HTMLElement | undefined)?.scrollIntoView({ block: 'nearest' });
  }

  async function load(first: boolean): Promise<void> {
    if (!first) {
      showMore();
      return;
    }
    more.disabled = true;
    try {
      const got = await fetchAll(applied);
      if (!got || stopped) return;
      if (!messages.querySelector('.notice-warn')) clear(messages);
      matched = got;
      clear(list);
      shown = 0;
      tbody = null;
      summary.textContent = '';
      if (matched.length === 0) {
        list.appendChild(emptyState(filtered(applied) ? 'No events match' : 'No events yet',
          filtered(applied) ? 'Nothing in the audit log matches these filters (each matches any part of the text); try clearing one.' : 'Logins, user changes, runners and pods show up here as they happen.'));
        more.hidden = true;
        return;
      }
      tbody = h('tbody');
      list.appendChild(h('table', { class: 'table', id: 'audit-table' },
        h('thead', null, h('tr', null, ['Time', 'Actor', 'Action', 'Target', 'Result', 'Source'].map((t) => h('th', { scope: 'col' }, t)))),
        tbody));
      showMore();
    } catch (e) {
      if (!stopped) {
        clear(messages);
        messages.appendChild(notice('error', errorText(e), () => {}));
      }
    } finally {
      more.disabled = false;
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    err.textContent = '';
    const f = read();
    if (!query(f, true)) return;
    applied = f;
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) p.set(k, v);
    const s = p.toString();
    history.replaceState(null, '', '#/audit' + (s ? '?' + s : ''));
    void load(true);
  });
  reset.addEventListener('click', () => {
    actor.value = action.value = text.value = since.value = until.value = '';
    form.requestSubmit();
  });
  more.addEventListener('click', () => void load(false));

  exportBtn.addEventListener('click', async () => {
    err.textContent = '';
    const p = query(read(), false);
    if (!p) return;
    exportBtn.disabled = true;
    exportStatus.textContent = 'Building the export…';
    try {
      const res = await fetch('/api/v1/audit/export' + (p.toString() ? '?' + p.toString() : ''), { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) throw await toError(res);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: exportName(read()) });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      exportStatus.textContent = `Downloaded ${a.download} (${size(blob.size)}).`;
    } catch (e) {
      exportStatus.textContent = '';
      clear(messages);
      messages.appendChild(notice('error', 'The export failed: ' + errorText(e), () => {}));
    } finally {
      exportBtn.disabled = false;
    }
  });

  void load(true);
  return () => {
    stopped = true;
  };
}

function exportName(f: Filters): string {
  const part = (v: string) => v.replace(/[-:]/g, '').replace('T', '-');
  const range = f.since || f.until ? `-${f.since ? part(f.since) : 'start'}-to-${f.until ? part(f.until) : 'now'}` : '';
  return `airmesh-audit${range}.amexp`;
}

function size(n: number): string {
  if (n < 1024) return n + ' bytes';
  if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1048576).toFixed(1) + ' MiB';
}
