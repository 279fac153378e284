// Board: the organization's tickets (issue 13) in one column per status, cards with key, title,
// priority and assignee (display names). Members drag a card to another column (HTML5 drag and
// drop; on a phone, the card's status menu does the same): the appliance checks the move, and a
// refused one snaps back with the appliance's reason. A card opens the ticket (#/board/KEY): its
// description and comments rendered from markdown SAFELY (marked to HTML, then DOMPurify to a
// DOM fragment: no script, no event handler attributes, no javascript: URLs survive), the fields,
// a comment box, and "Start a pod" (a pod on branch <key>, the ticket as its prompt).
// Editors on the ticket (members and above): assignee (a user of the org or one of its pods that
// has not ended), labels, parent and blocks / blocked by (blocked by X is saved as X's blocks);
// the appliance checks each change and a refusal (a cycle, an unknown ticket) shows its reason.
// Live: both pages follow the events stream (ticket.* records): the board redraws when others
// create, change or move tickets, but never under a drag or a move on its way (the new list
// waits until the drop is done); an open ticket redraws unless the user is typing in it.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

import { api, errorText, Pod, podEnded, ROLE_MEMBER, User } from '../api';
import { append, badge, clear, dateTime, h, notice } from '../dom';
import type { Ctx } from '../main';
import { actorEl, loadPeople } from '../names';
import { subscribeEvents } from '../events';

export interface Ticket {
  key: string;
  number: number;
  title: string;
  description: string;
  status: string;
  priority: string;
  assignee: string;
  labels: string[];
  parent: string;
  blocks: string[];
  blocked_by: string[];
  pods: string[];
  branch: string;
  created_by: string;
  created_ms: number;
  comments: { author: string; time_ms: number; body: string }[];
}

export const STATUSES: [string, string][] = [
  ['backlog', 'Backlog'], ['todo', 'To do'], ['in_progress', 'In progress'], ['in_review', 'In review'], ['done', 'Done'],
];
const PRIORITIES = ['none', 'low', 'medium', 'high', 'urgent'];

const escapeHtml = (t: string) => t.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
// Raw HTML in a ticket's markdown is shown as the text it is, never parsed: marked's own output
// is the only markup (it escapes text and attribute values), and DOMPurify then removes what
// markdown itself can express but must not do (javascript: links and the like). Parsing the raw
// HTML, even in DOMPurify's inert document, would already make the browser try its handlers.
const md = new Marked({ async: false, gfm: true, breaks: true });
md.use({ renderer: { html: (tok: { text: string }) => escapeHtml(tok.text) } });

/** Markdown as a sanitized DOM fragment (never raw HTML into the page). */
export function markdown(src: string): HTMLElement {
  const html = md.parse(src || '') as string;
  const frag = DOMPurify.sanitize(html, { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ['style', 'form', 'input'] });
  const box = h('div', { class: 'markdown' });
  box.appendChild(frag);
  for (const a of Array.from(box.querySelectorAll('a'))) {
    a.setAttribute('rel', 'noopener noreferrer');
    a.setAttribute('target', '_blank');
  }
  return box;
}

function assigneeEl(a: string): HTMLElement {
  if (!a) return h('span', { class: 'muted small' }, 'unassigned');
  if (a.startsWith('pod:')) return h('a', { class: 'small trunc', href: '#/pods/' + a.slice(4), title: a }, a.slice(4));
  return actorEl(a, 'small');
}

