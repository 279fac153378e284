// Bindings (issue 13) in the console: the shape of GET /api/v1/bindings, their words, and the
// pod page's panel. A binding is directed, from_pod → to_pod, with scopes read (from may read
// to's screen and channel traffic) and/or write (from may type into to, and @mention it);
// pending until to_pod's side accepts it (the org's policy decides whether a binding between two
// pods of the same starter is active at once), then active until ended or expired.
// The panel lists the pod's bindings both ways (GET /api/v1/bindings?pod=ID), live on the
// events stream (binding.* records); for a pod the caller may control (its starter, or an admin
// and above: the appliance decides and says why not) it offers Accept / Reject (with an
// optional reason) on a pending binding to this pod, End on a pending or active one, and a
// form to request a binding from this pod to another.
import { api, errorText, Pod, podEnded, podStarter, ROLE_ADMIN, ROLE_MEMBER, Who } from '../api';
import { badge, clear, h, notice, until } from '../dom';
import { subscribeEvents } from '../events';
import { named } from '../names';

export interface Binding {
  id: string;
  org_id: string;
  from_pod: string;
  to_pod: string;
  scopes: string[];
  state: 'pending' | 'active' | 'rejected' | 'ended' | string;
  created_by: string;
  created_ms: number;
  expires_ms: number;
  decided_by: string;
  decided_ms: number;
  reason: string;
}

/** Counts as it is shown: an active binding past its expiry is ended (the appliance says so too). */
export function bindingState(b: Binding, now = Date.now()): string {
  return b.state === 'active' && b.expires_ms && b.expires_ms <= now ? 'ended' : b.state;
}

export const scopeWords = (s: string[]) => (s.length ? s.join(' + ') : 'no scope');

/** Who may accept, reject or end bindings of pod p, as the appliance's rule reads (ops.h): its
 * starter (a member or above) or an admin and above. */
export const mayControlPod = (w: Who, p: Pod | null) =>
  !!p && (w.role >= ROLE_ADMIN || (w.role >= ROLE_MEMBER && podStarter(p) === w.user));

export async function listBindings(pod?: string): Promise<Binding[]> {
  const r = await api<{ bindings: Binding[] }>('GET', '/bindings' + (pod ? '?pod=' + encodeURIComponent(pod) : ''));
  return r.bindings || [];
}

