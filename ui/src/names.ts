// Display names (issue 14): the unicode name people read instead of an id ("Zoë", "Équipe 🚀").
// Ids stay ASCII and are what the API takes; a display name is shown wherever the id used to
// be, with the id in the title (hover) and in details. One helper renders a name, one edits it
// in place (PATCH {"display_name"}), one checks it as the appliance does (common/display_name.c:
// valid text, trimmed, 1-64 characters, no control or bidirectional-override characters), and
// a small cache maps user ids to display names for the places that only have an actor
// ("user:ann": the pod list's owner, Activity, the pod page).
import { api, errorText, User } from './api';
import { h } from './dom';

/** The appliance's rule, for a hint before sending (it checks again): null when fine. */
export function displayNameProblem(v: string): string | null {
  const t = v.replace(/^[\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+|[\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+$/g, '');
  if (!t) return 'Enter a name (or clear it to show the id).';
  const chars = Array.from(t);
  if (chars.length > 64) return `Too long: ${chars.length} characters, at most 64.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(t)) return 'No control characters (line breaks, tabs, escapes).';
  if (/[\u202a-\u202e\u2066-\u2069]/.test(t)) return 'No bidirectional override or isolate characters: they make text read differently from what it is.';
  if (/[\ud800-\udfff]/.test(t.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) return 'This text is not valid unicode.';
  return null;
}

/** A name shown for an id: the display name (or the id when there is none), cut with an
 * ellipsis when it does not fit, the full name and the id on hover. */
export function named(display: string | undefined | null, id: string, cls = '', tag: 'span' | 'div' | 'a' = 'span', attrs: Record<string, string> = {}): HTMLElement {
  const text = display || id;
  return h(tag, { ...attrs, class: ('dn ' + cls).trim(), title: display ? `${display} (${id})` : id, 'data-id': id }, text);
}

// ---- people: user id → display name (one GET /users per page, refreshed on a rename) ----

let people = new Map<string, string>();
let loading: Promise<void> | null = null;

export function loadPeople(force = false): Promise<void> {
  if (loading && !force) return loading;
  loading = api<{ users: User[] }>('GET', '/users')
    .then((r) => { people = new Map(r.users.map((u) => [u.id, u.display_name || ''])); })
    .catch(() => { /* names fall back to ids */ });
  return loading;
}

/** The display name of user id ('' when none or unknown). */
export function personName(id: string): string {
  return people.get(id) || '';
}

/** An actor ("user:ann", "runner:r-…", "system") as a name element: a user's display name
 * with the id on hover; other actors as they are. */
export function actorEl(actor: string, cls = '', tag: 'span' | 'div' = 'span'): HTMLElement {
  const id = (actor || '').replace(/^user:/, '');
  if (!actor) return h(tag, { class: cls + ' muted' }, '—');
  if (!actor.startsWith('user:')) return h(tag, { class: ('trunc ' + cls).trim(), title: actor }, actor);
  return named(personName(id), id, cls, tag);
}

/** The actor's name as text (display name, else id). */
export function actorText(actor: string): string {
  const id = (actor || '').replace(/^user:/, '');
  return (actor.startsWith('user:') && personName(id)) || id || '—';
}

/** Set while an in-place editor is open: pages that redraw on a timer wait (typing would be
 * thrown away). */
export function editing(): boolean {
  return !!document.querySelector('.rename-form');
}

/** A "Rename" button that edits shown (a named() element) in place: an input with the current
 * display name, Save / Cancel (Enter / Escape), the rule checked while typing, then PATCH path
 * {"display_name": text} (an empty field clears it: null). done gets the new name. */
export function renameButton(shown: HTMLElement, what: string, current: string, path: string,
  done: (name: string) => void): HTMLButtonElement {
  const id = shown.dataset.id || '';
  const btn = h('button', { type: 'button', class: 'btn btn-small rename-btn', 'aria-label': `Rename ${what} ${id}`, title: `Change the name people see (the id ${id} stays)` }, 'Rename');
  btn.addEventListener('click', () => {
    if (btn.hidden) return;
    const input = h('input', { class: 'rename-input', value: current, 'aria-label': `Display name of ${what} ${id}`, autocomplete: 'off', spellcheck: 'false', placeholder: id });
    const save = h('button', { type: 'submit', class: 'btn btn-small btn-primary' }, 'Save');
    const cancel = h('button', { type: 'button', class: 'btn btn-small' }, 'Cancel');
    const err = h('div', { class: 'form-error rename-error', role: 'alert' });
    const form = h('form', { class: 'rename-form', novalidate: true }, input, save, cancel, err);
    const close = () => {
      form.remove();
      shown.hidden = false;
      btn.hidden = false;
      btn.focus();
    };
    input.addEventListener('input', () => {
      err.textContent = input.value.trim() ? displayNameProblem(input.value) || '' : '';
    });
    input.addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.preventDefault(); close(); } });
    cancel.addEventListener('click', close);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const v = input.value.trim();
      const bad = v ? displayNameProblem(v) : null;
      if (bad) {
        err.textContent = bad;
        input.focus();
        return;
      }
      save.disabled = true;
      try {
        const r = await api<{ display_name: string }>('PATCH', path, { display_name: v || null });
        form.remove();
        shown.hidden = false;
        btn.hidden = false;
        shown.textContent = r.display_name || id;
        shown.title = r.display_name ? `${r.display_name} (${id})` : id;
        done(r.display_name || '');
      } catch (e2) {
        err.textContent = errorText(e2);
        save.disabled = false;
        input.focus();
      }
    });
    shown.hidden = true;
    btn.hidden = true;
    shown.insertAdjacentElement('afterend', form);
    input.focus();
    input.select();
  });
  return btn;
}
