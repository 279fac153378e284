// Users: admins and owners see every user of their org with role and state, create users (with
// a role up to their own; a generated password is shown once), change roles, disable/enable,
// end sessions and delete (after a confirm), and see every API token of the org. Members and
// viewers see only themselves: their own password and tokens are under My account.
import { api, ApiToken, can, errorText, nameProblem, ROLE_NAMES, roleNumber, User } from '../api';
import { ago, append, badge, clear, confirmDialog, dateTime, emptyState, h, keepSecret, notice, secretBox, until } from '../dom';
import { displayNameProblem, loadPeople, named, renameButton } from '../names';
import type { Ctx } from '../main';
import { field } from './login';

export function usersPage(ctx: Ctx): () => void {
  ctx.title('Users');
  const me = ctx.who;
  const admin = can.manageUsers(me);
  const messages = h('div', { class: 'messages' });
  const addPanel = h('section', { class: 'panel', hidden: true, 'aria-label': 'Add a user' });
  const list = h('section', { class: 'panel' }, h('div', { class: 'loading' }, 'Loading users…'));
  const tokens = h('section', { class: 'panel', hidden: true, 'aria-label': 'API tokens' });
  const addBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'add-user' }, 'Add a user');
  addBtn.addEventListener('click', () => {
    // A shown-once secret stays until Done: a second click must not throw it away.
    if (!addPanel.hidden && addPanel.dataset.secret) {
      keepSecret(addPanel);
      return;
    }
    addPanel.hidden = !addPanel.hidden;
    if (!addPanel.hidden) renderAdd();
  });
  // The org's display name, renamed in place by admins and owners (AM_CAN_ORG_RENAME).
  const orgName = named('', me.org, 'strong org-dn');
  const orgLine = h('p', { class: 'org-line' }, 'Organization ', orgName);
  if (admin) orgLine.appendChild(renameButton(orgName, 'organization', '', '/orgs/' + encodeURIComponent(me.org), () => void loadOrg()));
  async function loadOrg(): Promise<void> {
    try {
      const r = await api<{ orgs: { id: string; display_name?: string }[] }>('GET', '/orgs');
      const o = r.orgs.find((x) => x.id === me.org);
      if (o && !orgName.hidden) {
        orgName.textContent = o.display_name || o.id;
        orgName.title = o.display_name ? `${o.display_name} (${o.id})` : o.id;
        const b = orgLine.querySelector('.rename-btn') as HTMLButtonElement | null;
        if (b) {
          const fresh = renameButton(orgName, 'organization', o.display_name || '', '/orgs/' + encodeURIComponent(me.org), () => void loadOrg());
          b.replaceWith(fresh);
        }
      }
    } catch { /* the id stays */ }
  }
  void loadOrg();
  append(ctx.main, [
    orgLine,
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, admin
        ? `The users of organization ${me.org}. You can manage users whose role is no higher than yours (${ROLE_NAMES[me.role]}).`
        : 'Only admins and owners manage users. Your password and API tokens are under ',
        admin ? null : h('a', { href: '#/account' }, 'My account'), admin ? null : '.'),
      admin ? addBtn : null),
    messages, addPanel, list, tokens,
  ]);

  let stopped = false;
  const say = (kind: 'error' | 'ok', text: string) => {
    clear(messages);
    messages.appendChild(notice(kind, text, () => {}));
  };

  function roleSelect(id: string, selected: number, max: number): HTMLSelectElement {
    const s = h('select', { id });
    for (let r = 1; r <= max; r++) s.appendChild(h('option', { value: ROLE_NAMES[r], selected: r === selected }, ROLE_NAMES[r]));
    return s;
  }

  function renderAdd(): void {
    clear(addPanel);
    delete addPanel.dataset.secret;
    const name = h('input', { id: 'user-name', autocomplete: 'off', spellcheck: 'false', required: true });
    const display = h('input', { id: 'user-display-name', autocomplete: 'off', placeholder: 'Zoë Martin' });
    const role = roleSelect('user-role', 2, me.role);
    const password = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password' });
    const err = h('div', { class: 'form-error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create user');
    const NAME_HINT = 'Lowercase letters, digits and . _ - (starting with a letter or digit). Users log in with it.';
    const nameField = field('User name', name, NAME_HINT);
    const hint = nameField.querySelector('.hint') as HTMLElement;
    name.addEventListener('input', () => {
      const p = nameProblem(name.value.trim());
      hint.textContent = p || NAME_HINT;
      hint.classList.toggle('hint-bad', !!p);
    });
    const form = h('form', { class: 'form-grid', id: 'user-form', novalidate: true },
      h('h2', null, 'Add a user'),
      nameField,
      field('Display name', display, 'Optional: how people see them, any language (up to 64 characters).'),
      field('Role', role, roleHint(me.role)),
      field('Password', password, 'Optional, at least 12 characters. Leave it empty for a random password, shown once.'),
      err,
      h('div', { class: 'actions span-all' },
        h('button', { type: 'button', class: 'btn', onclick: () => { addPanel.hidden = true; } }, 'Cancel'),
        submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const n = name.value.trim();
      if (!n) {
        err.textContent = 'Enter the new user\'s name.';
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
      if (password.value && password.value.length < 12) {
        err.textContent = 'A password needs at least 12 characters (or leave it empty for a random one).';
        password.focus();
        return;
      }
      submit.disabled = true;
      try {
        const body: Record<string, string> = { name: n, role: role.value };
        if (password.value) body.password = password.value;
        if (dn) body.display_name = dn;
        const r = await api<{ id: string; role: string; password?: string }>('POST', '/users', body);
        showCreated(r);
        void refresh();
      } catch (e2) {
        err.textContent = errorText(e2);
      } finally {
        submit.disabled = false;
      }
    });
    addPanel.appendChild(form);
    name.focus();
  }

  function showCreated(r: { id: string; role: string; password?: string }): void {
    clear(addPanel);
    const done = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => { addPanel.hidden = true; delete addPanel.dataset.secret; } }, 'Done');
    if (r.password) {
      addPanel.dataset.secret = '1';
      const { box, copy } = secretBox(r.password, 'new-user-password', done);
      append(addPanel, [
        h('h2', null, `User ${r.id} is created`),
        h('p', null, `Role ${r.role}. Give them this password; it is shown only now. They can change it under My account.`),
        box,
      ]);
      copy.focus();
    } else {
      append(addPanel, [
        h('h2', null, `User ${r.id} is created`),
        h('p', null, `Role ${r.role}, with the password you set.`),
        h('div', { class: 'actions' }, done),
      ]);
      done.focus();
    }
  }

  async function act(u: User, what: 'disable' | 'enable' | 'sessions/revoke' | 'delete'): Promise<void> {
    const confirms: Record<string, [string, string, string]> = {
      disable: [`Disable ${u.id}?`, 'They are logged out at once and cannot log in or use their API tokens until enabled again.', 'Disable user'],
      'sessions/revoke': [`Log ${u.id} out everywhere?`, 'Every console and airmeshctl session of theirs ends now; they can log in again.', 'End sessions'],
      delete: [`Delete user ${u.id}?`, 'Their sessions and API tokens end, and the name can be reused. Their pods and audit events stay.', 'Delete user'],
    };
    const c = confirms[what];
    if (c && !(await confirmDialog(c[0], c[1], c[2]))) return;
    try {
      if (what === 'delete') await api('DELETE', `/users/${encodeURIComponent(u.id)}`);
      else await api('POST', `/users/${encodeURIComponent(u.id)}/${what}`);
      const done: Record<string, string> = { disable: 'is disabled', enable: 'is enabled', 'sessions/revoke': 'is logged out everywhere', delete: 'is deleted' };
      say('ok', `${u.id} ${done[what]}.`);
    } catch (e) {
      say('error', errorText(e));
    }
    void refresh();
  }

  async function setRole(u: User, sel: HTMLSelectElement): Promise<void> {
    const old = u.role;
    sel.disabled = true;
    try {
      await api('POST', `/users/${encodeURIComponent(u.id)}/role`, { role: sel.value });
      say('ok', `${u.id} is now ${sel.value}.`);
    } catch (e) {
      sel.value = old;
      say('error', errorText(e));
    }
    void refresh();
  }

  function stateBadge(u: User): HTMLElement {
    if (u.disabled) return badge('disabled');
    if (u.locked_until_ms > Date.now()) {
      const b = badge('locked');
      b.title = `Too many failed logins: locked until ${dateTime(u.locked_until_ms)}. Setting a new password unlocks it.`;
      return b;
    }
    return badge('active');
  }

  function renderUsers(users: User[]): void {
    clear(list);
    const shown = admin ? users : users.filter((u) => u.id === me.user);
    if (shown.length === 0) {
      list.appendChild(emptyState('No users', 'Nobody is in this organization yet.'));
      return;
    }
    shown.sort((a, b) => (a.id === me.user ? -1 : b.id === me.user ? 1 : a.id.localeCompare(b.id)));
    const rows = shown.map((u) => {
      const self = u.id === me.user;
      const r = roleNumber(u.role);
      const manage = admin && !self && r <= me.role;
      let roleCell: HTMLElement;
      if (manage) {
        const sel = roleSelect('role-' + u.id, r, me.role);
        sel.setAttribute('aria-label', `Role of ${u.id}`);
        sel.classList.add('select-small');
        sel.addEventListener('change', () => void setRole(u, sel));
        roleCell = sel;
      } else {
        roleCell = h('span', { class: 'role role-' + u.role }, u.role);
      }
      const shownName = named(u.display_name, u.id, 'strong w-user');
      return h('tr', { 'data-user': u.id },
        h('td', { class: 'cell-name' },
          h('div', { class: 'name-line' }, shownName,
            self ? h('span', { class: 'chip chip-you' }, 'you') : null,
            manage ? renameButton(shownName, 'user', u.display_name || '', '/users/' + encodeURIComponent(u.id), (n) => {
              say('ok', n ? `${u.id} is now shown as ${n}.` : `${u.id} is shown by its id again.`);
              void loadPeople(true);
            }) : null),
          u.display_name ? h('div', { class: 'muted small mono' }, u.id) : null,
          u.superuser ? h('div', { class: 'muted small' }, 'appliance administrator') : null),
        h('td', null, roleCell),
        h('td', null, stateBadge(u)),
        h('td', { class: 'small', title: dateTime(u.created_ms) }, ago(u.created_ms)),
        h('td', { class: 'row-actions' },
          self ? h('a', { href: '#/account', class: 'btn btn-small' }, 'My account') : null,
          manage ? (u.disabled
            ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => void act(u, 'enable') }, 'Enable')
            : h('button', { type: 'button', class: 'btn btn-small', onclick: () => void act(u, 'disable') }, 'Disable')) : null,
          manage && !u.disabled ? h('button', { type: 'button', class: 'btn btn-small', title: 'End every session of theirs', onclick: () => void act(u, 'sessions/revoke') }, 'End sessions') : null,
          manage ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void act(u, 'delete') }, 'Delete') : null));
    });
    append(list, [h('table', { class: 'table', id: 'users-table' },
      h('thead', null, h('tr', null, ['User', 'Role', 'State', 'Created', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows))]);
    if (!admin) list.appendChild(h('p', { class: 'muted small list-note' }, 'You see only yourself: the other users of your organization are visible to admins.'));
  }

  async function revokeToken(t: ApiToken): Promise<void> {
    if (!(await confirmDialog(`Revoke API token ${t.name || t.id}?`, `It belongs to ${t.user}. Anything using it is refused from now on.`, 'Revoke token'))) return;
    try {
      await api('DELETE', `/api-tokens/${encodeURIComponent(t.id)}`);
      say('ok', `The API token ${t.name || t.id} is revoked.`);
    } catch (e) {
      say('error', errorText(e));
    }
    void refresh();
  }

  function renderTokens(ts: ApiToken[]): void {
    clear(tokens);
    tokens.hidden = false;
    tokens.appendChild(h('h2', null, 'API tokens in this organization'));
    if (ts.length === 0) {
      tokens.appendChild(h('p', { class: 'muted' }, 'Nobody has an API token. Each user creates their own under My account.'));
      return;
    }
    ts.sort((a, b) => b.created_ms - a.created_ms);
    tokens.appendChild(h('table', { class: 'table', id: 'org-tokens-table' },
      h('thead', null, h('tr', null, ['Name', 'User', 'Role', 'Created', 'Expires', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, ts.map((t) => h('tr', null,
        h('td', null, t.name || h('span', { class: 'muted' }, '(no name)'), h('div', { class: 'muted small mono' }, t.id)),
        h('td', null, t.user),
        h('td', null, t.role),
        h('td', { class: 'small', title: dateTime(t.created_ms) }, ago(t.created_ms)),
        h('td', { class: 'small', title: dateTime(t.expires_ms) }, until(t.expires_ms)),
        h('td', { class: 'row-actions' }, roleNumber(t.role) <= me.role
          ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void revokeToken(t) }, 'Revoke')
          : null))))));
  }

  async function refresh(): Promise<void> {
    try {
      const r = await api<{ users: User[] }>('GET', '/users');
      if (stopped) return;
      renderUsers(r.users);
      if (admin) {
        const t = await api<{ api_tokens: ApiToken[] }>('GET', '/api-tokens');
        if (!stopped) renderTokens(t.api_tokens);
      }
    } catch (e) {
      if (!stopped) say('error', errorText(e));
    }
  }
  void refresh();
  return () => {
    stopped = true;
  };
}

export function roleHint(max: number): string {
  const all = [
    'Viewers watch pods and read the audit log',
    'members also start and stop pods',
    'admins also manage runners, users and teams',
    'owners also export the audit log',
  ];
  return all.slice(0, max).join('; ') + '.';
}