/** A modal asking for an optional reason (window.prompt is unstyled and blocks tests). */
function reasonDialog(title: string, action: string): Promise<string | null> {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'reason-title' });
    const input = h('input', { id: 'binding-reason', type: 'text', maxlength: '200', placeholder: 'Reason (optional)', 'aria-label': 'Reason' });
    const done = (v: string | null) => { dialog.close(); dialog.remove(); resolve(v); };
    const form = h('form', { method: 'dialog' }, h('h2', { id: 'reason-title' }, title), h('p', null, input),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-danger', id: 'binding-reason-ok' }, action)));
    form.addEventListener('submit', (e) => { e.preventDefault(); done(input.value.trim()); });
    dialog.appendChild(form);
    dialog.addEventListener('cancel', () => done(null));
    document.body.appendChild(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** The pod page's Bindings section; refresh() after the pod record changed, dispose() on leave. */
export function bindingsPanel(who: Who, podId: string, getPod: () => Pod | null): { el: HTMLElement; refresh: () => void; dispose: () => void } {
  const list = h('ul', { class: 'binding-list', id: 'pod-bindings-list' });
  const messages = h('div', { class: 'messages', id: 'pod-bindings-messages' });
  const toPod = h('input', { id: 'bind-to', type: 'text', placeholder: 'Pod id (p-…)', list: 'bind-to-pods', 'aria-label': 'Pod to bind to', autocomplete: 'off' });
  const pods = h('datalist', { id: 'bind-to-pods' });
  const rd = h('input', { type: 'checkbox', id: 'bind-read', checked: true });
  const wr = h('input', { type: 'checkbox', id: 'bind-write' });
  const form = h('form', { class: 'bind-form', id: 'bind-form', hidden: true, 'aria-label': 'Request a binding' },
    h('div', { class: 'small muted' }, 'Let this pod read or write another pod:'),
    h('div', { class: 'bind-row' }, toPod, pods,
      h('label', { class: 'check' }, rd, ' read'), h('label', { class: 'check' }, wr, ' write'),
      h('button', { type: 'submit', class: 'btn btn-small' }, 'Request')));
  const el = h('section', { class: 'pod-bindings', id: 'pod-bindings', 'aria-label': 'Bindings' },
    h('h3', null, 'Bindings'), messages, list, form);
  const names = new Map<string, string>();
  let bindings: Binding[] = [];
  let loaded = false;
  let disposed = false;
  const say = (kind: 'error' | 'ok', text: string) => { clear(messages); messages.appendChild(notice(kind, text, () => {})); };

  const podName = (id: string) => named(names.get(id), id, 'mono-id', 'a', { href: '#/pods/' + encodeURIComponent(id) });

  async function act(b: Binding, what: 'accept' | 'reject' | 'end'): Promise<void> {
    let reason: string | null = '';
    if (what === 'reject') {
      reason = await reasonDialog(`Reject the binding from ${names.get(b.from_pod) || b.from_pod}?`, 'Reject');
      if (reason === null) return;
    }
    try {
      if (what === 'accept') await api('POST', `/bindings/${encodeURIComponent(b.id)}/accept`);
      else if (what === 'reject') await api('POST', `/bindings/${encodeURIComponent(b.id)}/reject`, reason ? { reason } : {});
      else await api('DELETE', `/bindings/${encodeURIComponent(b.id)}`);
      say('ok', what === 'accept' ? `Accepted: ${names.get(b.from_pod) || b.from_pod} may now ${b.scopes.join(' and ')} this pod.` : what === 'reject' ? 'Rejected.' : 'Ended.');
      await load();
    } catch (e) {
      say('error', errorText(e));
    }
  }

  function draw(): void {
    if (disposed) return;
    const p = getPod();
    const mine = mayControlPod(who, p);
    form.hidden = !mine || !p || podEnded(p.state);
    clear(list);
    const order: Record<string, number> = { pending: 0, active: 1 };
    const shown = bindings.slice().sort((a, b) => (order[bindingState(a)] ?? 2) - (order[bindingState(b)] ?? 2) || (b.decided_ms || b.created_ms) - (a.decided_ms || a.created_ms)).slice(0, 20);
    if (!shown.length) {
      list.appendChild(h('li', { class: 'muted small', id: 'pod-bindings-empty' }, loaded ? 'No bindings: no other pod may read or write this one, and it may read or write none.' : 'Loading…'));
      return;
    }
    for (const b of shown) {
      const st = bindingState(b);
      const out = b.from_pod === podId;
      const other = out ? b.to_pod : b.from_pod;
      const line = out
        ? h('span', null, 'This pod may ', h('strong', null, scopeWords(b.scopes)), ' ', podName(other))
        : h('span', null, podName(other), ' may ', h('strong', null, scopeWords(b.scopes)), ' this pod');
      const buttons: HTMLElement[] = [];
      if (mine && st === 'pending' && !out) {
        buttons.push(h('button', { type: 'button', class: 'btn btn-small btn-primary binding-accept', onclick: () => void act(b, 'accept') }, 'Accept'));
        buttons.push(h('button', { type: 'button', class: 'btn btn-small binding-reject', onclick: () => void act(b, 'reject') }, 'Reject'));
      }
      if (mine && (st === 'pending' || st === 'active')) buttons.push(h('button', { type: 'button', class: 'btn btn-small btn-danger-outline binding-end', onclick: () => void act(b, 'end') }, 'End'));
      list.appendChild(h('li', { class: 'binding binding-' + st, 'data-binding': b.id, 'data-state': st, 'data-dir': out ? 'out' : 'in' },
        h('div', { class: 'binding-line' }, h('span', { class: 'binding-arrow', 'aria-hidden': 'true' }, out ? '→' : '←'), line, ' ', badge(st, 'binding-' + st)),
        h('div', { class: 'small muted' },
          st === 'pending' ? (out ? 'Waits for the other pod\'s side to accept.' : 'Waits for this pod\'s side to accept.') : '',
          b.expires_ms && st !== 'ended' && st !== 'rejected' ? ` Expires ${until(b.expires_ms)}.` : '',
          b.reason ? ` ${st === 'rejected' ? 'Rejected' : 'Ended'}: ${b.reason}` : ''),
        buttons.length ? h('div', { class: 'actions binding-actions' }, buttons) : null));
    }
  }

  async function load(): Promise<void> {
    try {
      const bs = await listBindings(podId);
      if (disposed) return;
      bindings = bs.filter((b) => b.from_pod === podId || b.to_pod === podId);
      loaded = true;
      const unknown = bindings.some((b) => !names.has(b.from_pod === podId ? b.to_pod : b.from_pod));
      if (unknown) await loadNames();
      draw();
    } catch (e) {
      if (!disposed) { loaded = true; draw(); say('error', 'Bindings: ' + errorText(e)); }
    }
  }

  async function loadNames(): Promise<void> {
    try {
      const r = await api<{ pods: Pod[] }>('GET', '/pods');
      clear(pods);
      for (const p of r.pods) {
        names.set(p.id, p.display_name || '');
        if (p.id !== podId && !podEnded(p.state)) pods.appendChild(h('option', { value: p.id }, p.display_name || p.id));
      }
    } catch { /* ids only */ }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const to = toPod.value.trim();
    const scopes = [rd.checked ? 'read' : '', wr.checked ? 'write' : ''].filter(Boolean);
    if (!to) { toPod.focus(); return; }
    if (!scopes.length) { say('error', 'Choose read, write or both.'); return; }
    try {
      const b = await api<Binding>('POST', '/bindings', { from_pod: podId, to_pod: to, scopes });
      toPod.value = '';
      say('ok', b.state === 'active' ? `Bound: this pod may ${scopes.join(' and ')} ${names.get(to) || to}.` : `Requested: it waits for ${names.get(to) || to}'s side to accept.`);
      await load();
    } catch (err) {
      say('error', errorText(err));
    }
  });

  let soon: ReturnType<typeof setTimeout> | null = null;
  const stop = subscribeEvents((e) => {
    if (typeof e.action !== 'string' || !e.action.startsWith('binding.')) return;
    if (!soon) soon = setTimeout(() => { soon = null; void load(); }, 150);
  }, (live) => { if (live && loaded) void load(); });
  void loadNames().then(load);
  draw();
  return {
    el,
    refresh: draw,
    dispose: () => { disposed = true; stop(); if (soon) clearTimeout(soon); },
  };
}
