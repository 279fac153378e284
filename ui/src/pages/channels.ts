// Channels (issue 13): the organization's rooms. A list of channels, the selected channel's
// messages (the newest 50, "Older" pages back with ?before=SEQ), live from
// wss://HOST/api/v1/events ({"type":"channel.message"} and the mentions' "channel.mention"
// updates), and a composer (Ctrl+Enter sends). An @mention of a pod is highlighted and links to
// the pod; its state (queued until the pod waits, delivered, refused and why, dropped) shows
// under the message. Authors show by display name. Viewers read; members create, join, post.
import { api, errorText, Pod, ROLE_MEMBER } from '../api';
import { append, badge, clear, dateTime, h, notice } from '../dom';
import type { Ctx } from '../main';
import { actorEl, loadPeople } from '../names';

interface Mention { pod: string; state: string; reason: string; time_ms: number }
interface Message { channel: string; seq: number; author: string; time_ms: number; text: string; mentions: Mention[] }
interface Channel { name: string; members: string[]; created_by: string; created_ms: number; messages: number }

const PAGE = 50;

/** The text with @mentions highlighted: a mentioned pod's @id / @display name links to it. */
function textView(m: Message, podNames: Map<string, string>): HTMLElement {
  const tokens: { t: string; pod: string }[] = [];
  for (const x of m.mentions) {
    tokens.push({ t: '@' + x.pod, pod: x.pod });
    const dn = podNames.get(x.pod);
    if (dn) tokens.push({ t: '@' + dn, pod: x.pod });
  }
  tokens.sort((a, b) => b.t.length - a.t.length);
  const out = h('div', { class: 'chan-text' });
  let s = m.text;
  while (s) {
    let best = -1;
    let tok: { t: string; pod: string } | null = null;
    for (const k of tokens) {
      const i = s.indexOf(k.t);
      if (i >= 0 && (best < 0 || i < best)) { best = i; tok = k; }
    }
    const other = s.search(/@[A-Za-z0-9_-]+/);
    if (other >= 0 && (best < 0 || other < best)) {
      const w = s.slice(other).match(/^@[A-Za-z0-9_-]+/)![0];
      out.append(s.slice(0, other), h('span', { class: 'mention' }, w));
      s = s.slice(other + w.length);
      continue;
    }
    if (!tok) { out.append(s); break; }
    out.append(s.slice(0, best), h('a', { class: 'mention mention-pod', href: `#/pods/${encodeURIComponent(tok.pod)}`, 'data-pod': tok.pod }, tok.t));
    s = s.slice(best + tok.t.length);
  }
  return out;
}

function mentionView(x: Mention): HTMLElement {
  const kind = x.state === 'delivered' ? 'ok' : x.state === 'queued' ? 'locked' : 'failed';
  const label = x.state === 'queued' ? 'queued until it waits' : x.state;
  return h('div', { class: 'small chan-mention', 'data-pod': x.pod, 'data-state': x.state },
    h('a', { href: `#/pods/${encodeURIComponent(x.pod)}`, class: 'mono' }, x.pod), ' ', badge(label, kind),
    x.reason ? h('span', { class: 'muted' }, ' ', x.reason) : '');
}

