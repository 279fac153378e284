// Activity: the latest audit events, newest first. Live over wss://HOST/api/v1/events when the
// appliance offers it; otherwise (or when that socket drops) GET /api/v1/audit every 5 s, asking
// only for events after the last one seen (the cursor).
import { api, AuditEvent, errorText } from '../api';
import { append, badge, clear, dateTime, h, notice, sourceAddr, targetLink } from '../dom';
import type { Ctx } from '../main';
import { actorEl, actorText, loadPeople } from '../names';

const KEEP = 50;
const PAGE = 1000;

export function activityPage(ctx: Ctx): () => void {
  ctx.title('Activity');
  const messages = h('div', { class: 'messages' });
  const mode = h('span', { class: 'muted small', id: 'activity-mode' });
  const filter = h('input', { id: 'activity-filter', type: 'search', placeholder: 'Filter by actor, action or target', 'aria-label': 'Filter events' });
  const list = h('section', { class: 'panel' }, h('div', { class: 'loading' }, 'Loading events…'));
  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'Every action on this appliance is recorded in the tamper-evident audit log. These are the latest ', String(KEEP), '.'),
      h('div', { class: 'toolbar-right' }, mode, filter)),
    messages, list,
  ]);
  let events: AuditEvent[] = [];
  void loadPeople(true).then(() => { if (!stopped) render(); });
  let next = 1; // the seq to ask for next
  let stopped = false;
  let timer: ReturnType<typeof setInterval> | null = null;
  let ws: WebSocket | null = null;

  const add = (evs: AuditEvent[]) => {
    for (const e of evs) if (e.seq >= next) next = e.seq + 1;
    const seen = new Set(events.map((e) => e.seq));
    events = events.concat(evs.filter((e) => !seen.has(e.seq))).sort((a, b) => b.seq - a.seq).slice(0, KEEP);
    render();
  };

  function render(): void {
    clear(list);
    const q = filter.value.trim().toLowerCase();
    const shown = q ? events.filter((e) => [e.actor, actorText(e.actor), e.action, e.target, e.result, e.source, detailsText(e.details)].join(' ').toLowerCase().includes(q)) : events;
    if (shown.length === 0) {
      list.appendChild(h('div', { class: 'empty' }, h('h2', null, q ? 'Nothing matches' : 'No events yet'),
        h('p', null, q ? 'No recent event mentions that text.' : 'Logins, runner enrollments and pods show up here as they happen.')));
      return;
    }
    append(list, [h('table', { class: 'table', id: 'activity-table' },
      h('thead', null, h('tr', null, ['Time', 'Actor', 'Action', 'Target', 'Result', 'Source'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, shown.map((e) => h('tr', null,
        h('td', { class: 'small nowrap', title: dateTime(e.time_ms) }, shortTime(e.time_ms)),
        h('td', { class: 'small actor' }, actorEl(e.actor)),
        h('td', { class: 'mono small' }, e.action),
        h('td', { class: 'small ellipsis' }, targetLink(e.target)),
        h('td', null, badge(e.result, e.result === 'ok' ? 'ok' : e.result === 'denied' ? 'denied' : 'error'), details(e)),
        h('td', { class: 'small muted ellipsis source', title: e.source }, sourceAddr(e.source) || '—')))))]);
  }

  async function poll(): Promise<void> {
    try {
      // Page forward from the cursor; on the first call that walks the whole log once.
      for (let i = 0; i < 50 && !stopped; i++) {
        const r = await api<{ events: AuditEvent[]; next_cursor: number | null }>('GET', `/audit?limit=${PAGE}&cursor=${next}`);
        add(r.events);
        if (r.next_cursor === null || r.next_cursor === undefined) break;
        next = Math.max(next, r.next_cursor);
      }
      clear(messages);
    } catch (e) {
      if (!stopped) {
        clear(messages);
        messages.appendChild(notice('error', errorText(e)));
      }
    }
  }

  function startPolling(): void {
    if (timer || stopped) return;
    mode.textContent = 'Refreshed every 5 s';
    timer = setInterval(() => { if (!document.hidden) void poll(); }, 5000);
  }

  function tryLive(): void {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let opened = false;
    try {
      ws = new WebSocket(`${proto}//${location.host}/api/v1/events`);
    } catch {
      startPolling();
      return;
    }
    ws.onopen = () => {
      opened = true;
      mode.textContent = 'Live';
    };
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string') return;
      try {
        const e = JSON.parse(m.data);
        if (e && typeof e.seq === 'number' && e.action) add([e as AuditEvent]);
      } catch {
        /* not an event */
      }
    };
    ws.onclose = () => {
      ws = null;
      if (stopped) return;
      // Not offered (or dropped): fall back to polling, catching up from the cursor.
      if (opened) void poll();
      startPolling();
    };
  }

  filter.addEventListener('input', render);
  void poll().then(() => { if (!stopped) tryLive(); });
  return () => {
    stopped = true;
    if (timer) clearInterval(timer);
    if (ws) ws.close();
  };
}

/** An event's details: one line (cut to fit), which opens to the whole of it. */
export function details(e: AuditEvent): HTMLElement | null {
  const d = e.details;
  if (!d || (typeof d === 'object' && Object.keys(d as object).length === 0)) return null;
  const text = detailsText(d);
  return h('details', { class: 'more' },
    h('summary', { title: 'Show all details' }, h('span', { class: 'muted small detail' }, text)),
    h('pre', { class: 'small' }, typeof d === 'string' ? d : JSON.stringify(d, null, 2)));
}

export function detailsText(d: unknown): string {
  if (!d) return '';
  return typeof d === 'string' ? d : Object.entries(d as Record<string, unknown>).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
}

export function shortTime(ms: number): string {
  const d = new Date(ms);
  const full = dateTime(ms);
  return d.toDateString() === new Date().toDateString() ? full.slice(11) : full.slice(0, 16);
}
