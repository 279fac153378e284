// Teams: groups of users in the org. Everyone sees them; admins and owners create and delete
// teams and add or remove members (any user of the org).
import { api, can, errorText, nameProblem, Team, User } from '../api';
import { ago, append, clear, confirmDialog, dateTime, emptyState, h, notice } from '../dom';
import type { Ctx } from '../main';
import { field } from './login';
import { displayNameProblem, editing, named, renameButton } from '../names';

export function teamsPage(ctx: Ctx): () => void {
  ctx.title('Teams');
  const admin = can.manageUsers(ctx.who);
  const messages = h('div', { class: 'messages' });
  const list = h('section', { class: 'panel' }, h('div', { class: 'loading' }, 'Loading teams…'));
  let users: User[] = [];
  let stopped = false;
  const say = (kind: 'error' | 'ok', text: string) => {
    clear(messages);
    messages.appendChild(notice(kind, text, () => {}));
  };

  const name = h('input', { id: 'team-name', autocomplete: 'off', spellcheck: 'false', placeholder: 'backend', maxlength: '64' });
  const err = h('div', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'create-team' }, 'Create team');
  const display = h('input', { id: 'team-display-name', autocomplete: 'off', placeholder: 'Équipe backend 🚀' });
  const nameField = field('New team', name, 'Lowercase letters, digits and . _ -');
  const hint = nameField.querySelector('.hint') as HTMLElement;
  name.addEventListener('input', () => {
    const p = nameProblem(name.value.trim());
    hint.textContent = p || 'Lowercase letters, digits and . _ -';
    hint.classList.toggle('hint-bad', !!p);
  });
  const create = h('form', { class: 'panel inline-form', id: 'team-form', novalidate: true, 'aria-label': 'New team' },
    nameField,
    field('Display name', display, 'Optional: any language, up to 64 characters'),
    h('div', { class: 'field field-button' }, submit),
    err);
  let creating = false;
  create.addEventListener('submit', async (e) => {
    e.preventDefault();
    // One request at a time: a double click creates one team, not "created" and "already exists".
    if (creating) return;
    err.textContent = '';
    const n = name.value.trim();
    if (!n) {
      err.textContent = 'Enter a name for the team.';
      name.focus();
      return;
    }
    const problem = nameProblem(n);
    if (problem) {
      err.textContent = problem;
      name.focus();
      return;
    }
    const dn = display.value.trim();
    const badDn = dn ? displayNameProblem(dn) : null;
    if (badDn) {
      err.textContent = 'Display name: ' + badDn;
      display.focus();
      return;
    }
    creating = true;
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      await api('POST', '/teams', dn ? { name: n, display_name: dn } : { name: n });
      say('ok', `Team ${dn || n} is created. Add its members below.`);
      name.value = '';
      display.value = '';
      await refresh();
      (document.querySelector(`tr[data-team="${CSS.escape(n)}"] select`) as HTMLElement | null)?.focus();
    } catch (e2) {
      err.textContent = errorText(e2);
    } finally {
      creating = false;
      submit.disabled = false;
      submit.textContent = 'Create team';
    }
  });

  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, admin ? 'Teams group the users of your organization.' : 'Teams group the users of your organization. Admins create them and choose their members.')),
    messages, admin ? create : null, list,
  ]);

  async function change(what: string, fn: () => Promise<unknown>, ok: string): Promise<void> {
    try {
      await fn();
      say('ok', ok);
    } catch (e) {
      say('error', `${what}: ${errorText(e)}`);
    }
    void refresh();
  }

  function render(teams: Team[]): void {
    clear(list);
    if (teams.length === 0) {
      list.appendChild(emptyState('No teams yet', admin ? 'Create a team above, then add users to it.' : 'Nobody has created a team in this organization.',
        admin ? h('button', { type: 'button', class: 'btn btn-primary', onclick: () => name.focus() }, 'Create a team') : null));
      return;
    }
    teams.sort((a, b) => (a.display_name || a.id).localeCompare(b.display_name || b.id));
    const person = (id: string) => users.find((u) => u.id === id)?.display_name || '';
    const rows = teams.map((t) => {
      const members = t.members.slice().sort();
      const chips = members.length
        ? h('span', { class: 'chips' }, members.map((m) => h('span', { class: 'chip member', 'data-member': m }, named(person(m), m, 'chip-name'),
          admin ? h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${m} from ${t.name}`, title: `Remove ${m}`,
            onclick: () => void change('Removing ' + m, () => api('POST', `/teams/${encodeURIComponent(t.id)}/members/remove`, { user: m }), `${m} left team ${t.name}.`) }, '×') : null)))
        : h('span', { class: 'muted' }, 'No members');
      let add: HTMLElement | null = null;
      if (admin) {
        const candidates = users.map((u) => u.id).filter((u) => !members.includes(u)).sort();
        const sel = h('select', { class: 'select-small', 'aria-label': `User to add to ${t.name}` },
          h('option', { value: '' }, candidates.length ? 'Add a member…' : 'Everyone is a member'),
          candidates.map((u) => h('option', { value: u }, person(u) ? `${person(u)} (${u})` : u)));
        sel.disabled = candidates.length === 0;
        const btn = h('button', { type: 'button', class: 'btn btn-small', disabled: true }, 'Add');
        sel.addEventListener('change', () => { btn.disabled = !sel.value; });
        btn.addEventListener('click', () => {
          const u = sel.value;
          if (u) void change('Adding ' + u, () => api('POST', `/teams/${encodeURIComponent(t.id)}/members`, { user: u }), `${u} joined team ${t.name}.`);
        });
        add = h('span', { class: 'add-member' }, sel, btn);
      }
      const shownName = named(t.display_name, t.id, 'strong w-name');
      return h('tr', { 'data-team': t.id },
        h('td', { class: 'cell-name' },
          h('div', { class: 'name-line' }, shownName,
            admin ? renameButton(shownName, 'team', t.display_name || '', '/teams/' + encodeURIComponent(t.id), (n) => {
              say('ok', n ? `Team ${t.id} is now shown as ${n}.` : `Team ${t.id} is shown by its id again.`);
              void refresh();
            }) : null),
          t.display_name ? h('div', { class: 'muted small mono' }, t.id) : null),
        h('td', null, chips),
        h('td', { class: 'small', title: dateTime(t.created_ms) }, ago(t.created_ms)),
        h('td', { class: 'row-actions' }, add,
          admin ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: async () => {
            if (await confirmDialog(`Delete team ${t.name}?`, 'Its members stay users of the organization.', 'Delete team')) {
              void change('Deleting ' + t.name, () => api('DELETE', `/teams/${encodeURIComponent(t.id)}`), `Team ${t.name} is deleted.`);
            }
          } }, 'Delete') : null));
    });
    list.appendChild(h('table', { class: 'table', id: 'teams-table' },
      h('thead', null, h('tr', null, ['Team', 'Members', 'Created', ''].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows)));
  }

  async function refresh(): Promise<void> {
    try {
      const [t, u] = await Promise.all([api<{ teams: Team[] }>('GET', '/teams'), api<{ users: User[] }>('GET', '/users')]);
      if (stopped || editing()) return;
      users = u.users;
      render(t.teams);
    } catch (e) {
      if (!stopped) say('error', errorText(e));
    }
  }
  void refresh();
  return () => {
    stopped = true;
  };
}