export function boardPage(ctx: Ctx): () => void {
  ctx.title('Board');
  const writer = ctx.who.role >= ROLE_MEMBER;
  const messages = h('div', { class: 'messages', id: 'board-messages' });
  const say = (kind: 'error' | 'ok' | 'info', text: string) => {
    clear(messages);
    messages.appendChild(notice(kind, text));
  };
  const cols = new Map<string, HTMLElement>();
  const counts = new Map<string, HTMLElement>();
  const board = h('div', { class: 'board', id: 'board' });
  for (const [st, label] of STATUSES) {
    const list = h('div', { class: 'board-cards', 'data-status': st });
    const count = h('span', { class: 'muted small' }, '0');
    const col = h('section', { class: 'board-col', 'data-status': st, 'aria-label': label },
      h('h2', { class: 'board-col-title' }, label, ' ', count), list);
    cols.set(st, list);
    counts.set(st, count);
    if (writer) {
      col.addEventListener('dragover', (e) => { e.preventDefault(); col.classList.add('drop-target'); });
      col.addEventListener('dragleave', () => col.classList.remove('drop-target'));
      col.addEventListener('drop', (e) => {
        e.preventDefault();
        col.classList.remove('drop-target');
        const key = e.dataTransfer?.getData('text/plain') || '';
        if (key) void moveTo(key, st);
      });
    }
    board.appendChild(col);
  }
  const tickets = new Map<string, Ticket>();

  const title = h('input', { id: 'new-ticket-title', type: 'text', placeholder: 'New ticket title', maxlength: '200', 'aria-label': 'New ticket title' });
  const form = h('form', { class: 'new-ticket', id: 'new-ticket' }, title,
    h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add ticket'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = title.value.trim();
    if (!t) { title.focus(); return; }
    try {
      const made = await api<Ticket>('POST', '/tickets', { title: t, status: 'todo' });
      title.value = '';
      say('ok', `Ticket ${made.key} added.`);
      await refresh();
    } catch (err) {
      say('error', errorText(err));
    }
  });

  function card(t: Ticket): HTMLElement {
    const el = h('article', {
      class: 'ticket-card', 'data-key': t.key, draggable: writer ? 'true' : null,
      tabindex: '0', 'aria-label': `${t.key} ${t.title}`,
    },
      h('div', { class: 'ticket-card-head' },
        h('a', { class: 'ticket-key', href: '#/board/' + t.key }, t.key),
        t.priority !== 'none' ? badge(t.priority, 'prio-' + t.priority) : null),
      h('a', { class: 'ticket-title', href: '#/board/' + t.key }, t.title),
      h('div', { class: 'ticket-card-foot' }, assigneeEl(t.assignee),
        t.labels.length ? h('span', { class: 'chips' }, t.labels.map((l) => h('span', { class: 'chip' }, l))) : null));
    if (writer) {
      el.addEventListener('dragstart', (e) => {
        e.dataTransfer?.setData('text/plain', t.key);
        if (e.dataTransfer) e.dataTransfer.effectAllowed = 'move';
        el.classList.add('dragging');
        dragging = true;
      });
      el.addEventListener('dragend', () => {
        el.classList.remove('dragging');
        dragging = false;
        apply();
      });
    }
    return el;
  }

  function draw(): void {
    for (const list of cols.values()) clear(list);
    const n = new Map<string, number>();
    for (const t of [...tickets.values()].sort((a, b) => a.number - b.number)) {
      cols.get(t.status)?.appendChild(card(t));
      n.set(t.status, (n.get(t.status) || 0) + 1);
    }
    for (const [st, c] of counts) c.textContent = String(n.get(st) || 0);
  }

  async function moveTo(key: string, status: string): Promise<void> {
    const t = tickets.get(key);
    if (!t || t.status === status) return;
    const el = board.querySelector<HTMLElement>(`.ticket-card[data-key="${CSS.escape(key)}"]`);
    const from = el?.parentElement || null;
    const next = el?.nextSibling || null;
    if (el) cols.get(status)?.appendChild(el); // at once; snaps back if refused
    moving++;
    try {
      const upd = await api<Ticket>('PATCH', '/tickets/' + encodeURIComponent(key), { status });
      tickets.set(key, upd);
      say('ok', `${key} moved to ${STATUSES.find((s) => s[0] === status)?.[1] || status}.`);
      draw();
    } catch (err) {
      if (el && from) from.insertBefore(el, next);
      say('error', `${key} stays in ${STATUSES.find((s) => s[0] === t.status)?.[1] || t.status}: ${errorText(err)}`);
      messages.querySelector('.notice')?.setAttribute('id', 'board-refused');
    } finally {
      moving--;
      // A list read while the move was on its way may predate it: read again instead.
      if (latest) { latest = null; void refresh(); }
    }
  }

  // Live: other people's (and pods') ticket.* changes redraw the board, but never under a drag
  // or a move on its way: the newest list waits (board.dataset.stale) until the drop is done.
  let stopped = false;
  let dragging = false;
  let moving = 0;
  let latest: Ticket[] | null = null;
  function apply(): void {
    if (!latest || stopped) return;
    if (dragging || moving) { board.dataset.stale = '1'; return; }
    tickets.clear();
    for (const t of latest) tickets.set(t.key, t);
    latest = null;
    delete board.dataset.stale;
    draw();
    board.dataset.loads = String(++loads);
  }
  let loads = 0;
  async function refresh(): Promise<void> {
    try {
      const r = await api<{ tickets: Ticket[] }>('GET', '/tickets');
      if (stopped) return;
      latest = r.tickets;
      apply();
    } catch (err) {
      say('error', errorText(err));
    }
  }
  let soon: ReturnType<typeof setTimeout> | null = null;
  const unsubscribe = subscribeEvents((e) => {
    if (typeof e.action !== 'string' || !e.action.startsWith('ticket.')) return;
    if (!soon) soon = setTimeout(() => { soon = null; void refresh(); }, 150);
  }, (live) => {
    if (live) { board.dataset.live = '1'; void refresh(); } else delete board.dataset.live;
  });

  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, writer ? 'Drag a card to change its status; open it for the details and to start a pod.' : 'Your role may read the board but not change it.'),
      writer ? form : null),
    messages, board,
  ]);
  void loadPeople().then(() => refresh());
  return () => { stopped = true; unsubscribe(); if (soon) clearTimeout(soon); };
}