export function channelsPage(ctx: Ctx, param: string): () => void {
  ctx.title('Channels');
  const mayWrite = ctx.who.role >= ROLE_MEMBER;
  const me = 'user:' + ctx.who.user;
  const messagesBox = h('div', { class: 'messages' });
  const list = h('nav', { class: 'chan-list', 'aria-label': 'Channels', id: 'chan-list' });
  const head = h('div', { class: 'chan-head' });
  const feed = h('div', { class: 'chan-feed', id: 'chan-feed', 'aria-live': 'polite' });
  const text = h('textarea', { id: 'chan-text', rows: 2, placeholder: 'Message (Ctrl+Enter sends; @p-… or @pod name prompts a pod)', 'aria-label': 'Message' });
  const send = h('button', { type: 'submit', class: 'btn btn-primary', id: 'chan-send' }, 'Send');
  const composer = h('form', { class: 'prompt-box chan-composer', id: 'chan-composer', hidden: true }, text, send);
  const newName = h('input', { id: 'chan-new-name', placeholder: 'new-channel', 'aria-label': 'New channel name', maxlength: '48' });
  const create = h('form', { class: 'chan-create', id: 'chan-create', hidden: !mayWrite }, newName, h('button', { type: 'submit', class: 'btn btn-small' }, 'Create'));
  append(ctx.main, [messagesBox,
    h('div', { class: 'chan-layout' },
      h('section', { class: 'panel chan-side' }, h('h2', { class: 'small muted' }, 'Channels'), list, create),
      h('section', { class: 'panel chan-main' }, head, feed, composer))]);

  let channels: Channel[] = [];
  let current = param || '';
  let msgs: Message[] = [];
  let more = false;
  const podNames = new Map<string, string>();
  let stopped = false;
  let ws: WebSocket | null = null;

  const say = (m: string, kind: 'error' | 'warn' = 'error') => { clear(messagesBox); if (m) messagesBox.append(notice(kind, m)); };

  function renderList(): void {
    clear(list);
    if (!channels.length) list.append(h('p', { class: 'muted small' }, mayWrite ? 'No channels yet: create one below.' : 'No channels yet.'));
    for (const c of channels) {
      list.append(h('a', { href: `#/channels/${encodeURIComponent(c.name)}`, class: 'chan-link' + (c.name === current ? ' active' : ''), 'data-channel': c.name }, '#' + c.name));
    }
  }

  function renderFeed(): void {
    clear(head);
    clear(feed);
    const c = channels.find((x) => x.name === current);
    composer.hidden = true;
    if (!c) {
      feed.append(h('div', { class: 'empty' }, h('p', null, channels.length ? 'Pick a channel.' : 'Channels are where people and agents talk.')));
      return;
    }
    const member = c.members.includes(me);
    head.append(h('h2', { id: 'chan-title' }, '#' + c.name), h('span', { class: 'muted small' }, `${c.members.length} member${c.members.length === 1 ? '' : 's'}`));
    if (mayWrite && !member) {
      const join = h('button', { class: 'btn btn-small', id: 'chan-join', type: 'button' }, 'Join');
      join.addEventListener('click', () => void api('POST', `/channels/${encodeURIComponent(c.name)}/members`, {}).then(loadChannels).catch((e) => say(errorText(e))));
      head.append(join);
    }
    composer.hidden = !(mayWrite && member);
    if (more) {
      const older = h('button', { class: 'btn btn-small', id: 'chan-older', type: 'button' }, 'Older messages');
      older.addEventListener('click', () => void loadMessages(msgs[0]?.seq));
      feed.append(older);
    }
    if (!msgs.length) feed.append(h('p', { class: 'muted', id: 'chan-empty' }, 'No messages yet.'));
    for (const m of msgs) {
      feed.append(h('article', { class: 'chan-msg', 'data-seq': String(m.seq) },
        h('div', { class: 'chan-meta small' }, actorEl(m.author, 'chan-author'), ' ', h('span', { class: 'muted', title: dateTime(m.time_ms) }, new Date(m.time_ms).toLocaleTimeString())),
        textView(m, podNames), m.mentions.map(mentionView)));
    }
    feed.scrollTop = feed.scrollHeight;
  }

  async function loadChannels(): Promise<void> {
    try {
      channels = (await api<{ channels: Channel[] }>('GET', '/channels')).channels;
      if (!current && channels.length) current = channels[0].name;
      renderList();
      await loadMessages();
    } catch (e) {
      say(errorText(e));
    }
  }

  async function loadMessages(before?: number): Promise<void> {
    if (!current) { renderFeed(); return; }
    const q = before ? `before=${before}&limit=${PAGE}` : `limit=${PAGE}`;
    const r = await api<{ messages: Message[]; more: boolean }>('GET', `/channels/${encodeURIComponent(current)}/messages?${q}`);
    if (stopped) return;
    msgs = before ? r.messages.concat(msgs) : r.messages;
    more = r.more;
    renderFeed();
  }

  composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = text.value;
    if (!t.trim() || !current) return;
    send.disabled = true;
    void api<Message>('POST', `/channels/${encodeURIComponent(current)}/messages`, { text: t })
      .then((m) => {
        text.value = '';
        const refused = m.mentions.filter((x) => x.state === 'refused');
        say(refused.length ? refused.map((x) => `${x.pod}: ${x.reason}`).join('; ') : '', 'warn');
        add(m);
      })
      .catch((e) => say(errorText(e)))
      .finally(() => { send.disabled = false; });
  });
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); composer.requestSubmit(); }
  });
  create.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = newName.value.trim();
    if (!/^[a-z0-9][a-z0-9_-]{0,47}$/.test(name)) { say('A channel name is 1-48 of a-z 0-9 - _ (starting with a letter or digit).'); return; }
    void api('POST', '/channels', { name }).then(() => { newName.value = ''; say(''); location.hash = `#/channels/${name}`; })
      .catch((e) => say(errorText(e)));
  });

  function add(m: Message): void {
    if (m.channel !== current) return;
    const i = msgs.findIndex((x) => x.seq === m.seq);
    if (i >= 0) msgs[i] = m; else msgs.push(m);
    msgs.sort((a, b) => a.seq - b.seq);
    renderFeed();
  }

  function live(): void {
    if (stopped) return;
    try {
      ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/events`);
    } catch { return; }
    ws.onopen = () => { feed.dataset.live = '1'; };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string' || !ev.data.includes('"channel.')) return;
      let e: { type?: string; message?: Message; channel?: string; seq?: number; pod?: string; state?: string };
      try { e = JSON.parse(ev.data); } catch { return; }
      if (e.type === 'channel.message' && e.message) add(e.message);
      else if (e.type === 'channel.mention' && e.channel === current) {
        const m = msgs.find((x) => x.seq === e.seq);
        const x = m?.mentions.find((y) => y.pod === e.pod);
        if (x && e.state) { x.state = e.state; x.reason = ''; renderFeed(); }
      }
    };
    ws.onclose = () => { ws = null; delete feed.dataset.live; if (!stopped) setTimeout(live, 2000); };
  }

  void loadPeople().then(() => api<{ pods: Pod[] }>('GET', '/pods')).then((r) => {
    for (const p of r.pods) if (p.display_name) podNames.set(p.id, p.display_name);
  }).catch(() => { /* ids only */ }).finally(() => { if (!stopped) void loadChannels(); });
  live();
  return () => { stopped = true; ws?.close(); };
}
