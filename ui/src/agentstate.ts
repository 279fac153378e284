// Agent states (issue 12): what a running pod's agent is doing — working, waiting for input,
// idle — as the runner reads it from the pod's terminal (airmesh-notify, OSC 9/777
// notifications, titles, quiet output). A badge for the pod list, the overview and the pod
// page; and the one watcher of /api/v1/events (pod.agent_state records) that tells the pages
// (a window event, 'airmesh:agent-state') and the user: a browser Notification "p-… is waiting
// for input" when the user turned notifications on (the nav's button asks the browser for
// permission on that click, never on page load), otherwise an in-page toast.
import { h } from './dom';

/** The states' words, the one list (the C one: am_agentstate_valid in runner/pod/agentstate.h). */
export const AGENT_WORDS: Record<string, string> = { working: 'working', waiting: 'waiting for input', idle: 'idle' };

/** The badge of an agent state, or null when it is not known (or the pod ended). */
export function agentBadge(state: string | undefined, message = ''): HTMLElement | null {
  if (!state || !AGENT_WORDS[state]) return null;
  return h('span', { class: 'badge badge-agent badge-agent-' + state, 'data-agent-state': state, title: message || null }, AGENT_WORDS[state]);
}

export interface AgentStateEvent { pod: string; state: string; source: string; message: string }

const KEY = 'airmesh.notifications';
const supported = () => typeof window.Notification === 'function';
function wanted(): boolean {
  try { return localStorage.getItem(KEY) === 'on'; } catch { return false; }
}
function setWanted(on: boolean): void {
  try {
    if (on) localStorage.setItem(KEY, 'on');
    else localStorage.removeItem(KEY);
  } catch { /* private mode: this page only */ }
}
const enabled = () => wanted() && supported() && Notification.permission === 'granted';

/** The nav's toggle: turning it on asks the browser for permission (a click is a user gesture). */
export function notifyButton(): HTMLElement {
  const b = h('button', { type: 'button', class: 'btn btn-small', id: 'notify-toggle', 'aria-pressed': 'false', title: 'A browser notification when a pod is waiting for input' });
  const label = () => {
    b.textContent = enabled() ? 'Notifications: on' : 'Notifications: off';
    b.setAttribute('aria-pressed', String(enabled()));
  };
  b.addEventListener('click', async () => {
    if (enabled()) {
      setWanted(false);
    } else if (!supported()) {
      toast('This browser has no notifications: waiting pods show here instead.');
    } else {
      const p = Notification.permission === 'default' ? await Notification.requestPermission() : Notification.permission;
      setWanted(p === 'granted');
      if (p !== 'granted') toast('The browser refused notifications for this site: waiting pods show here instead. Allow them in the site settings to get them.');
    }
    label();
  });
  label();
  return b;
}

let box: HTMLElement | null = null;
/** An in-page toast (bottom right, a few seconds; several stack). */
export function toast(text: string, href?: string): void {
  if (!box || !box.isConnected) {
    box = h('div', { class: 'toasts', id: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(box);
  }
  const t = h('div', { class: 'toast' }, href ? h('a', { href }, text) : text);
  box.appendChild(t);
  setTimeout(() => t.remove(), 8000);
}

function tell(e: AgentStateEvent): void {
  if (e.state !== 'waiting') return;
  const title = `${e.pod} is waiting for input`;
  if (enabled()) {
    try {
      const n = new Notification(title, { body: e.message || undefined, tag: 'airmesh-' + e.pod });
      n.onclick = () => { window.focus(); location.hash = '#/pods/' + e.pod; };
      return;
    } catch { /* some browsers only notify from a service worker: fall back */ }
  }
  toast(title + (e.message ? ': ' + e.message : ''), '#/pods/' + e.pod);
}

/** Watch the events stream while logged in (reconnects with backoff); returns a stop. */
export function watchAgentStates(): () => void {
  let ws: WebSocket | null = null;
  let stopped = false;
  let delay = 1000;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const connect = () => {
    if (stopped) return;
    try {
      ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/events`);
    } catch {
      return;
    }
    ws.onopen = () => { delay = 1000; document.documentElement.dataset.agentWatch = 'live'; };
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string' || !m.data.includes('pod.agent_state')) return;
      let r: { action?: string; target?: string; details?: { state?: string; source?: string; message?: string } };
      try { r = JSON.parse(m.data); } catch { return; }
      if (r.action !== 'pod.agent_state' || !r.target?.startsWith('pod:') || !r.details?.state) return;
      const e: AgentStateEvent = { pod: r.target.slice(4), state: r.details.state, source: r.details.source || '', message: r.details.message || '' };
      window.dispatchEvent(new CustomEvent<AgentStateEvent>('airmesh:agent-state', { detail: e }));
      tell(e);
    };
    ws.onclose = () => {
      ws = null;
      delete document.documentElement.dataset.agentWatch;
      if (!stopped) timer = setTimeout(connect, delay = Math.min(delay * 2, 15000));
    };
  };
  connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    ws?.close();
  };
}