/** One ticket: #/board/KEY. */
export function ticketPage(ctx: Ctx, key: string): () => void {
  ctx.title(key);
  const writer = ctx.who.role >= ROLE_MEMBER;
  const messages = h('div', { class: 'messages' });
  const body = h('div', { class: 'ticket-view' }, h('div', { class: 'loading' }, 'Loading the ticket…'));
  const say = (kind: 'error' | 'ok', text: string | Node) => {
    clear(messages);
    const n = notice(kind, text);
    n.id = kind === 'error' ? 'ticket-error' : 'ticket-saved';
    messages.appendChild(n);
  };
  let stopped = false;
  let cur: Ticket | null = null;
  // What the editors offer: the org's users, its pods that have not ended, its tickets' keys.
  const opts: { users: User[]; pods: Pod[]; keys: Ticket[] } = { users: [], pods: [], keys: [] };
  const loadOptions = () => Promise.all([
    api<{ users: User[] }>('GET', '/users').then((r) => { opts.users = r.users; }).catch(() => {}),
    api<{ pods: Pod[] }>('GET', '/pods').then((r) => { opts.pods = r.pods; }).catch(() => {}),
    api<{ tickets: Ticket[] }>('GET', '/tickets').then((r) => { opts.keys = r.tickets; }).catch(() => {}),
  ]);

  /** PATCH this ticket; the answer redraws it. A refusal shows the appliance's reason and
   * redraws the ticket as it is (the editor shows the stored value again). */
  async function patch(fields: Record<string, unknown>, what = 'Saved.'): Promise<boolean> {
    try {
      draw(await api<Ticket>('PATCH', '/tickets/' + encodeURIComponent(key), fields));
      say('ok', what);
      return true;
    } catch (e) {
      say('error', errorText(e));
      if (cur) draw(cur);
      return false;
    }
  }

  /** Blocked by is the other tickets' "blocks": adding X here is X blocks this ticket. */
  async function setBlockedBy(other: string, on: boolean): Promise<void> {
    try {
      const o = await api<Ticket>('GET', '/tickets/' + encodeURIComponent(other));
      const blocks = on ? [...o.blocks, key.toUpperCase()] : o.blocks.filter((b) => b.toUpperCase() !== (cur?.key || key).toUpperCase());
      await api<Ticket>('PATCH', '/tickets/' + encodeURIComponent(o.key), { blocks });
      draw(await api<Ticket>('GET', '/tickets/' + encodeURIComponent(key)));
      say('ok', on ? `${o.key} now blocks this ticket.` : `${o.key} no longer blocks this ticket.`);
    } catch (e) {
      say('error', errorText(e));
    }
  }

  /** An editable list of chips (labels, ticket keys): × removes one, the field adds one (Enter
   * or Add). onChange gets the whole new list; it saves, and the redraw shows what was stored. */
  function chipEditor(id: string, values: string[], placeholder: string, onChange: (v: string[]) => void, link = false, listId = ''): HTMLElement {
    const chips = h('span', { class: 'chips', id: id + '-chips' }, values.map((v) => h('span', { class: 'chip member', 'data-value': v },
      link ? h('a', { class: 'chip-name', href: '#/board/' + v }, v) : h('span', { class: 'chip-name' }, v),
      writer ? h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${v}`, onclick: () => onChange(values.filter((x) => x !== v)) }, '×') : null)));
    if (!writer) return values.length ? chips : h('span', { class: 'muted small' }, 'none');
    const input = h('input', { id: id + '-add', type: 'text', placeholder, 'aria-label': placeholder, list: listId || null, autocomplete: 'off' });
    const add = () => {
      const v = input.value.trim();
      if (!v) return;
      if (values.includes(v)) { input.value = ''; return; }
      onChange([...values, v]);
    };
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); add(); } });
    return h('div', { class: 'chip-editor' }, chips,
      h('span', { class: 'chip-add' }, input, h('button', { type: 'button', class: 'btn btn-small', id: id + '-add-btn', onclick: add }, 'Add')));
  }

  function assigneeEditor(t: Ticket): HTMLElement {
    if (!writer) return assigneeEl(t.assignee);
    const sel = h('select', { id: 'ticket-assignee', 'aria-label': 'Assignee' });
    const users = opts.users.map((u) => ['user:' + u.id, u.display_name ? `${u.display_name} (${u.id})` : u.id]);
    const pods = opts.pods.filter((p) => !podEnded(p.state) || 'pod:' + p.id === t.assignee).map((p) => ['pod:' + p.id, p.display_name ? `${p.display_name} (${p.id})` : p.id]);
    const known = new Set([...users, ...pods].map((x) => x[0]));
    if (t.assignee && !known.has(t.assignee)) (t.assignee.startsWith('pod:') ? pods : users).push([t.assignee, t.assignee.replace(/^(user|pod):/, '')]);
    sel.appendChild(h('option', { value: '', selected: !t.assignee }, 'Unassigned'));
    if (users.length) sel.appendChild(h('optgroup', { label: 'Users' }, users.map(([v, l]) => h('option', { value: v, selected: v === t.assignee }, l))));
    if (pods.length) sel.appendChild(h('optgroup', { label: 'Pods' }, pods.map(([v, l]) => h('option', { value: v, selected: v === t.assignee }, l))));
    sel.addEventListener('change', () => void patch({ assignee: sel.value }, sel.value ? `Assigned to ${sel.value.replace(/^(user|pod):/, '')}.` : 'Unassigned.'));
    return h('span', { class: 'assignee-edit' }, sel, t.assignee.startsWith('pod:') ? assigneeEl(t.assignee) : null);
  }

  function parentEditor(t: Ticket): HTMLElement {
    const link = t.parent ? h('a', { href: '#/board/' + t.parent, id: 'ticket-parent-link' }, t.parent) : h('span', { class: 'muted small' }, 'none');
    if (!writer) return link;
    const input = h('input', { id: 'ticket-parent', type: 'text', value: t.parent, placeholder: 'Parent ticket key', 'aria-label': 'Parent ticket', list: 'ticket-keys', autocomplete: 'off' });
    const save = () => { if (input.value.trim().toUpperCase() !== t.parent.toUpperCase()) void patch({ parent: input.value.trim() }, input.value.trim() ? 'Parent set.' : 'Parent removed.'); };
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); save(); } });
    return h('span', { class: 'parent-edit' }, link, input,
      h('button', { type: 'button', class: 'btn btn-small', id: 'ticket-parent-save', onclick: save }, 'Set'),
      t.parent ? h('button', { type: 'button', class: 'btn btn-small', id: 'ticket-parent-clear', onclick: () => void patch({ parent: '' }, 'Parent removed.') }, 'Clear') : null);
  }

  function draw(t: Ticket): void {
    if (stopped) return;
    cur = t;
    ctx.title(`${t.key} · ${t.title}`);
    clear(body);
    const status = h('select', { id: 'ticket-status', 'aria-label': 'Status', disabled: !writer },
      STATUSES.map(([v, l]) => h('option', { value: v, selected: v === t.status }, l)));
    status.addEventListener('change', () => void patch({ status: status.value }));
    const prio = h('select', { id: 'ticket-priority', 'aria-label': 'Priority', disabled: !writer },
      PRIORITIES.map((p) => h('option', { value: p, selected: p === t.priority }, p)));
    prio.addEventListener('change', () => void patch({ priority: prio.value }));
    const facts = h('dl', { class: 'facts' },
      h('dt', null, 'Status'), h('dd', null, status),
      h('dt', null, 'Priority'), h('dd', null, prio),
      h('dt', null, 'Assignee'), h('dd', { id: 'ticket-assignee-dd' }, assigneeEditor(t)),
      h('dt', null, 'Created'), h('dd', null, actorEl(t.created_by), ' · ', dateTime(t.created_ms)),
      h('dt', null, 'Labels'), h('dd', { id: 'ticket-labels' }, chipEditor('ticket-label', t.labels, 'Add a label', (v) => void patch({ labels: v }, 'Labels saved.'))),
      h('dt', null, 'Parent'), h('dd', { id: 'ticket-parent-dd' }, parentEditor(t)),
      h('dt', null, 'Blocks'), h('dd', { id: 'ticket-blocks' }, chipEditor('ticket-block', t.blocks, 'Add a ticket it blocks', (v) => void patch({ blocks: v }, 'Blocks saved.'), true, 'ticket-keys')),
      h('dt', null, 'Blocked by'), h('dd', { id: 'ticket-blocked-by' }, chipEditor('ticket-blocked', t.blocked_by, 'Add a ticket that blocks it', (v) => {
        const added = v.find((x) => !t.blocked_by.includes(x));
        const removed = t.blocked_by.find((x) => !v.includes(x));
        if (added) void setBlockedBy(added, true);
        else if (removed) void setBlockedBy(removed, false);
      }, true, 'ticket-keys')),
      t.branch ? [h('dt', null, 'Branch'), h('dd', null, h('code', null, t.branch))] : null,
      t.pods.length ? [h('dt', null, 'Pods'), h('dd', null, t.pods.flatMap((p, i) => [i ? ', ' : '', h('a', { href: '#/pods/' + p }, p)]))] : null);
    const desc = h('section', { class: 'panel', id: 'ticket-description' },
      h('h2', { class: 'section-title' }, 'Description'),
      t.description ? markdown(t.description) : h('p', { class: 'muted' }, 'No description.'));
    const comments = h('section', { class: 'panel', id: 'ticket-comments' },
      h('h2', { class: 'section-title' }, `Comments (${t.comments.length})`),
      t.comments.map((c) => h('div', { class: 'comment' },
        h('div', { class: 'small muted' }, actorEl(c.author), ' · ', dateTime(c.time_ms)), markdown(c.body))));
    if (writer) {
      const text = h('textarea', { id: 'comment-body', rows: '3', placeholder: 'Add a comment (markdown)', 'aria-label': 'Comment' });
      const f = h('form', { class: 'comment-form' }, text, h('button', { type: 'submit', class: 'btn' }, 'Comment'));
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!text.value.trim()) return;
        try {
          draw(await api<Ticket>('POST', `/tickets/${encodeURIComponent(key)}/comments`, { body: text.value }));
        } catch (err) { say('error', errorText(err)); }
      });
      comments.appendChild(f);
    }
    let start: HTMLElement | null = null;
    if (writer && t.status !== 'done') {
      const repo = h('input', { id: 'start-repo', type: 'text', placeholder: 'Repository (path or URL on the runner)', 'aria-label': 'Repository' });
      const agent = h('input', { id: 'start-agent', type: 'text', placeholder: 'Agent (e.g. claude), or leave empty', 'aria-label': 'Agent' });
      const cmd = h('input', { id: 'start-command', type: 'text', placeholder: 'or a command', 'aria-label': 'Command' });
      const f = h('form', { class: 'start-form', id: 'start-form' }, repo, agent, cmd,
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'start-pod' }, 'Start a pod'));
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        const b: Record<string, unknown> = { repo: repo.value.trim() };
        if (agent.value.trim()) b.agent = agent.value.trim();
        if (cmd.value.trim()) b.command = cmd.value.trim().split(/\s+/);
        try {
          const r = await api<{ ticket: Ticket; pod: { id: string; branch: string } }>('POST', `/tickets/${encodeURIComponent(key)}/start`, b);
          draw(r.ticket);
          say('ok', h('span', null, 'Pod ', h('a', { href: '#/pods/' + r.pod.id }, r.pod.id), ` started on branch ${r.pod.branch}.`));
        } catch (err) { say('error', errorText(err)); }
      });
      start = h('section', { class: 'panel' }, h('h2', { class: 'section-title' }, 'Start a pod'),
        h('p', { class: 'muted small' }, `The pod works on branch ${t.key.toLowerCase()} with this ticket as its prompt; the ticket moves to In review when it ends.`), f);
    }
    const keys = h('datalist', { id: 'ticket-keys' }, opts.keys.filter((x) => x.key !== t.key).map((x) => h('option', { value: x.key }, x.title)));
    append(body, [
      keys,
      h('p', null, h('a', { href: '#/board' }, '← Board')),
      h('section', { class: 'panel' }, facts), desc, start, comments,
    ]);
  }

  append(ctx.main, [messages, body]);
  void Promise.all([loadPeople(), writer ? loadOptions() : null]).then(() => api<Ticket>('GET', '/tickets/' + encodeURIComponent(key)))
    .then(draw).catch((e) => { clear(body); say('error', errorText(e)); });
  // Live: a change by someone else redraws the ticket, unless the user is typing in one of its
  // fields or has typed something not saved yet (the next change, or a reload, shows it then).
  // Checked again when the fresh ticket arrives: the user may have started typing meanwhile.
  const editing = (): boolean => {
    const a = document.activeElement;
    if (a && body.contains(a) && (a.tagName === 'INPUT' || a.tagName === 'TEXTAREA')) return true;
    for (const el of Array.from(body.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('input, textarea')))
      if (el.type !== 'checkbox' && el.value !== el.defaultValue) return true;
    return false;
  };
  const unsubscribe = subscribeEvents((e) => {
    if (!cur || e.action?.startsWith('ticket.') !== true || e.target?.toUpperCase() !== 'TICKET:' + cur.key.toUpperCase()) return;
    if (editing()) return;
    void api<Ticket>('GET', '/tickets/' + encodeURIComponent(key)).then((t) => { if (!editing()) draw(t); }).catch(() => {});
  });
  return () => { stopped = true; unsubscribe(); };
}
